//! The event loop: [`EventLoop`], the public face of one thread's loop, and
//! `LoopInner`, the state its handles, tasks and wakers share.
//!
//! The loop's work is split by concern:
//! - `run`: the ready queue, one turn of the loop, a task's step and what
//!   happens when it completes, and the run loop behind `run_until_complete`;
//! - `spawn`: the spawn paths (the eager fast path, the general path with
//!   options and factory hooks) and task-cell allocation;
//! - `registry`: the slab of tasks that have suspended, and `all_tasks`;
//! - `exceptions`: the exception handler and how the loop reports panics;
//! - `running`: the loop running on this thread and the free functions that
//!   reach it (`get_running_loop`, `create_task`, `current_task`, …).

use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::resume_unwind;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::blocking::{Pool, PoolConfig};
use crate::cell_cache::CellCache;
use crate::context;
use crate::error::{RunError, RuntimeError, TaskError};
use crate::factory::{StartMode, TaskFactory, TaskOptions};
use crate::io::FdCallbacks;
use crate::reactor::Driver;
use crate::shared::Shared;
use crate::task::{Task, TaskRef};
use crate::time::Timers;

mod exceptions;
mod main_task;
mod registry;
mod run;
mod running;
mod spawn;

pub(crate) use exceptions::Deferred;
use exceptions::Handler;
pub use exceptions::{ExceptionContext, ExceptionHandler, default_exception_handler};
pub(crate) use run::Call;
use run::Packed;
pub use run::{CallHandle, IO_POLL_INTERVAL};
pub use running::{
    all_tasks, create_task, create_task_in_place, create_task_with, current_task, get_running_loop,
    in_eager_step, in_task_start, set_task_factory, task_failure_count, try_create_task,
};
pub(crate) use running::{closed_loop, running_inner};
pub use spawn::MAX_EAGER_DEPTH;

pub(crate) struct LoopInner {
    pub(crate) shared: Arc<Shared>,
    /// Memory of finished task cells, reused by new tasks.
    pub(crate) cells: CellCache,
    /// FIFO of tasks and callbacks to run. Loop thread only; every access is a
    /// short call that never runs user code while borrowed.
    ready: UnsafeCell<VecDeque<Packed>>,
    /// `call_soon_threadsafe` callbacks taken from the injector at the start
    /// of a turn after its last foreign wake: they are the ready queue's
    /// tail, run after it in the same turn, without an `Rc<Call>` each (see
    /// `drain_injector`). Empty outside `run_once`.
    injected_calls: RefCell<VecDeque<Box<dyn FnOnce() + Send>>>,
    /// Tasks that are not done and have suspended at least once, each holding
    /// one reference for the list, at its `Header::slot` (see `registry`).
    /// Loop thread only; every access is a short call that runs no user code.
    registry: UnsafeCell<registry::Registry>,
    running: Cell<bool>,
    /// `stop()` was called: the run in progress (or the next one) ends after
    /// the turn it is in (see `EventLoop::stop`). Cleared when a run ends.
    pub(crate) stopping: Cell<bool>,
    /// The nesting depth of the step in progress when it is not an eager
    /// step: 0, or inside `finish_cancel_now` the depth of the cancellation
    /// being finished (see `spawn::nesting_below`).
    pub(crate) nesting_base: Cell<u32>,
    /// Turns in a row that ended with tasks still ready (see `busy_turn`).
    busy_turns: Cell<u32>,
    /// The buffer an I/O wait fills with wake-ups, kept between waits so
    /// that a wait allocates nothing (taken while in use: a nested wait
    /// starts an empty one).
    io_wakeups: Cell<Vec<crate::io::Wakeup>>,
    pub(crate) closed: Cell<bool>,
    /// Whether the owning handle (the one `EventLoop::new()` returned) still
    /// lives; the loop closes when it goes (see `EventLoop`).
    owned: Cell<bool>,
    next_id: Cell<u64>,
    /// The factory's fixed mode, read on every spawn without a dynamic call;
    /// `None` in debug mode (see `refresh_modes`).
    fixed_mode: Cell<Option<StartMode>>,
    /// The installed factory's own fixed mode.
    factory_mode: Cell<Option<StartMode>>,
    /// The loop runs, its factory is fixed eager and no context variable is in
    /// use on this thread: spawns may take the eager fast path (see
    /// `refresh_fast_eager`). One flag, so the fast path tests one byte.
    pub(crate) fast_eager: Cell<bool>,
    factory: RefCell<Option<Rc<dyn TaskFactory>>>,
    handler: RefCell<Option<Handler>>,
    /// What transitions deferred (see `Deferred`); empty between steps.
    deferred: RefCell<VecDeque<Deferred>>,
    pub(crate) debug: Cell<bool>,
    /// Debug mode reports callbacks and task steps that take longer.
    pub(crate) slow_callback_duration: Cell<std::time::Duration>,
    /// Timers: `sleep`, timeouts, `call_later`.
    pub(crate) timers: RefCell<Timers>,
    /// Where the loop waits (its poller, made on first need), and its I/O
    /// registrations.
    pub(crate) driver: Driver,
    pub(crate) fd_callbacks: FdCallbacks,
    /// Signal handlers (`add_signal_handler`) and their wake-up.
    pub(crate) signals: crate::signals::SignalsCell,
    /// The default executor of `to_thread`/`run_in_executor`, started lazily.
    pub(crate) pool: RefCell<Option<Arc<Pool>>>,
    pub(crate) pool_config: Cell<PoolConfig>,
    /// The default executor set with `set_default_executor` (in place of
    /// `pool`).
    pub(crate) executor: RefCell<Option<Arc<dyn crate::blocking::Executor>>>,
    /// `shutdown_default_executor` was called: the default executor takes
    /// no more work.
    pub(crate) executor_shut_down: Cell<bool>,
    /// Unique among all loops of the process (addresses can be reused).
    pub(crate) id: u64,
}

static NEXT_LOOP_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Whether `ASYNCIO_DEBUG` asks for debug mode (read once per process).
fn debug_from_env() -> bool {
    static DEBUG: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("ASYNCIO_DEBUG").is_some_and(|v| !v.is_empty()))
}

/// An event loop, asyncio's `AbstractEventLoop` for one thread.
///
/// It runs tasks (futures that need not be `Send`) one at a time on the thread
/// that created it. `EventLoop` is a cheap handle: clones refer to the same loop,
/// which closes when the last handle is dropped (cancelling whatever tasks are
/// left). Only the handle [`EventLoop::new`] returned owns the loop, as
/// tokio's `Runtime` owns what its `Handle`s refer to: when it is dropped
/// (or when the run it was dropped in ends) the loop closes. Every other
/// handle — a clone, [`get_running_loop`], [`TaskRef::get_loop`] — refers to
/// the loop without keeping it open, so a task that holds a handle to its own
/// loop across an await (asyncio's everyday idiom) cannot keep that loop
/// alive in a cycle. Such a handle stays valid after the loop closed; the loop
/// then says so ([`is_closed`](Self::is_closed), [`RuntimeError::Closed`]).
/// To hand the loop's ownership on, move the original handle. Most programs use [`asyncio::run`](https://docs.rs/asyncio) or a
/// `Runner` instead of driving a loop by hand.
///
/// ```
/// use asyncio::EventLoop;
///
/// let lp = EventLoop::new();
/// let n = lp
///     .run_until_complete(async {
///         let a = asyncio::create_task(async { 1 });
///         let b = asyncio::create_task(async { 2 });
///         a.await.unwrap() + b.await.unwrap()
///     })
///     .unwrap();
/// assert_eq!(n, 3);
/// lp.close().unwrap();
/// ```
pub struct EventLoop {
    pub(crate) inner: Rc<LoopInner>,
    /// Whether this handle is the owning one (`LoopInner::owned`; see the type's
    /// docs): a handle reached from inside the loop does not.
    owning: bool,
}

impl EventLoop {
    /// A new, idle loop bound to the current thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        EventLoop {
            // Built knowing its own address, which its `Shared` keeps for the
            // tasks (see `Header::owner`).
            inner: Rc::new_cyclic(|me| LoopInner::new(me.as_ptr())),
            owning: true,
        }
    }

    /// A handle reached from inside the loop (its running loop, a task's
    /// loop): it keeps the memory alive but not the loop open, so one held by
    /// the loop's own tasks or futures makes no cycle.
    pub(crate) fn from_inner(inner: Rc<LoopInner>) -> Self {
        EventLoop {
            inner,
            owning: false,
        }
    }

    /// Runs `future` as a task until it completes, and returns its output.
    ///
    /// The future becomes the loop's main task (created through the task factory,
    /// so `current_task()` inside it is that task); other tasks run alongside it.
    /// When it completes the loop stops; tasks still pending stay for the next run.
    ///
    /// # Errors
    /// [`RuntimeError::Closed`] on a closed loop, [`RuntimeError::AlreadyRunning`]
    /// from inside this loop, [`RuntimeError::AnotherLoopRunning`] from inside
    /// another loop, [`RunError::Cancelled`] if the main task was cancelled,
    /// [`RuntimeError::Stalled`] if the main task waits but nothing could ever
    /// wake it (no task ready, no waker or loop handle alive anywhere), and
    /// [`RuntimeError::Stopped`] if [`stop`](Self::stop) ended the run before
    /// the main future completed (asyncio's "Event loop stopped before Future
    /// completed."; the main future is dropped, since it may borrow from the
    /// caller). A stop requested before the call lets the run make one turn
    /// first, as asyncio's.
    ///
    /// The future may borrow from the caller (it is finished or dropped
    /// before this returns, as with `futures::executor::block_on`); the tasks
    /// it creates are `'static` as ever.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// let mut hits = 0;
    /// lp.run_until_complete(async {
    ///     asyncio::yield_now().await;
    ///     hits += 1;
    /// })
    /// .unwrap();
    /// assert_eq!(hits, 1);
    /// ```
    ///
    /// # Panics
    /// If the main future panics, the panic is resumed here once the loop has
    /// stopped, as asyncio re-raises the main coroutine's exception.
    pub fn run_until_complete<F>(&self, future: F) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        self.run_main(future, None)
    }

    /// [`run_until_complete`](Self::run_until_complete) with options for the main
    /// task (its name, its [`Context`](crate::Context), eager start).
    ///
    /// # Errors
    /// As `run_until_complete`.
    pub fn run_until_complete_with<F>(
        &self,
        future: F,
        options: TaskOptions,
    ) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        self.run_main(future, Some(options))
    }

    fn run_main<F>(&self, future: F, options: Option<TaskOptions>) -> Result<F::Output, RunError>
    where
        F: Future,
    {
        let _running = self.enter()?;
        // The future stays here (it may borrow from the caller); the main
        // task polls it through `main_task`'s pointer, which the guard kills
        // on every way out of this function, the future dropped first.
        let mut fut = std::pin::pin!(Some(future));
        let out = Cell::new(None);
        let mut slot = main_task::MainSlot::new(fut.as_mut(), &out);
        let (main_future, guard) = main_task::main_future(&mut slot);
        let mut main = self.inner.spawn(main_future, options);
        let turned = self.turn_until(|| main.done(), true);
        drop(guard);
        // As asyncio's `run_forever` (which its `run_until_complete` runs),
        // a run consumes the stop request that ended it, or that it ignored.
        self.inner.stopping.set(false);
        if let Err(e) = turned {
            drop(_running);
            drop(main);
            self.close_if_unowned();
            return Err(e.into());
        }
        drop(_running);
        let outcome = main
            .try_result()
            .expect("the main task is done and its result untaken");
        drop(main);
        self.close_if_unowned();
        match outcome {
            Ok(()) => Ok(out
                .take()
                .expect("a main task that finished stored its future's output")),
            Err(TaskError::Cancelled(c)) => Err(RunError::Cancelled(c)),
            Err(TaskError::Panicked(p)) => resume_unwind(p.into_panic()),
        }
    }

    /// A handle to this loop that does not keep it open (see the type's
    /// docs), for what the loop's own tasks and futures keep.
    pub(crate) fn non_owning(&self) -> EventLoop {
        EventLoop::from_inner(Rc::clone(&self.inner))
    }

    /// Closes the loop if the last owning handle went while it ran (a task
    /// dropped it): nothing else would close it now.
    fn close_if_unowned(&self) {
        if !self.inner.owned.get() && !self.inner.running.get() {
            let _ = self.close();
        }
    }

    /// Cancels every task that is not done and runs the loop until each has
    /// finished its cancellation (what `Runner.close()` and `asyncio.run` do
    /// before closing), then once more so their done callbacks run.
    ///
    /// As asyncio's, it works on a snapshot: a task created meanwhile (by a
    /// destructor, say) is not waited for — it runs while the loop does, and
    /// [`close`](Self::close) drops it if it is still pending — so a task that
    /// keeps making new ones cannot keep this from returning.
    ///
    /// # Errors
    /// As [`run_until_complete`](Self::run_until_complete) for a loop that is
    /// closed or running.
    pub fn cancel_all_tasks(&self) -> Result<(), RuntimeError> {
        let _running = self.enter()?;
        let tasks = self.inner.all_tasks();
        for task in &tasks {
            task.cancel();
        }
        // Cancellation drops a future at its task's next step, so a turn ends
        // them all, unless a request was withdrawn with `uncancel`: then wait
        // for it as a run would, and stop if nothing can ever wake it.
        let _stalled = self.turn_until(|| tasks.iter().all(TaskRef::done), false);
        drop(tasks);
        // The done callbacks the cancellations scheduled.
        self.inner.run_once();
        // asyncio cancels with a `run_until_complete`, which consumes a
        // `stop()` made meanwhile: it must not cut the next run short.
        self.inner.stopping.set(false);
        drop(_running);
        self.close_if_unowned();
        Ok(())
    }

    /// Schedules `f` to run on the next iteration, in FIFO order with tasks, as
    /// `loop.call_soon`. A panic in `f` is reported to the exception handler.
    ///
    /// # Panics
    /// On a closed loop, which could never run `f` (asyncio raises
    /// `RuntimeError`); [`try_call_soon`](Self::try_call_soon) returns the
    /// error instead.
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> CallHandle {
        self.try_call_soon(f)
            .unwrap_or_else(|e| closed_loop("EventLoop::call_soon", e))
    }

    /// [`call_soon`](Self::call_soon), failing with [`RuntimeError::Closed`]
    /// on a closed loop.
    pub fn try_call_soon(&self, f: impl FnOnce() + 'static) -> Result<CallHandle, RuntimeError> {
        self.try_call_soon_in(f, crate::contextvars::copy_for_task())
    }

    /// [`call_soon`](Self::call_soon) with the context `f` runs in
    /// (asyncio's `call_soon(callback, context=ctx)`); without it a callback
    /// runs in a copy of the context current when it was scheduled.
    ///
    /// ```
    /// let var = asyncio::ContextVar::new("user");
    /// let ctx = asyncio::Context::new();
    /// ctx.run(|| var.set("ada"));
    /// let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    /// let s = seen.clone();
    /// let lp = asyncio::EventLoop::new();
    /// lp.call_soon_with_context(move || s.set(var.get()), ctx);
    /// lp.stop();
    /// lp.run_forever().unwrap();
    /// assert_eq!(seen.get(), Some("ada"));
    /// ```
    ///
    /// # Panics
    /// On a closed loop, as `call_soon`.
    pub fn call_soon_with_context(
        &self,
        f: impl FnOnce() + 'static,
        context: crate::Context,
    ) -> CallHandle {
        self.try_call_soon_in(f, Some(context))
            .unwrap_or_else(|e| closed_loop("EventLoop::call_soon_with_context", e))
    }

    fn try_call_soon_in(
        &self,
        f: impl FnOnce() + 'static,
        context: Option<crate::Context>,
    ) -> Result<CallHandle, RuntimeError> {
        if self.inner.closed.get() {
            crate::gate::dispose_refused(f);
            // A context's values are user values too.
            self.inner.drop_reporting(context);
            return Err(RuntimeError::Closed);
        }
        if context.is_some() {
            crate::contextvars::mark_in_use();
        }
        Ok(self.inner.call_soon_in(Box::new(f), context))
    }

    /// Creates a task on this loop, started as the task factory says.
    ///
    /// Unlike [`create_task`](crate::create_task) this works on a loop that is not
    /// running; the task then starts when the loop runs.
    ///
    /// # Panics
    /// If the loop is closed: it could never run the task. Use
    /// [`try_create_task`](Self::try_create_task) to get an error instead.
    #[track_caller]
    pub fn create_task<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.try_create_task(future)
            .expect("create_task on a closed event loop: create tasks before close()")
    }

    /// Like [`create_task`](Self::create_task), failing with
    /// [`RuntimeError::Closed`] on a closed loop.
    #[track_caller]
    pub fn try_create_task<F>(&self, future: F) -> Result<Task<F::Output>, RuntimeError>
    where
        F: Future + 'static,
    {
        if self.inner.closed.get() {
            // Not dropped here: its destructor may try again (see
            // `dispose_refused`), as during `close()`.
            crate::gate::dispose_refused(future);
            return Err(RuntimeError::Closed);
        }
        Ok(self.inner.spawn_default(future))
    }

    /// Creates a task with per-call options (name, eager start).
    ///
    /// # Panics
    /// If the loop is closed.
    #[track_caller]
    pub fn create_task_with<F>(&self, future: F, options: TaskOptions) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        if self.inner.closed.get() {
            crate::gate::dispose_refused(future);
            panic!("create_task_with on a closed event loop: create tasks before close()");
        }
        self.inner.spawn(future, Some(options))
    }

    /// Installs the task factory, as `loop.set_task_factory`.
    pub fn set_task_factory(&self, factory: impl TaskFactory) {
        self.set_task_factory_rc(Some(Rc::new(factory)));
    }

    /// Installs a shared factory, or with `None` goes back to the lazy default.
    pub fn set_task_factory_rc(&self, factory: Option<Rc<dyn TaskFactory>>) {
        self.inner.factory_mode.set(
            factory
                .as_ref()
                .map_or(Some(StartMode::Lazy), |f| f.fixed_mode()),
        );
        self.inner.refresh_modes();
        // The old factory is dropped after the borrow ends: its `Drop` is
        // user code, which may reach the loop (and its factory) again.
        let old = self.inner.factory.replace(factory);
        self.inner.drop_reporting(old);
    }

    /// The installed factory; `None` means the lazy default.
    pub fn get_task_factory(&self) -> Option<Rc<dyn TaskFactory>> {
        self.inner.factory.borrow().clone()
    }

    /// Installs the exception handler (`None` restores the default, which prints
    /// one line on stderr), as `loop.set_exception_handler`.
    pub fn set_exception_handler(&self, handler: Option<impl Fn(&ExceptionContext) + 'static>) {
        // As for the factory: the old handler's `Drop` runs outside the borrow.
        let old = self
            .inner
            .handler
            .replace(handler.map(|h| Rc::new(h) as Handler));
        self.inner.drop_reporting(old);
    }

    /// The exception handler installed with
    /// [`set_exception_handler`](Self::set_exception_handler); `None` means the
    /// default one (asyncio's `loop.get_exception_handler()`).
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// assert!(lp.get_exception_handler().is_none());
    /// lp.set_exception_handler(Some(|_: &asyncio::ExceptionContext| {}));
    /// assert!(lp.get_exception_handler().is_some());
    /// ```
    pub fn get_exception_handler(&self) -> Option<ExceptionHandler> {
        self.inner.handler.try_borrow().ok().and_then(|h| h.clone())
    }

    /// The default exception handler (asyncio's
    /// `loop.default_exception_handler(context)`): one line on stderr. A
    /// custom handler may hand contexts it does not handle on to it; see
    /// [`default_exception_handler`](crate::default_exception_handler).
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        exceptions::default_exception_handler(ctx);
    }

    /// Passes `ctx` to the exception handler, as `loop.call_exception_handler`.
    pub fn call_exception_handler(&self, ctx: &ExceptionContext) {
        self.inner.call_exception_handler(ctx);
    }

    /// The current time of the loop's monotonic clock.
    ///
    /// asyncio returns float seconds; Rust deadlines are `Instant`s.
    pub fn time(&self) -> Instant {
        Instant::now()
    }

    /// Whether the loop is running right now.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Bounds the memory of finished task cells the loop keeps for reuse
    /// (default 256 MiB; an idle loop keeps at most 1 MiB, a closed one none).
    /// `0` turns the reuse off. On a closed loop it does nothing.
    pub fn set_task_cache_limit(&self, bytes: usize) {
        if !self.inner.closed.get() {
            self.release_cached(self.inner.cells.set_limit(bytes));
        }
    }

    /// Gives back the strong counts of `cells` cells the cache just freed
    /// (each cached cell keeps one: see `LoopInner::alloc_cell`).
    fn release_cached(&self, cells: usize) {
        for _ in 0..cells {
            // SAFETY: the freed cell's count, given back once; `self.inner`
            // holds another, so the loop outlives this.
            unsafe { Rc::decrement_strong_count(Rc::as_ptr(&self.inner)) };
        }
    }

    /// Debug mode (asyncio's `loop.set_debug`), also on for every new loop
    /// when the environment variable `ASYNCIO_DEBUG` is set to a non-empty
    /// value (`PYTHONASYNCIODEBUG`'s counterpart).
    ///
    /// In debug mode tasks record where they were created
    /// ([`TaskRef::created_at`]), which reports about them show; task steps
    /// and callbacks slower than
    /// [`slow_callback_duration`](Self::slow_callback_duration) are logged
    /// (through the `log` crate, at `warn` level, target `asyncio`) with the
    /// task's name and creation site; and a task still pending when the loop
    /// closes is reported to the exception handler ("Task was destroyed but
    /// it is pending!"). Off, it costs nothing on the spawn and step paths;
    /// on, every spawn takes the general path and every step reads the clock.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// lp.set_debug(true);
    /// let site = lp
    ///     .run_until_complete(async { asyncio::create_task(async {}).created_at().is_some() })
    ///     .unwrap();
    /// assert!(site);
    /// ```
    pub fn set_debug(&self, enabled: bool) {
        self.inner.debug.set(enabled);
        self.inner.refresh_modes();
    }

    /// How long a callback or task step may run before debug mode logs it
    /// (asyncio's `loop.slow_callback_duration`, 100 ms by default).
    pub fn slow_callback_duration(&self) -> std::time::Duration {
        self.inner.slow_callback_duration.get()
    }

    /// Sets [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, duration: std::time::Duration) {
        self.inner.slow_callback_duration.set(duration);
    }

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.inner.debug.get()
    }

    /// The task this loop is polling right now, if any.
    pub fn current_task(&self) -> Option<TaskRef> {
        if !std::ptr::eq(context::running_loop(), Rc::as_ptr(&self.inner)) {
            return None;
        }
        current_task()
    }

    /// The tasks of this loop that are not done, as `asyncio.all_tasks()`.
    pub fn all_tasks(&self) -> Vec<TaskRef> {
        self.inner.all_tasks()
    }

    /// Closes the loop, as `loop.close()`; closing twice does nothing.
    ///
    /// Tasks still pending have their futures dropped here (their destructors run)
    /// and end cancelled; their done callbacks run. Use
    /// [`cancel_all_tasks`](Self::cancel_all_tasks) first to let them finish their
    /// cancellation while the loop runs.
    ///
    /// # Errors
    /// [`RuntimeError::CloseWhileRunning`] while the loop runs.
    pub fn close(&self) -> Result<(), RuntimeError> {
        if self.inner.running.get() {
            return Err(RuntimeError::CloseWhileRunning);
        }
        if self.inner.closed.get() {
            return Ok(());
        }
        self.inner.closed.set(true);
        // The user values dropped below report a panicking destructor to the
        // exception handler and closing goes on: whatever they do, the loop
        // ends closed, and the shared side (what other threads wait on)
        // closed with it. The guard covers a panic that escapes anyway.
        struct CloseShared<'a>(&'a Shared);
        impl Drop for CloseShared<'_> {
            fn drop(&mut self) {
                self.0.close();
            }
        }
        let close_shared = CloseShared(&self.inner.shared);
        // Nothing is cached from now on (first, so that nothing below can
        // leave cached cells holding the loop alive).
        self.release_cached(self.inner.cells.set_limit(0));
        let refused_before = crate::gate::refused_count();
        self.inner.cancel_everything_now();
        // Destructors that ran above may have tried to create tasks (or
        // schedule callbacks) on the closing loop: their futures were dropped
        // without running, iteratively (`dispose_refused`). Say so, as
        // asyncio warns of a task destroyed while pending.
        let refused = crate::gate::refused_count() - refused_before;
        if refused > 0 {
            self.inner
                .call_exception_handler(&ExceptionContext::new(format!(
                    "close() destroyed {refused} future(s) or callback(s) that destructors of \
                 cancelled tasks handed to the closing loop, without running them"
                )));
        }
        drop(close_shared);
        // Timer callbacks and I/O registrations go with the loop (dropped
        // outside their borrows: they may own anything).
        // One at a time: a second panic while a collection's drop unwinds
        // would abort.
        let timers = self.inner.timers.borrow_mut().take_all();
        for timer in timers {
            self.inner.drop_reporting(timer);
        }
        let io: Vec<_> = self.inner.driver.io.borrow_mut().drain().collect();
        for entry in io {
            self.inner.drop_reporting(entry);
        }
        self.inner.fd_callbacks_clear();
        self.inner.clear_signal_handlers();
        // Like asyncio's `executor.shutdown(wait=False)`: running jobs finish
        // in the background, nothing new starts.
        self.inner.shutdown_executors_nowait();
        let factory = self.inner.factory.borrow_mut().take();
        self.inner.drop_reporting(factory);
        // Last: with no handler left, a panic in its own destructor goes to
        // the default one.
        let handler = self.inner.handler.borrow_mut().take();
        self.inner.drop_reporting(handler);
        Ok(())
    }

    /// Makes the loop's poller (`epoll`) and its wake-up fd now, as asyncio's
    /// loops make their selector when they are created. Without this call a
    /// loop makes them when it first needs them (its first I/O registration,
    /// or its first wait while it handles a signal), and a loop that never
    /// does I/O never makes them. A loop that will serve I/O in a process
    /// that may run out of file descriptors (a server's worker loops) makes
    /// them at start with this, so that a connection handed to it later
    /// cannot fail for want of a poller. Calling it again does nothing.
    ///
    /// # Errors
    /// The OS error if the poller or its wake-up fd cannot be made (out of
    /// file descriptors); [`RuntimeError::Closed`] (as an `io::Error` of
    /// kind `Other`) on a closed loop. Under Miri, which has no poller, it
    /// does nothing.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// lp.open_poller().unwrap();
    /// lp.open_poller().unwrap(); // once made, it stays
    /// ```
    pub fn open_poller(&self) -> std::io::Result<()> {
        if self.inner.closed.get() {
            return Err(std::io::Error::other(RuntimeError::Closed));
        }
        #[cfg(not(miri))]
        self.inner.poller()?;
        Ok(())
    }

    /// Whether two handles refer to the same loop.
    pub fn same_loop(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

/// A clone is a handle that does not keep the loop open (see [`EventLoop`]):
/// only the handle `EventLoop::new()` returned does, as tokio's `Runtime`
/// owns what its `Handle`s only refer to.
impl Clone for EventLoop {
    fn clone(&self) -> Self {
        self.non_owning()
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        if !self.owning {
            return;
        }
        self.inner.owned.set(false);
        if !self.inner.running.get() {
            let _ = self.close();
        }
    }
}

impl PartialEq for EventLoop {
    fn eq(&self, other: &Self) -> bool {
        self.same_loop(other)
    }
}

impl Eq for EventLoop {}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .field("ready", &self.inner.ready_len())
            .finish()
    }
}

impl LoopInner {
    /// The loop's poller, made now if it has none yet (its first I/O
    /// registration, or its first wait while it handles signals).
    ///
    /// # Errors
    /// If the kernel refuses the poller or its wake-up fd (out of file
    /// descriptors).
    #[cfg(not(miri))]
    pub(crate) fn poller(&self) -> std::io::Result<&crate::reactor::Poller> {
        let fresh = !self.driver.has_poller();
        let poller = self.driver.poller(&self.shared.notifier)?;
        #[cfg(unix)]
        if fresh {
            // Signal handlers wake the loop through the poller's eventfd
            // from now on (Linux).
            self.signals
                .borrow()
                .publish(self.shared.notifier.poll_wake());
        }
        #[cfg(not(unix))]
        let _ = fresh;
        Ok(poller)
    }

    fn new(me: *const LoopInner) -> Self {
        let me = NonNull::new(me.cast_mut()).expect("an Rc's address is never null");
        LoopInner {
            shared: Arc::new(Shared::new(me)),
            cells: CellCache::new(),
            ready: UnsafeCell::new(VecDeque::new()),
            injected_calls: RefCell::new(VecDeque::new()),
            registry: UnsafeCell::new(registry::Registry::default()),
            running: Cell::new(false),
            stopping: Cell::new(false),
            nesting_base: Cell::new(0),
            busy_turns: Cell::new(0),
            io_wakeups: Cell::new(Vec::new()),
            closed: Cell::new(false),
            owned: Cell::new(true),
            next_id: Cell::new(1),
            fixed_mode: Cell::new(if debug_from_env() {
                None
            } else {
                Some(StartMode::Lazy)
            }),
            factory_mode: Cell::new(Some(StartMode::Lazy)),
            fast_eager: Cell::new(false),
            factory: RefCell::new(None),
            handler: RefCell::new(None),
            deferred: RefCell::new(VecDeque::new()),
            debug: Cell::new(debug_from_env()),
            slow_callback_duration: Cell::new(std::time::Duration::from_millis(100)),
            timers: RefCell::new(Timers::default()),
            driver: Driver::new(),
            fd_callbacks: FdCallbacks::default(),
            signals: Default::default(),
            pool: RefCell::new(None),
            pool_config: Cell::new(PoolConfig::default()),
            executor: RefCell::new(None),
            executor_shut_down: Cell::new(false),
            id: NEXT_LOOP_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }
}
