//! The fault plan (issue 24): every call the loop makes into user code goes
//! through asyncio-core's gate, and with the `fault-plan` feature the gate
//! misbehaves at its k-th call: it panics after the user code ran, or runs an
//! action before it that re-enters the loop (creates a task, cancels the
//! current task, closes the loop, replaces the exception handler). Each
//! workload below runs once cleanly to count its gate calls, then once for
//! every k up to that count under every fault, and after each run the loop's
//! invariants are checked:
//!
//! - the main future sees itself as `current_task()` after every await, and
//!   `current_task()` is `None` once the run is over;
//! - `all_tasks()` never lists a finished task;
//! - every tracked value (futures' and outputs' contents) is dropped exactly
//!   once: none is left once the loop is gone, and a double drop would free
//!   its box twice (Miri and ASan see that);
//! - `close()` completes and returns `Ok`;
//! - on the loop's thread, the bytes allocated while the loop lived are all
//!   given back once it is dropped (no task cell, loop or value leaks).
//!
//! SQLite's fault injection at every allocation is the model. Under Miri
//! (`ci/miri.sh`) each workload runs a sample of k.

use std::cell::Cell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::fault_plan::{self, Fault, InjectedPanic};
use asyncio_core::{
    EventLoop, ExceptionContext, TaskError, all_tasks, create_task, current_task, get_running_loop,
    yield_now,
};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{gather, task_group};

mod counting {
    //! Bytes allocated and freed on each thread (a thread-local counter, so
    //! the harness's other threads do not disturb it).
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        static NET: Cell<isize> = const { Cell::new(0) };
    }

    struct Counting;

    // SAFETY: every call is passed to the system allocator unchanged; the
    // bookkeeping is a const thread-local `Cell`, which never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = NET.try_with(|n| n.set(n.get() + layout.size() as isize));
            // SAFETY: the caller's contract is `System.alloc`'s.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            let _ = NET.try_with(|n| n.set(n.get() - layout.size() as isize));
            // SAFETY: `ptr` came from `System.alloc` with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// Net bytes allocated by this thread so far.
    pub(crate) fn net() -> isize {
        NET.with(Cell::get)
    }
}

thread_local! {
    /// Tracked values alive on this thread.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// A value whose creation and destruction are counted. It owns a box, so
/// that a double drop is a double free (which Miri and ASan report).
struct Tracked(#[allow(dead_code)] Box<u64>);

impl Tracked {
    fn new() -> Tracked {
        LIVE.with(|l| l.set(l.get() + 1));
        Tracked(Box::new(7))
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

/// A failed invariant: the payload the checks panic with (so an injected
/// panic is told apart from a broken invariant).
#[derive(Debug)]
struct Broken(String);

fn check(cond: bool, what: impl FnOnce() -> String) {
    if !cond {
        std::panic::panic_any(Broken(what()));
    }
}

/// The invariants inside the main future, after an await.
fn check_inside(main_id: u64, what: &str) {
    check(current_task().map(|t| t.id()) == Some(main_id), || {
        format!("{what}: the main task is not current after an await")
    });
    for t in all_tasks().unwrap_or_default() {
        check(!t.done(), || {
            format!("{what}: all_tasks() lists a finished task {t:?}")
        });
    }
}

/// Some loop to re-enter: the running one, else the current task's.
fn some_loop() -> Option<EventLoop> {
    get_running_loop()
        .ok()
        .or_else(|| current_task().map(|t| t.get_loop()))
}

/// The faults every workload runs under.
fn faults() -> Vec<(&'static str, Fault)> {
    vec![
        ("panic", Fault::Panic),
        (
            "create a task",
            Fault::ReEnter(Rc::new(|| {
                let t = Tracked::new();
                let _ = asyncio_core::try_create_task(async move {
                    let _t = t;
                    yield_now().await;
                });
            })),
        ),
        (
            "cancel the current task",
            Fault::ReEnter(Rc::new(|| {
                if let Some(t) = current_task() {
                    t.cancel();
                }
            })),
        ),
        (
            "close the loop",
            Fault::ReEnter(Rc::new(|| {
                if let Some(lp) = some_loop() {
                    let _ = lp.close();
                }
            })),
        ),
        (
            "cancel the current task, then panic",
            Fault::ReEnterThenPanic(Rc::new(|| {
                if let Some(t) = current_task() {
                    t.cancel();
                }
            })),
        ),
        (
            "close the loop, then panic",
            Fault::ReEnterThenPanic(Rc::new(|| {
                if let Some(lp) = some_loop() {
                    let _ = lp.close();
                }
            })),
        ),
        (
            "replace the exception handler",
            Fault::ReEnter(Rc::new(|| {
                if let Some(lp) = some_loop() {
                    let t = Tracked::new();
                    lp.set_exception_handler(Some(move |_: &ExceptionContext| {
                        let _ = &t;
                    }));
                }
            })),
        ),
    ]
}

type Workload = fn(&EventLoop);

/// Runs `body` as the main future of `lp`, checking the invariants inside it.
fn run_main<F: Future<Output = ()> + 'static>(lp: &EventLoop, body: impl FnOnce(u64) -> F) {
    let _ = lp.run_until_complete(async move {
        let main_id = current_task().expect("the main future runs as a task").id();
        body(main_id).await;
        check_inside(main_id, "at the end of the main future");
    });
}

async fn child(i: u32, waits: u32) -> Tracked {
    let _held = Tracked::new();
    for _ in 0..waits {
        yield_now().await;
    }
    let _ = i;
    Tracked::new()
}

fn eager_spawn(lp: &EventLoop) {
    lp.set_task_factory(eager_task_factory);
    lazy_spawn(lp);
}

fn lazy_spawn(lp: &EventLoop) {
    run_main(lp, |main_id| async move {
        let tasks: Vec<_> = (0..3).map(|i| create_task(child(i, i))).collect();
        check_inside(main_id, "after spawning");
        for t in tasks {
            let _ = t.await;
            check_inside(main_id, "after awaiting a child");
        }
        // One left to finish on its own, one to be failing and dropped unseen.
        drop(create_task(child(9, 2)));
        drop(create_task(async {
            let _t = Tracked::new();
            yield_now().await;
            panic!("a detached child fails");
        }));
        yield_now().await;
        check_inside(main_id, "after detaching");
    });
}

/// A factory without a fixed mode: every spawn calls its hooks (`create`,
/// then `started`), through the gate.
struct Alternating(Cell<bool>);

impl asyncio_core::TaskFactory for Alternating {
    fn create(&self, _task: &asyncio_core::TaskRef) -> asyncio_core::StartMode {
        self.0.set(!self.0.get());
        if self.0.get() {
            asyncio_core::StartMode::Eager
        } else {
            asyncio_core::StartMode::Lazy
        }
    }

    fn started(&self, _task: &asyncio_core::TaskRef, _mode: asyncio_core::StartMode) {}
}

fn factory_hooks(lp: &EventLoop) {
    lp.set_task_factory(Alternating(Cell::new(false)));
    run_main(lp, |main_id| async move {
        let tasks: Vec<_> = (0..3).map(|i| create_task(child(i, 1))).collect();
        check_inside(main_id, "after spawning through the factory");
        for t in tasks {
            let _ = t.await;
            check_inside(main_id, "after awaiting a child made by the factory");
        }
    });
}

fn taskgroup(lp: &EventLoop) {
    lp.set_task_factory(eager_task_factory);
    run_main(lp, |main_id| async move {
        let out = task_group(|tg| async move {
            tg.create_task(child(0, 0));
            tg.create_task(child(1, 2));
            tg.create_fallible_task(async {
                let _t = Tracked::new();
                yield_now().await;
                Err::<(), _>(std::io::Error::other("a child fails"))
            });
            // Bounded, not `pending()`: a fault injected around a child's
            // whole poll (outside the group's own panic catching, where no
            // user code can panic) ends the task without the group hearing
            // of it, and a body waiting for ever would then wait for ever.
            asyncio_core::sleep(Duration::from_millis(5)).await;
            Ok::<_, TaskError>(Tracked::new())
        })
        .await;
        drop(out);
        check_inside(main_id, "after the group");
    });
}

fn gathered(lp: &EventLoop) {
    run_main(lp, |main_id| async move {
        let out = gather((0..3).map(|i| child(i, i))).await;
        drop(out);
        check_inside(main_id, "after gather");
    });
}

fn timeouts(lp: &EventLoop) {
    run_main(lp, |main_id| async move {
        let t = Tracked::new();
        let expired = asyncio_core::timeout(Duration::from_millis(1), async move {
            let _t = t;
            std::future::pending::<()>().await;
        })
        .await;
        check(expired.is_err(), || "the timeout did not expire".into());
        check_inside(main_id, "after an expired timeout");
        let ok = asyncio_core::timeout(Duration::from_secs(60), child(0, 1)).await;
        drop(ok);
        check_inside(main_id, "after a timeout that did not expire");
    });
}

fn close_with_pending(lp: &EventLoop) {
    run_main(lp, |main_id| async move {
        for _ in 0..3 {
            drop(create_task(async {
                let _t = Tracked::new();
                std::future::pending::<()>().await;
            }));
        }
        // One that never ran at all.
        let never = create_task(async {
            let _t = Tracked::new();
        });
        drop(never);
        yield_now().await;
        check_inside(main_id, "before leaving work pending");
    });
}

fn cross_thread(lp: &EventLoop) {
    run_main(lp, |main_id| async move {
        let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
        let woken = Rc::new(Cell::new(false));
        let w = woken.clone();
        let waiter = create_task(std::future::poll_fn(move |cx| {
            if w.get() {
                return std::task::Poll::Ready(Tracked::new());
            }
            w.set(true);
            let _ = tx.send(cx.waker().clone());
            std::task::Poll::Pending
        }));
        yield_now().await;
        let Ok(waker) = rx.try_recv() else { return };
        let thread = std::thread::spawn(move || {
            waker.wake_by_ref();
            waker
        });
        let _ = waiter.await;
        check_inside(main_id, "after a wake from another thread");
        let waker = thread.join().expect("the waking thread");
        drop(waker);
    });
}

/// One run of `workload` on a fresh loop, with the invariants after it.
/// Returns the broken invariant, if one was.
fn one_run(name: &str, workload: Workload, check_bytes: bool) -> Result<(), String> {
    let before_live = live();
    let before_bytes = counting::net();
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    let reports = Rc::new(Cell::new(0u32));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |_: &ExceptionContext| r.set(r.get() + 1)));
    let ran = catch_unwind(AssertUnwindSafe(|| workload(&lp)));
    if let Err(payload) = &ran
        && let Some(Broken(what)) = payload.downcast_ref::<Broken>()
    {
        return Err(format!("{name}: {what}"));
    }
    // Any other panic is an injected one (or its consequence) coming out of
    // the main task: allowed.
    drop(ran);
    if current_task().is_some() {
        return Err(format!("{name}: a task is current after the run"));
    }
    let closed = catch_unwind(AssertUnwindSafe(|| lp.close()));
    match closed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("{name}: close() failed: {e}")),
        Err(p) if p.downcast_ref::<InjectedPanic>().is_some() => {
            return Err(format!("{name}: close() unwound"));
        }
        Err(_) => return Err(format!("{name}: close() panicked")),
    }
    drop(lp);
    drop(reports);
    if live() != before_live {
        return Err(format!(
            "{name}: {} tracked values left alive (or dropped twice) after the loop went",
            live() - before_live
        ));
    }
    if check_bytes && counting::net() != before_bytes {
        return Err(format!(
            "{name}: {} bytes not given back after the loop went",
            counting::net() - before_bytes
        ));
    }
    Ok(())
}

/// Which k to run: all of them natively, a sample under Miri.
fn ks(n: u64) -> Vec<u64> {
    if cfg!(miri) {
        let mut ks = vec![1, n.div_ceil(2), n];
        ks.dedup();
        ks
    } else {
        (1..=n).collect()
    }
}

/// Runs `workload` for every fault and every k; returns the k range covered.
fn plan(name: &str, workload: Workload, check_bytes: bool) -> u64 {
    quiet_panics();
    // Warm-up: thread-locals and lazily made statics allocate once.
    fault_plan::arm(0, Fault::Panic);
    one_run(name, workload, false).unwrap_or_else(|e| panic!("clean run: {e}"));
    fault_plan::arm(0, Fault::Panic);
    one_run(name, workload, check_bytes).unwrap_or_else(|e| panic!("clean run: {e}"));
    let n = fault_plan::disarm();
    assert!(
        n > 0,
        "{name}: the workload calls no user code through the gate"
    );
    let mut broken = Vec::new();
    let only_k: Option<u64> = std::env::var("FAULT_PLAN_K")
        .ok()
        .and_then(|k| k.parse().ok());
    for (fault_name, fault) in faults() {
        for k in ks(n) {
            if only_k.is_some_and(|only| only != k) {
                continue;
            }
            if std::env::var_os("FAULT_PLAN_VERBOSE").is_some() {
                eprintln!("{name}: fault '{fault_name}' at gate call {k}/{n}");
            }
            fault_plan::arm(k, fault.clone());
            let out = one_run(name, workload, check_bytes);
            fault_plan::disarm();
            if let Err(e) = out {
                broken.push(format!("fault '{fault_name}' at gate call {k}/{n}: {e}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken runs:\n{}",
        broken.len(),
        broken.join("\n")
    );
    eprintln!(
        "fault plan {name}: gate calls 1..={n}, {} faults each",
        faults().len()
    );
    n
}

/// Injected panics are expected by the thousand: the panic hook stays quiet
/// for them (and only for them).
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<InjectedPanic>().is_none()
                && !info.payload().is::<Broken>()
                && !format!("{info}").contains("a detached child fails")
            {
                prev(info);
            }
        }));
    });
}

#[test]
fn every_fault_at_every_gate_call_of_an_eager_spawn_keeps_the_loop_consistent() {
    plan("eager spawn", eager_spawn, true);
}

#[test]
fn every_fault_at_every_gate_call_of_a_lazy_spawn_keeps_the_loop_consistent() {
    plan("lazy spawn", lazy_spawn, true);
}

#[test]
fn every_fault_at_every_gate_call_of_spawns_through_factory_hooks_keeps_the_loop_consistent() {
    plan("factory hooks", factory_hooks, true);
}

#[test]
fn every_fault_at_every_gate_call_of_a_task_group_keeps_the_loop_consistent() {
    plan("task group", taskgroup, true);
}

#[test]
fn every_fault_at_every_gate_call_of_a_gather_keeps_the_loop_consistent() {
    plan("gather", gathered, true);
}

#[test]
fn every_fault_at_every_gate_call_of_timeouts_keeps_the_loop_consistent() {
    plan("timeouts", timeouts, true);
}

#[test]
fn every_fault_at_every_gate_call_of_a_close_with_pending_work_keeps_the_loop_consistent() {
    plan("close with pending work", close_with_pending, true);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a real thread with a channel: slow under Miri, covered natively"
)]
fn every_fault_at_every_gate_call_of_a_cross_thread_wake_keeps_the_loop_consistent() {
    // Another thread allocates and frees too: only the tracked values count.
    plan("cross-thread wake", cross_thread, false);
}

#[test]
fn the_fault_plan_can_fail_a_broken_invariant() {
    // The harness itself: a workload that leaves a value alive is caught.
    // (The value is kept aside rather than forgotten, and dropped after the
    // check, so that Miri's and ASan's leak checkers stay quiet.)
    thread_local! {
        static KEPT: std::cell::RefCell<Vec<Tracked>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn leaky(lp: &EventLoop) {
        run_main(lp, |_| async {
            KEPT.with(|k| k.borrow_mut().push(Tracked::new()));
        });
    }
    fault_plan::arm(0, Fault::Panic);
    let out = one_run("leaky", leaky, false);
    fault_plan::disarm();
    KEPT.with(|k| k.borrow_mut().clear());
    assert!(out.is_err(), "a value left alive went unnoticed");
}
