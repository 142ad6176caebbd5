//! Panic safety: user code (a future's poll or destructor, an output's or a
//! panic payload's destructor, a waker, a done callback, the exception handler,
//! a task factory's hooks, a context value's destructor) may panic or re-enter
//! the loop at any point of a state transition. Whatever it does, the loop
//! stays consistent: `current_task()` names the creator (or nothing), no
//! finished task is listed by `all_tasks()`, `close()` completes and reports
//! what went wrong through the exception handler, and nothing leaks (the leak
//! half is checked under Miri's leak checker by `ci/miri.sh`).
//!
//! The matrix crosses each fault with each way a task starts (eager fast path,
//! eager general path, lazy step) and with `close()`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use asyncio_core::{
    ContextVar, EventLoop, ExceptionContext, StartMode, TaskError, TaskFactory, TaskOptions,
    TaskRef, all_tasks, create_task, create_task_with, current_task, yield_now,
};

/// A value whose destructor panics with `"<name> drop"`.
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        // A second panic while unwinding would abort the test binary: the
        // scenarios below never drop a bomb during an unwind, and this guard
        // only keeps a regression from turning into an abort.
        if !std::thread::panicking() {
            panic!("{} drop", self.0);
        }
    }
}

/// What goes wrong in the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The future panics in `poll`.
    Poll,
    /// The future's destructor panics after it returned its value.
    FutureDrop,
    /// The future's destructor panics, and so does the value it returned,
    /// which that panic replaces.
    FutureAndOutputDrop,
    /// `poll` panics, then the future's destructor panics too.
    PollAndFutureDrop,
    /// `poll` panics with a payload whose own destructor panics.
    PayloadDrop,
    /// The output's destructor panics when the detached task is released.
    OutputDrop,
    /// A context variable set by the task holds a value whose destructor
    /// panics when the task's context goes.
    ContextValueDrop,
    /// A done callback panics.
    DoneCallback,
    /// The task fails unobserved and the exception handler panics on the report.
    HandlerPanics,
}

const FAULTS: [Fault; 9] = [
    Fault::Poll,
    Fault::FutureDrop,
    Fault::FutureAndOutputDrop,
    Fault::PollAndFutureDrop,
    Fault::PayloadDrop,
    Fault::OutputDrop,
    Fault::ContextValueDrop,
    Fault::DoneCallback,
    Fault::HandlerPanics,
];

/// How the task starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// `create_task` under a factory that is fixed eager (no options, no
    /// context in use): the eager fast path.
    EagerFast,
    /// `create_task_with(.., eager_start(true))`: the general path's eager step.
    EagerGeneral,
    /// `create_task` under the default lazy factory: a step of the loop.
    Lazy,
}

const PATHS: [Path; 3] = [Path::EagerFast, Path::EagerGeneral, Path::Lazy];

/// A factory whose every task starts eagerly, announced as fixed so the loop
/// takes its fast path.
struct FixedEager;

impl TaskFactory for FixedEager {
    fn create(&self, _task: &TaskRef) -> StartMode {
        StartMode::Eager
    }
    fn fixed_mode(&self) -> Option<StartMode> {
        Some(StartMode::Eager)
    }
}

/// A hand-written future, so that its destructor runs after it returned
/// `Ready` (an async block drops its locals before it returns).
struct Faulty {
    fault: Fault,
    /// Whether to return `Pending` once before acting (then the fault happens
    /// in a later step of the loop, not in the eager step).
    suspend_first: bool,
    suspended: bool,
    /// Dropped with the future (never read: its destructor is the point).
    #[allow(dead_code)]
    guard: Option<Bomb>,
    context_var: Option<ContextVar<Rc<Bomb>>>,
}

impl Faulty {
    fn new(fault: Fault, suspend_first: bool) -> Self {
        let guard = matches!(
            fault,
            Fault::FutureDrop | Fault::FutureAndOutputDrop | Fault::PollAndFutureDrop
        )
        .then(|| Bomb("future"));
        Faulty {
            fault,
            suspend_first,
            suspended: false,
            guard,
            context_var: (fault == Fault::ContextValueDrop).then(|| ContextVar::new("bomb")),
        }
    }
}

impl Future for Faulty {
    type Output = Option<Bomb>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bomb>> {
        let this = self.get_mut();
        if this.suspend_first && !this.suspended {
            this.suspended = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(var) = &this.context_var {
            var.set(Rc::new(Bomb("context value")));
        }
        match this.fault {
            Fault::Poll | Fault::PollAndFutureDrop | Fault::HandlerPanics => panic!("poll"),
            Fault::PayloadDrop => std::panic::panic_any(Bomb("payload")),
            Fault::FutureAndOutputDrop | Fault::OutputDrop => Poll::Ready(Some(Bomb("output"))),
            _ => Poll::Ready(None),
        }
    }
}

/// What the exception handler saw.
fn capture(lp: &EventLoop, panics: bool) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        s.borrow_mut().push(ctx.to_string());
        if panics {
            panic!("the exception handler panics");
        }
    }));
    seen
}

/// Checks, from inside the main task, what must hold after a child's step.
fn check_invariants(main: &TaskRef, what: &str) {
    assert_eq!(
        current_task().as_ref(),
        Some(main),
        "{what}: the creator is current again"
    );
    for t in all_tasks().expect("inside the loop") {
        assert!(!t.done(), "{what}: all_tasks() lists a finished task {t:?}");
    }
}

/// Quiets the default panic hook's output for the expected panics of one test.
fn quiet<R>(f: impl FnOnce() -> R) -> R {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = std::panic::take_hook();
    if std::env::var_os("LOUD").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let out = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(prev);
    match out {
        Ok(v) => v,
        // The silent hook swallowed the failure's message: say it again.
        Err(p) => match (p.downcast_ref::<String>(), p.downcast_ref::<&str>()) {
            (Some(m), _) => panic!("{m}"),
            (_, Some(m)) => panic!("{m}"),
            _ => std::panic::resume_unwind(p),
        },
    }
}

/// Runs one cell of the matrix and returns the reports, for the caller's
/// assertions on them.
fn run_case(path: Path, fault: Fault, suspend_first: bool) -> Vec<String> {
    let what = format!("{path:?} / {fault:?} / suspend_first={suspend_first}");
    let lp = EventLoop::new();
    // No reuse: a freed cell is really freed, so Miri sees any use after it.
    lp.set_task_cache_limit(0);
    if path == Path::EagerFast {
        lp.set_task_factory(FixedEager);
    }
    let seen = capture(&lp, fault == Fault::HandlerPanics);
    let callback_ran = Rc::new(Cell::new(false));
    let w = what.clone();
    let cr = callback_ran.clone();
    let outcome = lp
        .run_until_complete(async move {
            let main = current_task().expect("the main task");
            let future = Faulty::new(fault, suspend_first);
            let created = catch_unwind(AssertUnwindSafe(|| match path {
                Path::EagerFast | Path::Lazy => create_task(future),
                Path::EagerGeneral => {
                    create_task_with(future, TaskOptions::new().eager_start(true))
                }
            }));
            let task = match created {
                Ok(task) => task,
                Err(_) => panic!("{w}: a panic escaped create_task"),
            };
            check_invariants(&main, &format!("{w}, after create_task"));
            if fault == Fault::DoneCallback {
                let cr = cr.clone();
                task.add_done_callback(move |_| {
                    cr.set(true);
                    panic!("done callback")
                });
            }
            for _ in 0..3 {
                yield_now().await;
                check_invariants(&main, &format!("{w}, after a turn of the loop"));
            }
            assert!(task.done(), "{w}: the task finished");
            match fault {
                // Released unawaited: the output (or the failure) is the
                // loop's to drop or report.
                Fault::OutputDrop | Fault::HandlerPanics | Fault::ContextValueDrop => {
                    drop(task);
                    None
                }
                _ => Some(task.await.map(|out| out.is_some())),
            }
        })
        .unwrap_or_else(|e| panic!("{what}: run_until_complete failed: {e}"));
    assert!(
        current_task().is_none(),
        "{what}: no task is current outside the loop"
    );
    lp.close()
        .unwrap_or_else(|e| panic!("{what}: close failed: {e}"));
    assert!(lp.is_closed(), "{what}");
    assert!(lp.handle().is_closed(), "{what}: the shared side is closed");
    if fault == Fault::DoneCallback {
        assert!(callback_ran.get(), "{what}: the done callback ran");
    }
    let message = |r: &Option<Result<bool, TaskError>>| match r {
        Some(Err(TaskError::Panicked(p))) => p.message().to_owned(),
        other => format!("{other:?}"),
    };
    let expected_outcome = match fault {
        Fault::Poll => Some("poll"),
        Fault::FutureDrop | Fault::FutureAndOutputDrop | Fault::PollAndFutureDrop => {
            Some("future drop")
        }
        Fault::PayloadDrop => Some("Box<dyn Any>"),
        _ => None,
    };
    if let Some(expected) = expected_outcome {
        assert_eq!(message(&outcome), expected, "{what}: the task's outcome");
    } else if fault == Fault::DoneCallback {
        assert!(
            matches!(outcome, Some(Ok(false))),
            "{what}: the task's outcome {outcome:?}"
        );
    }
    seen.borrow().clone()
}

fn assert_reported(reports: &[String], needle: &str, what: &str) {
    assert!(
        reports.iter().any(|r| r.contains(needle)),
        "{what}: expected a report containing {needle:?}, got {reports:?}"
    );
}

#[test]
fn every_fault_on_every_start_path_leaves_the_loop_consistent() {
    quiet(|| {
        for path in PATHS {
            for fault in FAULTS {
                for suspend_first in [false, true] {
                    let what = format!("{path:?} / {fault:?} / suspend_first={suspend_first}");
                    let reports = run_case(path, fault, suspend_first);
                    match fault {
                        Fault::FutureAndOutputDrop => {
                            assert_reported(&reports, "output drop", &what)
                        }
                        Fault::PollAndFutureDrop => assert_reported(&reports, "poll", &what),
                        Fault::OutputDrop => assert_reported(&reports, "output drop", &what),
                        Fault::ContextValueDrop => {
                            assert_reported(&reports, "context value drop", &what)
                        }
                        Fault::DoneCallback => assert_reported(&reports, "done callback", &what),
                        Fault::HandlerPanics => {
                            assert_reported(&reports, "Task exception was never retrieved", &what)
                        }
                        Fault::Poll | Fault::FutureDrop | Fault::PayloadDrop => assert!(
                            reports.is_empty(),
                            "{what}: an awaited failure is not reported: {reports:?}"
                        ),
                    }
                }
            }
        }
    });
}

/// Finding 1, eager: the future's destructor and the output's destructor both
/// panic inside the eager step; the creator must be current again afterwards
/// (the cell it named before the fix was freed: a use-after-free under Miri).
#[test]
fn a_double_panic_in_an_eager_step_restores_the_creator() {
    quiet(|| {
        let reports = run_case(Path::EagerFast, Fault::FutureAndOutputDrop, false);
        assert_reported(&reports, "output drop", "eager fast path");
        let reports = run_case(Path::EagerGeneral, Fault::FutureAndOutputDrop, false);
        assert_reported(&reports, "output drop", "eager general path");
    });
}

/// Finding 1, lazy: the same double panic in a step of the loop must not
/// unwind out of `run_until_complete`, leave a task current outside the loop,
/// or stop `close()`.
#[test]
fn a_double_panic_in_a_lazy_step_leaves_no_task_current() {
    quiet(|| {
        let reports = run_case(Path::Lazy, Fault::FutureAndOutputDrop, true);
        assert_reported(&reports, "output drop", "lazy step");
    });
}

/// Pending tasks whose destructors panic when `close()` drops them.
#[test]
fn close_completes_when_the_destructors_of_pending_tasks_panic() {
    quiet(|| {
        let lp = EventLoop::new();
        lp.set_task_cache_limit(0);
        let seen = capture(&lp, false);
        let handle = lp.handle();
        let var = ContextVar::<Rc<Bomb>>::new("bomb");
        let v = var.clone();
        lp.run_until_complete(async move {
            // One task holds a panicking value in its context, one in its future.
            drop(create_task(async move {
                v.set(Rc::new(Bomb("context value")));
                std::future::pending::<()>().await
            }));
            let bomb = Bomb("future");
            drop(create_task(async move {
                std::future::pending::<()>().await;
                drop(bomb);
            }));
            yield_now().await;
        })
        .unwrap();
        // Queued from outside before close: close must answer it.
        let queued = handle.run_coroutine_threadsafe(async { 1 }).unwrap();
        assert!(lp.close().is_ok(), "close completes");
        assert!(lp.is_closed());
        assert!(handle.is_closed(), "the shared side is closed too");
        assert!(
            matches!(queued.wait(), Err(TaskError::Cancelled(_))),
            "what was queued is cancelled, not left waiting"
        );
        let seen = seen.borrow();
        assert_reported(&seen, "context value drop", "close");
        assert_reported(&seen, "future drop", "close");
    });
}

/// Pending work of every kind a closing loop drops, each with a panicking
/// destructor: a queued callback, a timer callback, a task factory, and the
/// exception handler itself.
#[test]
fn close_completes_when_callbacks_timers_and_the_factory_panic_on_drop() {
    struct BombFactory(#[allow(dead_code)] Bomb);
    impl TaskFactory for BombFactory {
        fn create(&self, _task: &TaskRef) -> StartMode {
            StartMode::Lazy
        }
    }
    quiet(|| {
        let lp = EventLoop::new();
        let seen = capture(&lp, false);
        let bomb = Bomb("call_soon callback");
        lp.call_soon(move || drop(bomb));
        let bomb = Bomb("timer callback");
        lp.call_later(std::time::Duration::from_secs(3600), move || drop(bomb));
        lp.set_task_factory(BombFactory(Bomb("factory")));
        assert!(lp.close().is_ok());
        assert!(lp.handle().is_closed());
        let seen = seen.borrow();
        assert_reported(&seen, "call_soon callback drop", "close");
        assert_reported(&seen, "timer callback drop", "close");
        assert_reported(&seen, "factory drop", "close");
    });
}

/// A factory whose hooks panic.
struct PanickyFactory {
    in_create: bool,
}

impl TaskFactory for PanickyFactory {
    fn create(&self, _task: &TaskRef) -> StartMode {
        if self.in_create {
            panic!("create hook");
        }
        StartMode::Eager
    }
    fn started(&self, _task: &TaskRef, _mode: StartMode) {
        panic!("started hook");
    }
}

#[test]
fn a_panicking_factory_hook_leaves_the_creator_current() {
    quiet(|| {
        for in_create in [true, false] {
            let lp = EventLoop::new();
            lp.set_task_cache_limit(0);
            let seen = capture(&lp, false);
            let dropped = Rc::new(Cell::new(false));
            let d = dropped.clone();
            lp.run_until_complete(async move {
                let main = current_task().unwrap();
                // Installed now, so that only the child goes through it.
                asyncio_core::set_task_factory(PanickyFactory { in_create });
                struct Flag(Rc<Cell<bool>>);
                impl Drop for Flag {
                    fn drop(&mut self) {
                        self.0.set(true);
                    }
                }
                let flag = Flag(d);
                let created = catch_unwind(AssertUnwindSafe(|| {
                    create_task(async move {
                        let _flag = flag;
                        yield_now().await;
                    })
                }));
                check_invariants(&main, "after a factory hook panicked");
                // `create` panicking unwinds out of create_task (the task never
                // started); `started` panicking is reported (it did).
                assert_eq!(created.is_err(), in_create);
                if let Ok(t) = created {
                    t.await.unwrap();
                }
            })
            .unwrap();
            assert!(dropped.get(), "the future was dropped either way");
            assert!(lp.close().is_ok());
            if !in_create {
                assert_reported(&seen.borrow(), "started hook", "started");
            }
        }
    });
}

// --- Finding 2: the join-waker slot and wakers that re-enter the loop -----

/// A waker whose destructor runs a hook and which counts its wakes. A clone
/// takes the hook over (so the copy a task keeps is the one that runs it).
struct HookWaker {
    wakes: Rc<Cell<u32>>,
    on_drop: RefCell<Option<Box<dyn FnOnce()>>>,
}

const HOOK_VTABLE: RawWakerVTable =
    RawWakerVTable::new(hook_clone, hook_wake, hook_wake_by_ref, hook_drop);

fn hook_waker(wakes: Rc<Cell<u32>>, on_drop: Option<Box<dyn FnOnce()>>) -> Waker {
    let data = Box::into_raw(Box::new(HookWaker {
        wakes,
        on_drop: RefCell::new(on_drop),
    }));
    // SAFETY: the vtable's functions treat `data` as a `Box<HookWaker>`. The
    // waker is not `Send` in truth (it holds `Rc`s): these tests never move
    // it off the thread.
    unsafe { Waker::from_raw(RawWaker::new(data.cast(), &HOOK_VTABLE)) }
}

unsafe fn hook_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is a live `HookWaker` (the vtable's contract).
    let w = unsafe { &*data.cast::<HookWaker>() };
    let data = Box::into_raw(Box::new(HookWaker {
        wakes: w.wakes.clone(),
        on_drop: RefCell::new(w.on_drop.borrow_mut().take()),
    }));
    RawWaker::new(data.cast(), &HOOK_VTABLE)
}

unsafe fn hook_wake(data: *const ()) {
    // SAFETY: as in `hook_clone`; waking consumes the waker.
    unsafe {
        hook_wake_by_ref(data);
        hook_drop(data);
    }
}

unsafe fn hook_wake_by_ref(data: *const ()) {
    // SAFETY: as in `hook_clone`.
    let w = unsafe { &*data.cast::<HookWaker>() };
    w.wakes.set(w.wakes.get() + 1);
}

unsafe fn hook_drop(data: *const ()) {
    // SAFETY: the box made by `hook_waker`/`hook_clone`, dropped once.
    let w = unsafe { Box::from_raw(data.cast_mut().cast::<HookWaker>()) };
    let hook = w.on_drop.borrow_mut().take();
    drop(w);
    if let Some(hook) = hook {
        hook();
    }
}

/// Polls `fut` once with `waker`.
fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// Finding 2: a new awaiter's waker replaces the old one in the join slot;
/// the old one's destructor closes the loop, which completes the task and
/// wakes whoever is in the slot. That must be the new waker, woken once, and
/// never the old one after its drop (a use-after-free before the fix).
#[test]
fn a_join_waker_whose_drop_closes_the_loop_hands_the_wake_to_the_new_one() {
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    let mut task = lp.create_task(std::future::pending::<u8>());
    let old_wakes = Rc::new(Cell::new(0));
    let new_wakes = Rc::new(Cell::new(0));
    let lp2 = lp.clone();
    let old = hook_waker(
        old_wakes.clone(),
        Some(Box::new(move || {
            lp2.close().expect("the loop is not running")
        })),
    );
    assert!(poll_with(&mut task, &old).is_pending());
    drop(old);
    let new = hook_waker(new_wakes.clone(), None);
    assert!(poll_with(&mut task, &new).is_pending());
    assert!(lp.is_closed(), "the old waker's destructor closed the loop");
    assert_eq!(old_wakes.get(), 0, "the old waker is never woken");
    assert_eq!(new_wakes.get(), 1, "the new waker is woken once");
    assert!(matches!(
        poll_with(&mut task, &new),
        Poll::Ready(Err(TaskError::Cancelled(_)))
    ));
}

/// Finding 2, the other re-entry: the old waker's destructor runs the loop
/// until the awaited task finishes, so completion takes the join slot while
/// `Task::poll` is replacing it.
#[test]
fn a_join_waker_whose_drop_runs_the_task_to_completion() {
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    let mut task = lp.create_task(async {
        yield_now().await;
        7
    });
    let old_wakes = Rc::new(Cell::new(0));
    let new_wakes = Rc::new(Cell::new(0));
    let lp2 = lp.clone();
    let old = hook_waker(
        old_wakes.clone(),
        Some(Box::new(move || {
            lp2.run_until_complete(async {
                for _ in 0..3 {
                    yield_now().await;
                }
            })
            .expect("the loop runs");
        })),
    );
    assert!(poll_with(&mut task, &old).is_pending());
    drop(old);
    let new = hook_waker(new_wakes.clone(), None);
    assert!(poll_with(&mut task, &new).is_pending());
    assert_eq!(old_wakes.get(), 0, "the old waker is never woken");
    assert_eq!(new_wakes.get(), 1, "the new waker is woken once");
    assert_eq!(poll_with(&mut task, &new), Poll::Ready(Ok(7)));
    lp.close().unwrap();
}

/// A waker that panics when woken, left in the join slot of a task that then
/// finishes: the panic goes to the exception handler, the task's done
/// callbacks still run, and the loop goes on.
#[test]
fn a_join_waker_that_panics_when_woken_is_reported() {
    const PANIC_VTABLE: RawWakerVTable = RawWakerVTable::new(
        |d| RawWaker::new(d, &PANIC_VTABLE),
        |_| panic!("waker wake"),
        |_| panic!("waker wake"),
        |_| {},
    );
    quiet(|| {
        let lp = EventLoop::new();
        let seen = capture(&lp, false);
        let callback_ran = Rc::new(Cell::new(false));
        let cr = callback_ran.clone();
        lp.run_until_complete(async move {
            let mut task = create_task(async { yield_now().await });
            task.add_done_callback(move |_| cr.set(true));
            // SAFETY: the vtable ignores the data pointer.
            let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &PANIC_VTABLE)) };
            assert!(poll_with(&mut task, &waker).is_pending());
            for _ in 0..3 {
                yield_now().await;
            }
            assert!(task.done());
        })
        .unwrap();
        assert!(callback_ran.get(), "the done callback ran");
        assert_reported(&seen.borrow(), "waker wake", "join waker");
        lp.close().unwrap();
    });
}

// --- The fuzz-style check: random programs with faults everywhere ---------

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// One step of the main task.
    #[derive(Debug, Clone)]
    enum Op {
        /// Creates a task that suffers `fault`.
        Spawn {
            path: Path,
            fault: Fault,
            suspend_first: bool,
        },
        /// One turn of the loop.
        Turn,
        /// Cancels the task at this index (modulo the number made so far).
        Cancel(usize),
        /// Awaits the task's handle, or drops it unawaited.
        Finish(usize, bool),
        /// Polls the task's handle with a waker that re-enters the loop when
        /// it is dropped (it creates a task and cancels the current one's
        /// sibling), then with another waker that replaces it.
        ReenteringWaker(usize),
        /// A done callback that panics, or creates a task.
        Callback(usize, bool),
    }

    fn path() -> impl Strategy<Value = Path> {
        prop::sample::select(PATHS.to_vec())
    }

    fn fault() -> impl Strategy<Value = Fault> {
        prop::sample::select(FAULTS.to_vec())
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (path(), fault(), any::<bool>()).prop_map(|(path, fault, suspend_first)| {
                Op::Spawn { path, fault, suspend_first }
            }),
            2 => Just(Op::Turn),
            1 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), any::<bool>()).prop_map(|(i, a)| Op::Finish(i, a)),
            1 => any::<usize>().prop_map(Op::ReenteringWaker),
            1 => (any::<usize>(), any::<bool>()).prop_map(|(i, p)| Op::Callback(i, p)),
        ]
    }

    fn run_program(fixed_eager: bool, ops: Vec<Op>) {
        let lp = EventLoop::new();
        lp.set_task_cache_limit(0);
        if fixed_eager {
            lp.set_task_factory(FixedEager);
        }
        let _reports = capture(&lp, false);
        lp.run_until_complete(async move {
            let main = current_task().expect("the main task");
            let mut tasks: Vec<Option<asyncio_core::Task<Option<Bomb>>>> = Vec::new();
            for op in ops {
                match op {
                    Op::Spawn {
                        path,
                        fault,
                        suspend_first,
                    } => {
                        let future = Faulty::new(fault, suspend_first);
                        let task = match path {
                            Path::EagerGeneral => {
                                create_task_with(future, TaskOptions::new().eager_start(true))
                            }
                            _ => create_task(future),
                        };
                        tasks.push(Some(task));
                    }
                    Op::Turn => yield_now().await,
                    Op::Cancel(i) if !tasks.is_empty() => {
                        let n = tasks.len();
                        if let Some(t) = &tasks[i % n] {
                            t.cancel();
                        }
                    }
                    Op::Finish(i, wait) if !tasks.is_empty() => {
                        let n = tasks.len();
                        if let Some(t) = tasks[i % n].take() {
                            if wait {
                                // A bomb handed back is the caller's: keep it
                                // from going off here.
                                if let Ok(Some(bomb)) = t.await {
                                    std::mem::forget(bomb);
                                }
                            } else {
                                drop(t);
                            }
                        }
                    }
                    Op::ReenteringWaker(i) if !tasks.is_empty() => {
                        let n = tasks.len();
                        if let Some(t) = tasks[i % n].as_mut() {
                            let sibling = t.to_ref();
                            let hook: Box<dyn FnOnce()> = Box::new(move || {
                                drop(create_task(async {}));
                                sibling.cancel();
                            });
                            let old = hook_waker(Rc::default(), Some(hook));
                            let new = hook_waker(Rc::default(), None);
                            let mut out = poll_with(t, &old);
                            if out.is_pending() {
                                drop(old);
                                out = poll_with(t, &new);
                            }
                            if let Poll::Ready(out) = out {
                                // A bomb handed back is the caller's: keep it
                                // from going off here.
                                if let Ok(Some(bomb)) = out {
                                    std::mem::forget(bomb);
                                }
                                tasks[i % n] = None;
                            }
                        }
                    }
                    Op::Callback(i, panics) if !tasks.is_empty() => {
                        let n = tasks.len();
                        if let Some(t) = &tasks[i % n] {
                            t.add_done_callback(move |_| {
                                if panics {
                                    panic!("done callback");
                                }
                                drop(create_task(async {}));
                            });
                        }
                    }
                    _ => {}
                }
                check_invariants(&main, &format!("after {:?}", tasks.len()));
            }
            // The handles left are dropped unawaited: finished tasks are
            // released now, the others run on and are cancelled by close.
            drop(tasks);
        })
        .expect("the main task ends");
        assert!(current_task().is_none());
        assert_eq!(lp.close(), Ok(()));
        assert!(lp.handle().is_closed());
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: if cfg!(miri) { 6 } else { 128 },
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn random_programs_with_faults_keep_the_loop_consistent(
            fixed_eager in any::<bool>(),
            ops in prop::collection::vec(op(), 1..24),
        ) {
            quiet(|| run_program(fixed_eager, ops));
        }
    }
}
