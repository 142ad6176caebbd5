//! The gate: the one place through which the runtime calls user code.
//!
//! A future's `poll` and `Drop`, an output's or a panic payload's `Drop`, a
//! waker's `wake` and `Drop`, done callbacks, `call_soon` and timer callbacks,
//! fd and signal callbacks, the exception handler (its call and its `Drop`),
//! the task factory's hooks, context values' destructors, and the default
//! exception handler's own write to stderr: each runs inside [`call`], which
//! catches a panic and hands back its payload. No state transition of the
//! loop has a gate call in its middle: a value that must be disposed of while
//! a transition is under way is deferred (see `LoopInner::defer`) and
//! disposed of through the gate once the transition is whole.
//!
//! Keeping every such call here makes "user code may panic or re-enter the
//! loop at any point" testable: with the `fault-plan` feature, the gate can be
//! told to misbehave at its k-th call ([`fault_plan`]), and a test runs a
//! workload once for every k. `ci/gate-check.sh` fails when `catch_unwind` or
//! a waker's `wake` appears in asyncio-core outside this module.

use std::any::Any;
use std::io::Write;

/// A caught panic's payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// What kind of user code a gate call runs. Only the fault plan and a
/// debugger look at it; with the `fault-plan` feature off it costs nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "fault-plan"), allow(dead_code))]
pub(crate) enum Site {
    /// A task's future is polled.
    Poll,
    /// A task's future is dropped.
    DropFuture,
    /// A user value (an outcome, a context, a callback never run, …) is dropped.
    DropValue,
    /// A panic payload nobody looks at is dropped.
    DropPayload,
    /// A waker is woken.
    Wake,
    /// A callback runs (`call_soon`, a timer, a done callback, an fd or a
    /// signal callback, `call_soon_threadsafe`).
    Callback,
    /// The exception handler is called.
    Handler,
    /// A task factory's hook runs.
    FactoryHook,
}

/// Runs user code `f`: its panic comes back as `Err(payload)` instead of
/// unwinding through the runtime.
#[inline(always)]
pub(crate) fn call<R>(site: Site, f: impl FnOnce() -> R) -> Result<R, Payload> {
    #[cfg(feature = "fault-plan")]
    {
        fault_plan::gate_call(site, f)
    }
    #[cfg(not(feature = "fault-plan"))]
    {
        let _ = site;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
    }
}

/// Runs user code for a library built on the loop (a protocol's method, a
/// transport's callback) through the gate: a panic comes back as a
/// [`PanicError`](crate::PanicError) instead of unwinding through the
/// library, and the fault plan counts and faults the call as it does the
/// loop's own callbacks.
///
/// ```
/// let out = asyncio_core::call_user(|| -> u8 { panic!("protocol method failed") });
/// assert_eq!(out.unwrap_err().message(), "protocol method failed");
/// assert_eq!(asyncio_core::call_user(|| 7).unwrap(), 7);
/// ```
///
/// # Errors
/// The panic of `f`, as a `PanicError` (its payload is dropped through the
/// gate when the error is dropped).
pub fn call_user<R>(f: impl FnOnce() -> R) -> Result<R, crate::PanicError> {
    call(Site::Callback, f).map_err(crate::PanicError::new)
}

/// Drops `value`; returns the payload if its destructor panicked.
#[inline]
pub(crate) fn drop_catching<T>(value: T) -> Option<Payload> {
    if !std::mem::needs_drop::<T>() {
        drop(value);
        return None;
    }
    call(Site::DropValue, move || drop(value)).err()
}

/// Wakes `waker` (user code: it may be any executor's); returns the payload
/// if `wake` or the waker's destructor panicked.
#[inline]
pub(crate) fn wake(waker: std::task::Waker) -> Option<Payload> {
    call(Site::Wake, move || waker.wake()).err()
}

/// Wakes `waker` for a caller that is itself called by user code (a
/// `set_result`, a `cancel`): a panic in `wake` goes on to that caller, after
/// the gate saw it.
#[inline]
pub(crate) fn wake_or_resume(waker: std::task::Waker) {
    if let Some(payload) = wake(waker) {
        std::panic::resume_unwind(payload);
    }
}

/// How many payloads in a row [`discard_payload`] drops before it gives up.
const DISCARD_ROUNDS: usize = 8;

/// Drops a panic payload that nobody will look at.
///
/// A payload is a user value too: its destructor may panic, and the payload of
/// that panic may panic in turn when dropped. Each is dropped the same way; a
/// chain longer than a few links (only a payload built to panic in every
/// destructor makes one) ends with the last payload leaked, which is better
/// than unwinding through the caller or aborting.
pub(crate) fn discard_payload(payload: Payload) {
    let mut next = payload;
    for _ in 0..DISCARD_ROUNDS {
        match call(Site::DropPayload, move || drop(next)) {
            Ok(()) => return,
            Err(again) => next = again,
        }
    }
    std::mem::forget(next);
}

/// How many values one [`dispose_refused`] drops, counting those their
/// destructors refused in turn, before it gives up on a chain with no end.
pub(crate) const REFUSED_CHAIN_LIMIT: usize = 100_000;

thread_local! {
    /// While a refused value is being dropped on this thread: the values its
    /// destructor had refused in turn, dropped next by the outermost call.
    static REFUSED: std::cell::RefCell<Option<std::collections::VecDeque<Box<dyn Any>>>> =
        const { std::cell::RefCell::new(None) };
    /// How many values [`dispose_refused`] was handed on this thread.
    static REFUSED_COUNT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many values the runtime refused on this thread so far (so `close()`
/// can say how many futures destructors handed it while it closed).
pub(crate) fn refused_count() -> u64 {
    REFUSED_COUNT.try_with(std::cell::Cell::get).unwrap_or(0)
}

/// Drops a value the runtime refuses (a future for a task on a closed loop,
/// or with no running loop; a callback for a closed loop) without recursion.
///
/// The destructor of such a value may itself try to create a task, with a
/// future that owns another such value: dropped where it is refused, each
/// link of that chain would drop the next one deeper on the stack, until it
/// overflows (CPython never runs a coroutine a closed loop refused, so its
/// chain ends at once). Here the first refused value is dropped by its
/// caller's frame, and the values refused meanwhile wait in a thread-local
/// queue that frame drains, one after another. A chain longer than
/// [`REFUSED_CHAIN_LIMIT`] is cut: the rest is leaked, and said so on stderr,
/// rather than the thread hanging on a chain that never ends.
///
/// Never unwinds: a panic of a refused value's destructor is written to
/// stderr (the loop that refused the value is closed, or there is none, so
/// there is no exception handler to hand it to), and the next value is
/// dropped all the same.
pub(crate) fn dispose_refused<T: 'static>(value: T) {
    let _ = REFUSED_COUNT.try_with(|c| c.set(c.get() + 1));
    if !std::mem::needs_drop::<T>() {
        return;
    }
    // During the thread's exit the queue may be gone: the value is dropped
    // where it is (a thread that exits runs no new tasks anyway).
    let mut value = Some(value);
    let queued = REFUSED.try_with(|q| match &mut *q.borrow_mut() {
        Some(queue) => {
            if let Some(v) = value.take() {
                queue.push_back(Box::new(v));
            }
            true
        }
        None => false,
    });
    let Some(value) = value else {
        return;
    };
    if queued.is_err() {
        drop(value);
        return;
    }
    let _ = REFUSED.try_with(|q| *q.borrow_mut() = Some(std::collections::VecDeque::new()));
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            // Whatever is left (only after an unwind this cannot catch) is
            // leaked rather than dropped in a destructor.
            if let Ok(Some(queue)) = REFUSED.try_with(|q| q.borrow_mut().take()) {
                if queue.is_empty() {
                    drop(queue);
                } else {
                    std::mem::forget(queue);
                }
            }
        }
    }
    let done = Done;
    let first = call(Site::DropValue, move || drop(value)).err();
    if let Some(payload) = first {
        report_refused_panic(payload);
    }
    let mut dropped = 1usize;
    let mut leaked = 0usize;
    loop {
        let next = REFUSED
            .try_with(|q| q.borrow_mut().as_mut().and_then(|q| q.pop_front()))
            .ok()
            .flatten();
        let Some(next) = next else { break };
        if dropped >= REFUSED_CHAIN_LIMIT {
            leaked += 1;
            std::mem::forget(next);
            continue;
        }
        dropped += 1;
        if let Err(payload) = call(Site::DropValue, move || drop(next)) {
            report_refused_panic(payload);
        }
    }
    drop(done);
    if leaked > 0 {
        write_stderr(format_args!(
            "asyncio: gave up after dropping {dropped} values that destructors kept handing \
             to a loop that refused them; {leaked} more were leaked"
        ));
    }
}

/// Writes the panic of a refused value's destructor to stderr, then drops
/// its payload.
fn report_refused_panic(payload: Payload) {
    // `PanicError` reads the payload's message, and drops the payload
    // through the gate when it goes.
    let panic = crate::error::PanicError::new(payload);
    write_stderr(format_args!(
        "asyncio: a destructor panicked while a value the loop refused was dropped: {}",
        panic.message()
    ));
}

/// Writes one line to stderr, best effort: a closed or full stderr (a program
/// run as `prog 2>&1 | head`) loses the line instead of panicking, as
/// `eprintln!` would. Never unwinds.
pub(crate) fn write_stderr(line: std::fmt::Arguments<'_>) {
    let result = call(Site::Handler, || {
        let mut err = std::io::stderr().lock();
        // Errors are dropped on purpose: there is nowhere left to report them.
        let _ = err.write_fmt(line);
        let _ = err.write_all(b"\n");
    });
    if let Err(payload) = result {
        // Only a `Display` of the user's (in `line`) can panic here.
        discard_payload(payload);
    }
}

#[cfg(feature = "fault-plan")]
pub mod fault_plan {
    //! Fault injection at the gate (feature `fault-plan`, for tests).
    //!
    //! [`arm`] makes the gate misbehave at its k-th call on this thread,
    //! counted from the arming: it panics after the user code ran
    //! ([`Fault::Panic`]), or runs an action of the test's before it (a
    //! [`Fault::ReEnter`] that creates a task, cancels the current one,
    //! closes a loop or replaces the exception handler). Gate calls made by
    //! the action itself are neither counted nor faulted. SQLite's fault
    //! injection at every allocation is the model: a test runs a workload
    //! once for every k up to [`calls`] of a clean run and checks the
    //! loop's invariants each time.

    use std::cell::{Cell, RefCell};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::rc::Rc;

    use super::{Payload, Site};

    /// What the gate does at the armed call.
    #[derive(Clone)]
    pub enum Fault {
        /// The user code runs, then panics (as a destructor that panics after
        /// its cleanup, or a poll that panics after registering its waker).
        Panic,
        /// The action runs before the user code, as user code that re-enters
        /// the loop would.
        ReEnter(Rc<dyn Fn()>),
        /// The action runs, then the user code, then a panic: user code
        /// that re-enters the loop and then fails.
        ReEnterThenPanic(Rc<dyn Fn()>),
    }

    impl std::fmt::Debug for Fault {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Fault::Panic => f.write_str("Panic"),
                Fault::ReEnter(_) => f.write_str("ReEnter"),
                Fault::ReEnterThenPanic(_) => f.write_str("ReEnterThenPanic"),
            }
        }
    }

    /// The payload of an injected panic.
    #[derive(Debug)]
    pub struct InjectedPanic;

    thread_local! {
        static CALLS: Cell<u64> = const { Cell::new(0) };
        static ARMED: RefCell<Option<(u64, Fault)>> = const { RefCell::new(None) };
        static FIRED: Cell<bool> = const { Cell::new(false) };
        static INSIDE_ACTION: Cell<bool> = const { Cell::new(false) };
    }

    /// Counts gate calls from zero and makes call number `k` (1-based)
    /// misbehave as `fault` says. `k == 0` only counts.
    pub fn arm(k: u64, fault: Fault) {
        CALLS.with(|c| c.set(0));
        FIRED.with(|f| f.set(false));
        ARMED.with(|a| *a.borrow_mut() = (k > 0).then_some((k, fault)));
    }

    /// Stops faulting; returns how many gate calls were made since [`arm`].
    pub fn disarm() -> u64 {
        ARMED.with(|a| a.borrow_mut().take());
        CALLS.with(Cell::get)
    }

    /// Gate calls on this thread since [`arm`].
    pub fn calls() -> u64 {
        CALLS.with(Cell::get)
    }

    /// Whether the armed fault went off.
    pub fn fired() -> bool {
        FIRED.with(Cell::get)
    }

    /// Runs a fault's action with the plan switched off for its own gate
    /// calls. If it panics, the user code after it does not run, as when
    /// user code panics early.
    fn run_action(action: &dyn Fn()) {
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                let _ = INSIDE_ACTION.try_with(|i| i.set(false));
            }
        }
        let _ = INSIDE_ACTION.try_with(|i| i.set(true));
        let leave = Leave;
        action();
        drop(leave);
    }

    pub(super) fn gate_call<R>(site: Site, f: impl FnOnce() -> R) -> Result<R, Payload> {
        // During the thread's exit (a thread-local's destructor dropping a
        // task) the plan's own thread-locals may be gone: no fault then.
        if INSIDE_ACTION.try_with(Cell::get).unwrap_or(true) {
            return catch_unwind(AssertUnwindSafe(f));
        }
        let Ok(n) = CALLS.try_with(|c| {
            c.set(c.get() + 1);
            c.get()
        }) else {
            return catch_unwind(AssertUnwindSafe(f));
        };
        let fault = ARMED
            .try_with(|a| match &*a.borrow() {
                Some((k, fault)) if *k == n => Some(fault.clone()),
                _ => None,
            })
            .ok()
            .flatten();
        let Some(fault) = fault else {
            return catch_unwind(AssertUnwindSafe(f));
        };
        let _ = FIRED.try_with(|f| f.set(true));
        if std::env::var_os("FAULT_PLAN_TRACE").is_some() {
            eprintln!(
                "fault {fault:?} at gate call {n} ({site:?}):\n{}",
                std::backtrace::Backtrace::force_capture()
            );
        }
        catch_unwind(AssertUnwindSafe(move || match fault {
            Fault::Panic => {
                let out = f();
                drop(out);
                std::panic::panic_any(InjectedPanic)
            }
            Fault::ReEnter(action) => {
                run_action(&*action);
                f()
            }
            Fault::ReEnterThenPanic(action) => {
                run_action(&*action);
                drop(f());
                std::panic::panic_any(InjectedPanic)
            }
        }))
    }
}
