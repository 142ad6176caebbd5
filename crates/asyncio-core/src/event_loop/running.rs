//! The loop running on this thread, and the free functions that reach it as
//! asyncio's module-level ones do.

use std::future::Future;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::context;
use crate::error::RuntimeError;
use crate::factory::{TaskFactory, TaskOptions};
use crate::task::state::*;
use crate::task::{Task, TaskRef};

use super::{EventLoop, LoopInner};

/// The loop running on this thread, as `asyncio.get_running_loop()`.
///
/// # Errors
/// [`RuntimeError::NoRunningLoop`] outside a running loop.
///
/// ```
/// assert!(asyncio::get_running_loop().is_err());
/// asyncio::run(async {
///     let lp = asyncio::get_running_loop().unwrap();
///     assert!(!lp.is_closed());
/// })
/// .unwrap();
/// ```
pub fn get_running_loop() -> Result<EventLoop, RuntimeError> {
    let lp = context::running_loop();
    if lp.is_null() {
        return Err(RuntimeError::NoRunningLoop);
    }
    // SAFETY: a running loop is kept alive by the `EventLoop` that runs it; we take
    // a new strong count of our own.
    let inner = unsafe {
        Rc::increment_strong_count(lp);
        Rc::from_raw(lp)
    };
    Ok(EventLoop::from_inner(inner))
}

/// The running loop's inner state, as a new strong reference.
pub(crate) fn running_inner() -> Result<Rc<LoopInner>, RuntimeError> {
    let lp = context::running_loop();
    if lp.is_null() {
        return Err(RuntimeError::NoRunningLoop);
    }
    // SAFETY: as in `get_running_loop`.
    Ok(unsafe {
        Rc::increment_strong_count(lp);
        Rc::from_raw(lp)
    })
}

/// The running loop's inner state, borrowed: the `ManuallyDrop` holds the
/// running loop's count without changing it.
#[inline]
pub(super) fn running_borrowed() -> Result<std::mem::ManuallyDrop<Rc<LoopInner>>, RuntimeError> {
    let lp = context::running_loop();
    if lp.is_null() {
        return Err(RuntimeError::NoRunningLoop);
    }
    // SAFETY: as in `get_running_loop`; never dropped, so the count is unchanged.
    Ok(std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(lp) }))
}

/// Runs `f` with the running loop's inner state.
#[inline]
pub(super) fn with_running<R>(f: impl FnOnce(&Rc<LoopInner>) -> R) -> Result<R, RuntimeError> {
    let lp = running_borrowed()?;
    Ok(f(&lp))
}

/// Creates a task on the running loop, as `asyncio.create_task`.
///
/// The future need not be `Send`: it runs on this thread. The task starts as the
/// loop's factory says (lazily by default: at the back of the ready queue).
///
/// # Panics
/// Outside a running loop, with a message saying where to call it from. Use
/// [`try_create_task`] to get [`RuntimeError::NoRunningLoop`] instead.
///
/// ```
/// let total = asyncio::run(async {
///     let a = asyncio::create_task(async { 20 });
///     let b = asyncio::create_task(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(total, 42);
/// ```
// Always inlined: the spawn path under it is, and a program that creates the
// same future type from several places (a gather, a loop) would otherwise pay
// a call and lose the caller's context for the hot path.
#[inline(always)]
#[track_caller]
pub fn create_task<F>(future: F) -> Task<F::Output>
where
    F: Future + 'static,
{
    match try_create_task(future) {
        Ok(task) => task,
        Err(e) => no_running_loop("create_task", e),
    }
}

/// [`create_task`] with the future made by `make` inside the task's memory.
///
/// `create_task(fut)` moves `fut` through a few calls into the task; usually the
/// compiler removes the copies, but a small future with padding (say a pointer
/// and a byte) can end up copied field by field and then read back whole, which
/// the CPU cannot forward from its store buffer. Building the future in place
/// avoids that: wrappers that spawn a very large number of small tasks (a task
/// group's children, for one) use this. If `make` panics, nothing is created and
/// the panic goes on.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let out = lp
///     .run_until_complete(async {
///         let n = 20;
///         asyncio_core::create_task_in_place(move || async move { n + 1 }).await
///     })
///     .unwrap();
/// assert_eq!(out, Ok(21));
/// ```
///
/// # Panics
/// Outside a running loop, as [`create_task`] (then `make` is not called).
#[inline]
#[track_caller]
pub fn create_task_in_place<F>(make: impl FnOnce() -> F) -> Task<F::Output>
where
    F: Future + 'static,
{
    match running_borrowed() {
        Ok(lp) => lp.spawn_default_with(make),
        Err(e) => no_running_loop("create_task_in_place", e),
    }
}

/// The panic of a scheduling call on a closed loop.
#[cold]
#[inline(never)]
pub(crate) fn closed_loop(what: &str, e: RuntimeError) -> ! {
    panic!("{what}: {e}: schedule work before close(), or use the try_ form to get the error")
}

#[cold]
#[inline(never)]
pub(super) fn no_running_loop(what: &str, e: RuntimeError) -> ! {
    panic!("asyncio::{what}: {e}")
}

/// Like [`create_task`], failing with [`RuntimeError::NoRunningLoop`] outside a
/// running loop.
///
/// ```
/// assert!(asyncio::try_create_task(async {}).is_err(), "no loop runs here");
/// let v = asyncio::run(async { asyncio::try_create_task(async { 1 }).unwrap().await.unwrap() });
/// assert_eq!(v.unwrap(), 1);
/// ```
#[inline(always)]
#[track_caller]
pub fn try_create_task<F>(future: F) -> Result<Task<F::Output>, RuntimeError>
where
    F: Future + 'static,
{
    match running_borrowed() {
        Ok(lp) => Ok(lp.spawn_default(future)),
        Err(e) => {
            // Not dropped here: its destructor may try again (see `dispose_refused`).
            crate::gate::dispose_refused(future);
            Err(e)
        }
    }
}

/// Creates a task on the running loop with per-call options.
///
/// # Panics
/// Outside a running loop.
///
/// ```
/// let name = asyncio::run(async {
///     let opts = asyncio::TaskOptions::new().name("worker").eager_start(true);
///     let t = asyncio::create_task_with(async { asyncio::current_task().unwrap().name() }, opts);
///     assert!(t.done(), "started eagerly, finished inside create_task_with");
///     t.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(name, "worker");
/// ```
#[track_caller]
pub fn create_task_with<F>(future: F, options: TaskOptions) -> Task<F::Output>
where
    F: Future + 'static,
{
    match running_borrowed() {
        Ok(lp) => lp.spawn(future, Some(options)),
        Err(e) => {
            crate::gate::dispose_refused(future);
            panic!("asyncio::create_task_with: {e}")
        }
    }
}

/// The task being run on this thread, as `asyncio.current_task()`.
///
/// Returns `None` outside a task — including outside a running loop, where
/// asyncio would raise `RuntimeError` instead. It costs one thread-local read.
///
/// ```
/// asyncio::run(async {
///     let me = asyncio::current_task().expect("the main future runs as a task");
///     me.set_name("main");
///     let child = asyncio::create_task(async {
///         asyncio::current_task().unwrap().name()
///     });
///     assert_ne!(child.await.unwrap(), "main");
///     assert_eq!(me.name(), "main");
/// })
/// .unwrap();
/// assert!(asyncio::current_task().is_none(), "no task outside the loop");
/// ```
#[inline]
pub fn current_task() -> Option<TaskRef> {
    let ptr = NonNull::new(context::current_task().cast_mut())?;
    // SAFETY: the current task is being polled, so its local side is alive.
    Some(unsafe { TaskRef::clone_raw(ptr) })
}

/// Whether the task being run on this thread is in its eager step: it was
/// started inside the `create_task` that made it (eager factory, or
/// `eager_start`) and has not suspended yet, so that call is still on the
/// stack. `false` outside a task.
///
/// asyncio has no such query; it lets a library tell a task that ends inside
/// its own `create_task` from one that ends later (asyncio-structured's
/// `TaskGroup` does not count the former). It costs a thread-local read and
/// one load.
#[inline]
pub fn in_eager_step() -> bool {
    let task = context::current_task();
    if task.is_null() {
        return false;
    }
    // The whole word, read as written: called at the end of an eager step, the
    // word was stored moments ago, and the one-byte load the compiler would
    // otherwise narrow this to is forwarded from that store less well.
    // SAFETY: the current task is being polled on this thread, so alive; only
    // this thread touches its state word, and a `Cell` may be read through its
    // pointer.
    let state = unsafe { std::ptr::read_volatile((*task).state.as_ptr()) };
    state & EAGER_STEP != 0
}

/// Whether a `create_task` call on this thread is starting a task on the
/// general path right now: it made the task and is applying options and the
/// task factory's hooks, which may panic; a panic then drops the new task's
/// future before its first poll. (The eager fast path polls the future at
/// once, and is never counted here.)
///
/// Not in asyncio. It lets a future that some structure counts once its
/// `create_task` returns (asyncio-structured's `TaskGroup` children) tell that
/// it is dropped inside that call, never counted, from being cancelled before
/// it ever ran.
pub fn in_task_start() -> bool {
    context::starting() > 0
}

/// The tasks of the running loop that are not done, as `asyncio.all_tasks()`.
///
/// # Errors
/// [`RuntimeError::NoRunningLoop`] outside a running loop.
///
/// ```
/// asyncio::run(async {
///     let t = asyncio::create_task(asyncio::sleep(std::time::Duration::from_millis(5)));
///     // The main task and `t`.
///     assert_eq!(asyncio::all_tasks().unwrap().len(), 2);
///     t.await.unwrap();
///     assert_eq!(asyncio::all_tasks().unwrap().len(), 1);
/// })
/// .unwrap();
/// ```
pub fn all_tasks() -> Result<Vec<TaskRef>, RuntimeError> {
    with_running(|lp| lp.all_tasks())
}

/// Installs a task factory on the running loop (`loop.set_task_factory`).
///
/// # Panics
/// Outside a running loop: use [`EventLoop::set_task_factory`] on a loop you hold.
///
/// ```
/// asyncio::run(async {
///     asyncio::set_task_factory(asyncio::eager_task_factory);
///     let t = asyncio::create_task(async { 5 });
///     assert!(t.done(), "eager: it ran inside create_task");
/// })
/// .unwrap();
/// ```
pub fn set_task_factory(factory: impl TaskFactory) {
    match get_running_loop() {
        Ok(lp) => lp.set_task_factory(factory),
        Err(e) => panic!(
            "asyncio::set_task_factory: {e}; outside a loop call EventLoop::set_task_factory"
        ),
    }
}

/// How many tasks have ended failed (panicked or cancelled) on this thread so
/// far; a failed task's [`TaskRef::failure_number`] is this count just after
/// its failure was recorded.
///
/// Not in asyncio. Read before waiting on tasks, it tells failures that came
/// before (a number up to it) from those that came after.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// lp.run_until_complete(async {
///     let before = asyncio_core::task_failure_count();
///     let t = asyncio::create_task(std::future::pending::<()>());
///     t.cancel();
///     let r = t.to_ref();
///     assert!(t.await.is_err());
///     assert_eq!(r.failure_number(), Some(before + 1));
///     assert_eq!(asyncio_core::task_failure_count(), before + 1);
/// })
/// .unwrap();
/// ```
pub fn task_failure_count() -> u64 {
    context::failures()
}
