//! The event loop: the ready queue, the registry of live tasks, and the run loop.

use std::alloc::Layout;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::blocking::{Pool, PoolConfig};
use crate::cell_cache::{self, CellCache};
use crate::context;
use crate::contextvars;
use crate::error::{PanicError, RunError, RuntimeError, TaskError};
use crate::factory::{StartMode, TaskFactory, TaskOptions};
use crate::io::{FdCallbacks, Wakeup};
use crate::reactor::Driver;
use crate::shared::{Injected, Shared};
use crate::task::header::Header;
use crate::task::raw::TaskCell;
use crate::task::state::*;
use crate::task::{Task, TaskRef, waker};
use crate::time::Timers;

/// How deep eager steps may nest (an eager task creating an eager task …) before
/// new tasks fall back to being scheduled. Each level keeps a `poll` frame on the
/// native stack; the bound keeps a million-deep chain from overflowing it.
pub const MAX_EAGER_DEPTH: u32 = 64;

/// How many turns of a loop that never runs out of ready tasks pass between
/// two looks at I/O (asyncio looks on every turn; tokio every 61 ticks). A
/// turn runs everything that was ready when it began, so this bounds how long
/// a ready socket waits by 61 turns, at the cost of one non-blocking
/// `epoll_wait` per 61 busy turns, and nothing when no I/O is registered.
pub const IO_POLL_INTERVAL: u32 = 61;
const _: () = assert!(MAX_EAGER_DEPTH < EAGER_DEPTH >> EAGER_DEPTH_SHIFT);

/// Marks a `create_task` call on the general path, from before its task is
/// made until it returns or unwinds (see [`in_task_start`]).
struct Starting;

impl Starting {
    fn enter() -> Self {
        context::add_starting(1);
        Starting
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        context::add_starting(-1);
    }
}

/// How many eager steps are nested on this thread: the depth the current task
/// keeps in its state word if it is in its eager step, else 0.
#[inline(always)]
fn eager_depth_below(current: *const Header) -> u32 {
    if current.is_null() {
        return 0;
    }
    // SAFETY: the current task is being polled on this thread, so alive; only
    // this thread touches its state word.
    let state = unsafe { (*current).state.get() };
    if state & EAGER_STEP != 0 {
        (state & EAGER_DEPTH) >> EAGER_DEPTH_SHIFT
    } else {
        0
    }
}

/// What the exception handler receives, as asyncio's context dict.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExceptionContext {
    /// What happened, e.g. `"Task exception was never retrieved"`.
    pub message: String,
    /// The task concerned, if any.
    pub task: Option<TaskRef>,
    /// The panic, if one was caught.
    pub panic: Option<PanicError>,
}

impl ExceptionContext {
    /// A context with only a message, for libraries that report through the
    /// loop's exception handler (asyncio's `call_exception_handler({'message': ...})`).
    ///
    /// ```
    /// let ctx = asyncio_core::ExceptionContext::new("socket.accept() failed");
    /// assert_eq!(ctx.to_string(), "socket.accept() failed");
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        ExceptionContext {
            message: message.into(),
            task: None,
            panic: None,
        }
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(task) = &self.task {
            write!(f, " (task {} '{}')", task.id(), task.name())?;
        }
        if let Some(panic) = &self.panic {
            write!(f, ": panicked: {}", panic.message())?;
        }
        Ok(())
    }
}

type Handler = Rc<dyn Fn(&ExceptionContext)>;

/// A callback scheduled with `call_soon` (or a timer, or another thread).
pub(crate) struct Call {
    cancelled: Cell<bool>,
    f: Cell<Option<Box<dyn FnOnce()>>>,
}

impl Call {
    pub(crate) fn new(f: Box<dyn FnOnce()>) -> Rc<Call> {
        Rc::new(Call {
            cancelled: Cell::new(false),
            f: Cell::new(Some(f)),
        })
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
        drop(self.f.take());
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

/// One entry of the ready queue; kept two words wide (checked below).
enum Runnable {
    Task(TaskRef),
    Call(Rc<Call>),
}

const _: () = assert!(std::mem::size_of::<Runnable>() == 2 * std::mem::size_of::<usize>());

/// A callback scheduled with [`EventLoop::call_soon`]; it can still be cancelled.
pub struct CallHandle {
    call: Rc<Call>,
}

impl CallHandle {
    /// Cancels the callback if it has not run yet, as `Handle.cancel()`.
    pub fn cancel(&self) {
        self.call.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.call.cancelled.get()
    }
}

impl fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallHandle")
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

pub(crate) struct LoopInner {
    pub(crate) shared: Arc<Shared>,
    /// Memory of finished task cells, reused by new tasks.
    pub(crate) cells: CellCache,
    /// FIFO of tasks and callbacks to run. Loop thread only; every access is a
    /// short call that never runs user code while borrowed.
    ready: UnsafeCell<VecDeque<Runnable>>,
    /// Tasks that are not done, as an intrusive doubly-linked list through their
    /// headers (`prev`/`next`); each listed task holds one reference for the list.
    /// Loop thread only.
    registry_head: Cell<Option<NonNull<Header>>>,
    registry_len: Cell<usize>,
    running: Cell<bool>,
    /// Turns in a row that ended with tasks still ready (see `busy_turn`).
    busy_turns: Cell<u32>,
    pub(crate) closed: Cell<bool>,
    /// Live `EventLoop` handles; the loop closes when the last goes.
    handles: Cell<usize>,
    next_id: Cell<u64>,
    /// The factory's fixed mode, read on every spawn without a dynamic call.
    fixed_mode: Cell<Option<StartMode>>,
    /// The loop runs, its factory is fixed eager and no context variable is in
    /// use on this thread: spawns may take the eager fast path (see
    /// `refresh_fast_eager`). One flag, so the fast path tests one byte.
    pub(crate) fast_eager: Cell<bool>,
    factory: RefCell<Option<Rc<dyn TaskFactory>>>,
    handler: RefCell<Option<Handler>>,
    debug: Cell<bool>,
    /// Timers: `sleep`, timeouts, `call_later`.
    pub(crate) timers: RefCell<Timers>,
    /// Where the loop waits, and its I/O registrations.
    pub(crate) driver: Driver,
    pub(crate) fd_callbacks: FdCallbacks,
    /// Signal handlers (`add_signal_handler`) and their self-pipe.
    pub(crate) signals: crate::signals::SignalsCell,
    /// The default executor of `to_thread`/`run_in_executor`, started lazily.
    pub(crate) pool: RefCell<Option<Arc<Pool>>>,
    pub(crate) pool_config: Cell<PoolConfig>,
    /// Unique among all loops of the process (addresses can be reused).
    pub(crate) id: u64,
}

static NEXT_LOOP_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl LoopInner {
    fn new() -> Self {
        let (driver, notifier) = Driver::new()
            .unwrap_or_else(|e| panic!("could not create the event loop's poller (epoll): {e}"));
        LoopInner {
            shared: Arc::new(Shared::new(notifier)),
            cells: CellCache::new(),
            ready: UnsafeCell::new(VecDeque::new()),
            registry_head: Cell::new(None),
            registry_len: Cell::new(0),
            running: Cell::new(false),
            busy_turns: Cell::new(0),
            closed: Cell::new(false),
            handles: Cell::new(1),
            next_id: Cell::new(1),
            fixed_mode: Cell::new(Some(StartMode::Lazy)),
            fast_eager: Cell::new(false),
            factory: RefCell::new(None),
            handler: RefCell::new(None),
            debug: Cell::new(false),
            timers: RefCell::new(Timers::default()),
            driver,
            fd_callbacks: FdCallbacks::default(),
            signals: Default::default(),
            pool: RefCell::new(None),
            pool_config: Cell::new(PoolConfig::default()),
            id: NEXT_LOOP_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    pub(crate) fn push_call(&self, call: Rc<Call>) {
        self.push_ready(Runnable::Call(call));
    }

    /// Waits in the kernel until the next timer, an I/O event or a wake-up,
    /// then queues what became ready.
    fn idle(&self) {
        self.busy_turns.set(0);
        let timeout = self.timer_timeout();
        let mut wakeups = Vec::new();
        if self.shared.prepare_to_sleep() {
            self.driver.wait(timeout, &mut wakeups);
            self.shared.awake();
        }
        self.dispatch_io(wakeups);
        self.fire_timers();
    }

    /// A turn that left tasks ready: the loop will not wait in the kernel,
    /// so every [`IO_POLL_INTERVAL`] such turns it looks at I/O without
    /// waiting, and a socket becomes ready however busy the tasks keep it.
    #[inline]
    fn busy_turn(&self) {
        let turns = self.busy_turns.get() + 1;
        if turns < IO_POLL_INTERVAL {
            self.busy_turns.set(turns);
        } else {
            self.busy_turns.set(0);
            self.poll_io_now();
        }
    }

    #[cold]
    #[inline(never)]
    fn poll_io_now(&self) {
        if self.driver.has_io() || self.signals.borrow().any() {
            let mut wakeups = Vec::new();
            self.driver
                .wait(Some(std::time::Duration::ZERO), &mut wakeups);
            self.dispatch_io(wakeups);
        }
    }

    /// Wakes the futures and queues the callbacks that I/O events asked for.
    fn dispatch_io(&self, wakeups: Vec<Wakeup>) {
        for w in wakeups {
            match w {
                Wakeup::Waker(w) => self.wake_reporting(w),
                Wakeup::Signals => self.dispatch_signals(),
                Wakeup::Callback(cb, key) => {
                    self.push_call(Call::new(Box::new(move || {
                        if let Ok(lp) = running_inner() {
                            crate::io::run_callback(&lp, &cb, key);
                        }
                    })));
                }
            }
        }
    }

    #[inline]
    fn push_ready(&self, r: Runnable) {
        // SAFETY: loop thread; no other borrow of `ready` is alive (see the field).
        unsafe { (*self.ready.get()).push_back(r) }
    }

    #[inline]
    fn pop_ready(&self) -> Option<Runnable> {
        // SAFETY: as in `push_ready`.
        unsafe { (*self.ready.get()).pop_front() }
    }

    fn ready_len(&self) -> usize {
        // SAFETY: as in `push_ready`.
        unsafe { (*self.ready.get()).len() }
    }

    /// Puts the task at the back of the ready queue unless it is queued or done.
    #[inline]
    pub(crate) fn schedule(&self, task: &TaskRef) {
        let header = task.header();
        if header.has(SCHEDULED | COMPLETE) {
            return;
        }
        header.set(SCHEDULED);
        self.push_ready(Runnable::Task(task.clone()));
    }

    /// `schedule` for a waker, which holds no local reference.
    ///
    /// # Safety
    /// `ptr` is a task of this loop whose local side is alive; loop thread.
    #[inline]
    pub(crate) unsafe fn schedule_raw(&self, ptr: NonNull<Header>) {
        // SAFETY: caller's contract.
        let header = unsafe { ptr.as_ref() };
        if header.has(SCHEDULED | COMPLETE) {
            return;
        }
        header.set(SCHEDULED);
        // SAFETY: caller's contract: the local side is alive.
        self.push_ready(Runnable::Task(unsafe { TaskRef::clone_raw(ptr) }));
    }

    /// Links the task into the registry, which keeps one reference to it.
    fn register(&self, task: &TaskRef) {
        let header = task.header();
        debug_assert!(!header.has(REGISTERED));
        let ptr = std::mem::ManuallyDrop::new(task.clone()).as_ptr();
        let head = self.registry_head.get();
        header.prev.set(None);
        header.next.set(head);
        if let Some(old) = head {
            // SAFETY: listed tasks are alive: the list holds a reference to each.
            unsafe { old.as_ref() }.prev.set(Some(ptr));
        }
        self.registry_head.set(Some(ptr));
        self.registry_len.set(self.registry_len.get() + 1);
        header.set(REGISTERED);
    }

    /// Unlinks the task; returns the list's reference for the caller to drop.
    ///
    /// Takes the cell pointer itself (not a `&Header`): the returned reference
    /// must keep the provenance of the whole cell.
    fn unregister(&self, ptr: NonNull<Header>) -> Option<TaskRef> {
        // SAFETY: the caller passes a live task of this loop.
        let header = unsafe { ptr.as_ref() };
        if !header.has(REGISTERED) {
            return None;
        }
        header.clear(REGISTERED);
        let (prev, next) = (header.prev.take(), header.next.take());
        match prev {
            // SAFETY: listed neighbours are alive (the list holds references).
            Some(p) => unsafe { p.as_ref() }.next.set(next),
            None => self.registry_head.set(next),
        }
        if let Some(n) = next {
            // SAFETY: as above.
            unsafe { n.as_ref() }.prev.set(prev);
        }
        self.registry_len.set(self.registry_len.get() - 1);
        // SAFETY: the list's reference, handed over to the caller.
        Some(unsafe { TaskRef::from_raw(ptr) })
    }

    /// References to every registered task, newest first.
    fn registered(&self) -> Vec<TaskRef> {
        let mut out = Vec::with_capacity(self.registry_len.get());
        let mut cur = self.registry_head.get();
        while let Some(ptr) = cur {
            // SAFETY: listed tasks are alive; loop thread.
            out.push(unsafe { TaskRef::clone_raw(ptr) });
            // SAFETY: as above.
            cur = unsafe { ptr.as_ref() }.next.get();
        }
        out
    }

    pub(crate) fn call_soon_boxed(&self, f: Box<dyn FnOnce()>) -> CallHandle {
        let call = Call::new(f);
        self.push_ready(Runnable::Call(Rc::clone(&call)));
        CallHandle { call }
    }

    /// Creates a task and starts it as the options or the factory say.
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F, opts: Option<TaskOptions>) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.spawn_general(|| future, opts)
    }

    /// [`spawn`](Self::spawn) with the future made in place: the general path,
    /// which applies options and factory hooks (type-erased, in `start_new`).
    #[inline(always)]
    fn spawn_general<F>(
        self: &Rc<Self>,
        make: impl FnOnce() -> F,
        opts: Option<TaskOptions>,
    ) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        // Options and factory hooks, which may panic, run before the future's
        // first poll. (Declared before the task: on unwind it is dropped after
        // it.)
        let _starting = Starting::enter();
        let ptr = TaskCell::allocate_with(make, self, self.next_task_id(), HAS_HANDLE);
        // SAFETY: `allocate_with` hands us the one reference, for a cell of output `F::Output`.
        let task = unsafe { Task::from_ref(TaskRef::from_raw(ptr)) };
        self.start_new(&task, opts);
        task
    }

    /// `create_task(future)` without options.
    ///
    /// Either path moves the future once, into its cell.
    #[inline(always)]
    pub(crate) fn spawn_default<F>(self: &Rc<Self>, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.spawn_default_with(|| future)
    }

    /// [`spawn_default`](Self::spawn_default) with the future made in place.
    #[inline(always)]
    pub(crate) fn spawn_default_with<F>(
        self: &Rc<Self>,
        make: impl FnOnce() -> F,
    ) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        // The spawn path of nearly every task under the eager factory: a running
        // loop, no context variables in use.
        let creator = context::current_task();
        let depth = eager_depth_below(creator) + 1;
        if !(self.fast_eager.get() && depth <= MAX_EAGER_DEPTH) {
            return self.spawn_general(make, None);
        }
        let state = HAS_HANDLE | RUNNING | EAGER_STEP | depth << EAGER_DEPTH_SHIFT;
        let ptr = TaskCell::allocate_with(make, self, self.next_task_id(), state);
        // SAFETY: `allocate_with` hands us the one reference, for a cell of output `F::Output`.
        let task = unsafe { Task::from_ref(TaskRef::from_raw(ptr)) };
        // SAFETY: a new cell of type `F`, marked RUNNING and EAGER_STEP with its
        // depth, on the loop thread, created while `creator` is current.
        unsafe { self.eager_step::<F>(&task, creator) };
        task
    }

    /// Memory for a new task cell of `layout` (of cache class `class`), which
    /// holds one strong count of the loop from here on: a cell from the cache
    /// still holds its own, a new one is given one. (So a task that reuses a
    /// cell touches no counter, and no chain of dependent memory updates links
    /// one spawn to the next.)
    #[inline(always)]
    pub(crate) fn alloc_cell(self: &Rc<Self>, layout: Layout, class: usize) -> NonNull<u8> {
        let (mem, cached) = self.cells.alloc(layout, class);
        if !cached {
            // SAFETY: `self` is a live `Rc`; the count is the new cell's.
            unsafe { Rc::increment_strong_count(Rc::as_ptr(self)) };
        }
        mem
    }

    /// Gives the memory of a dead cell back to the loop's cache, which keeps
    /// the cell's strong count of the loop with it, or to the allocator, and
    /// the count back to the loop.
    ///
    /// # Safety
    /// `owner` (with the provenance of its `Rc`) allocated the cell with
    /// [`alloc_cell`](Self::alloc_cell); the cell is dead, holds its count, and
    /// is not used again; on the loop thread.
    #[inline(always)]
    pub(crate) unsafe fn free_cell(
        owner: NonNull<LoopInner>,
        mem: NonNull<u8>,
        layout: Layout,
        class: usize,
    ) {
        // SAFETY: the cell's count keeps the loop alive until here.
        if !unsafe { owner.as_ref() }.cells.free(mem, layout, class) {
            // SAFETY: the cell's count, given back once.
            unsafe { Rc::decrement_strong_count(owner.as_ptr().cast_const()) };
        }
    }

    /// Recomputes `fast_eager` after the loop started or stopped, or its
    /// factory changed (`contextvars` clears it when a context comes into use).
    fn refresh_fast_eager(&self) {
        self.fast_eager.set(
            self.running.get()
                && self.fixed_mode.get() == Some(StartMode::Eager)
                && !contextvars::in_use(),
        );
    }

    /// Whether a new task may run its first step now: the loop runs and eager
    /// steps are not nested too deep.
    #[inline]
    fn can_step_eagerly(&self) -> bool {
        self.running.get() && eager_depth_below(context::current_task()) < MAX_EAGER_DEPTH
    }

    #[inline]
    fn next_task_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Runs a new task's eager step, with the future's `poll` called directly
    /// (no vtable) so it can be inlined into the step.
    ///
    /// # Safety
    /// `task` is a new, never polled cell of type `F` with `RUNNING`,
    /// `EAGER_STEP` and its depth set, on the loop thread, `creator` is the
    /// current task, and the loop may step eagerly (`fast_eager`, within the
    /// depth bound).
    #[inline(always)]
    unsafe fn eager_step<F>(&self, task: &TaskRef, creator: *const Header)
    where
        F: Future + 'static,
    {
        let ptr = task.as_ptr();
        let header = task.header();
        // Makes the creator current again however the step ends. (`poll_step`
        // does not unwind; the guard keeps that from being load-bearing.)
        let current = CurrentTask::enter(ptr.as_ptr());
        // Not `push_eager`: the creator, which the chain needs, is at hand, and
        // the state word was created with `EAGER_STEP` and the depth.
        header.next.set(NonNull::new(creator.cast_mut()));
        let outcome_bits = {
            // SAFETY: the task reference keeps the header alive during the poll.
            let waker = unsafe { waker::borrowed(ptr) };
            let mut cx = std::task::Context::from_waker(&waker);
            // SAFETY: caller's contract.
            unsafe { crate::task::raw::poll_step::<F>(ptr, &mut cx) }
        };
        drop(current);
        match outcome_bits {
            Some(bits) => {
                // One update of the state word: done, with what the outcome set.
                let state =
                    (header.state.get() & !(RUNNING | EAGER_STEP | EAGER_DEPTH)) | COMPLETE | bits;
                header.state.set(state);
                if state & (COMPLETION_WORK | HAS_CONTEXT) != 0 {
                    self.eager_step_done_slow(task, state);
                }
            }
            None => {
                header.clear(RUNNING | EAGER_STEP | EAGER_DEPTH);
                self.suspended_in_eager_step(task);
            }
        }
    }

    /// Marks the task of `header` as in its eager step, linked to the task
    /// that is current now, one level deeper (see `state::EAGER_STEP`).
    #[inline]
    fn push_eager(&self, header: &Header) {
        let creator = context::current_task();
        header.next.set(NonNull::new(creator.cast_mut()));
        let depth = eager_depth_below(creator) + 1;
        header.set(EAGER_STEP | depth << EAGER_DEPTH_SHIFT);
    }

    /// The end of a fast-path eager step that has more to do than mark the
    /// task done: completion work, or a context the step put in use.
    #[cold]
    #[inline(never)]
    fn eager_step_done_slow(&self, task: &TaskRef, state: u32) {
        if state & HAS_CONTEXT != 0 {
            self.left_fast_path();
        }
        if state & COMPLETION_WORK != 0 {
            self.completion_work(task);
        }
    }

    /// A task that suspended during its eager step joins the registry (and the
    /// ready queue, if it cancelled itself meanwhile).
    #[cold]
    fn suspended_in_eager_step(&self, task: &TaskRef) {
        if task.header().has(HAS_CONTEXT) {
            self.left_fast_path();
        }
        self.register(task);
        if task.header().has(CANCEL_REQUESTED) {
            self.schedule(task);
        }
    }

    /// Starts a new task as its options, the context rules and the factory say
    /// (every spawn but the eager fast path). Not generic: the cell is built.
    #[inline(never)]
    fn start_new(&self, task: &TaskRef, mut opts: Option<TaskOptions>) {
        let explicit = opts.as_mut().and_then(|o| o.context.take());
        if let Some(ctx) = explicit.or_else(contextvars::copy_for_task) {
            task.attach_context(ctx);
        }
        let mut eager = None;
        if let Some(opts) = opts {
            if let Some(name) = opts.name {
                task.set_name(name);
            }
            eager = opts.eager_start;
        }
        let (mode, factory) = match eager {
            Some(true) => (StartMode::Eager, None),
            Some(false) => (StartMode::Lazy, None),
            None => match self.fixed_mode.get() {
                Some(mode) => (mode, None),
                None => {
                    let factory = self.factory.borrow().clone();
                    match factory {
                        Some(f) => (f.create(task), Some(f)),
                        None => (StartMode::Lazy, None),
                    }
                }
            },
        };
        let mode = self.start(task, mode);
        if let Some(f) = factory {
            // The task exists and has started: a panic here must not unwind
            // through `create_task`, whose caller would never get the task
            // (a TaskGroup would never count a child that is running). It goes
            // to the exception handler instead.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f.started(task, mode))) {
                self.report_panic(
                    "a task factory's `started` hook panicked",
                    Some(task.clone()),
                    payload,
                );
            }
        }
    }

    /// Starts the task; returns how it actually started.
    fn start(&self, task: &TaskRef, mode: StartMode) -> StartMode {
        if mode == StartMode::Eager && self.can_step_eagerly() {
            let header = task.header();
            self.push_eager(header);
            // Undoes `push_eager` however the step ends.
            struct PopEager<'a>(&'a Header);
            impl Drop for PopEager<'_> {
                fn drop(&mut self) {
                    self.0.clear(EAGER_STEP | EAGER_DEPTH);
                }
            }
            let pop = PopEager(header);
            self.step(task);
            drop(pop);
            if !header.has(COMPLETE) {
                self.register(task);
            }
            StartMode::Eager
        } else {
            self.register(task);
            self.schedule(task);
            StartMode::Lazy
        }
    }

    /// Polls the task once (or drops its future, if it was cancelled).
    #[inline]
    fn step(&self, task: &TaskRef) {
        let header = task.header();
        let ptr = task.as_ptr();
        // Restores the current task, the current context and `RUNNING` however
        // the step ends.
        let mut guard = StepGuard {
            header,
            _current: CurrentTask::enter(ptr.as_ptr()),
            prev_ctx: None,
        };
        // Only when contexts are in use: the task's context becomes current.
        if contextvars::in_use() {
            guard.prev_ctx = Some(contextvars::enter(task.context()));
        }
        header.set(RUNNING);
        let done = if header.has(CANCEL_REQUESTED) {
            header.clear(CANCEL_REQUESTED);
            // SAFETY: a live, unfinished task of this loop, on its thread.
            unsafe { (header.vtable.cancel)(ptr) };
            true
        } else {
            // SAFETY: the task reference keeps the header alive during the poll.
            let waker = unsafe { waker::borrowed(ptr) };
            let mut cx = std::task::Context::from_waker(&waker);
            // SAFETY: a live, unfinished task of this loop, on its thread, not
            // already being polled (RUNNING was clear: the loop never re-enters).
            unsafe { (header.vtable.poll)(ptr, &mut cx) }.is_ready()
        };
        drop(guard);
        if done {
            self.complete(task);
        } else if header.has(CANCEL_REQUESTED) {
            self.schedule(task);
        }
    }

    #[inline]
    fn complete(&self, task: &TaskRef) {
        let header = task.header();
        header.set(COMPLETE);
        if header.has(COMPLETION_WORK) {
            self.completion_work(task);
        }
    }

    /// Unregisters the task, wakes whoever awaits it, schedules its done
    /// callbacks and reports an unobserved failure.
    #[inline(never)]
    fn completion_work(&self, task: &TaskRef) {
        let header = task.header();
        let registered = self.unregister(task.as_ptr());
        // SAFETY: loop thread; the slot is not borrowed elsewhere.
        let mut join = unsafe { (*header.join_waker.get()).take() };
        header.clear(HAS_JOIN_WAKER);
        if header.has(HAS_CALLBACKS) {
            header.clear(HAS_CALLBACKS);
            // In the order they were added, the awaiter (the join waker) among
            // them: after the callbacks added before it first waited.
            let (callbacks, before_join) = header.with_extra(|e| {
                let before = std::mem::take(&mut e.callbacks_before_join);
                (std::mem::take(&mut e.callbacks), before)
            });
            for (id, cb) in callbacks {
                if id > before_join
                    && let Some(w) = join.take()
                {
                    self.wake_reporting(w);
                }
                let me = task.clone();
                self.call_soon_boxed(Box::new(move || cb(&me)));
            }
        }
        if let Some(w) = join {
            self.wake_reporting(w);
        }
        if header.has(FAILED) && !header.has(HAS_HANDLE | FAILURE_SEEN) {
            header.set(FAILURE_SEEN);
            self.report_unobserved(task);
        }
        drop(registered);
    }

    pub(crate) fn report_unobserved(&self, task: &TaskRef) {
        // SAFETY: the task is complete and alive (we hold a reference).
        let panic = unsafe { (task.header().vtable.peek_panic)(task.as_ptr()) };
        self.call_exception_handler(&ExceptionContext {
            message: "Task exception was never retrieved".to_owned(),
            task: Some(task.clone()),
            panic,
        });
    }

    /// Hands a caught panic to the exception handler.
    fn report_panic(&self, message: &str, task: Option<TaskRef>, payload: crate::unwind::Payload) {
        self.call_exception_handler(&ExceptionContext {
            message: message.to_owned(),
            task,
            panic: Some(PanicError::new(payload)),
        });
    }

    /// Reports a panic in the destructor of a value the loop dropped (a
    /// task's output or its context, a callback that never ran, …).
    pub(crate) fn report_drop_panic(&self, payload: crate::unwind::Payload) {
        self.report_panic(
            "a value's destructor panicked while the loop dropped it",
            None,
            payload,
        );
    }

    /// Reports the panic of a task's poll that a panic in its future's
    /// destructor replaced as the task's outcome.
    pub(crate) fn report_replaced_panic(&self, task: NonNull<Header>, first: PanicError) {
        self.call_exception_handler(&ExceptionContext {
            message: "a task panicked, then its future's destructor panicked too (the task ends with the second panic)".to_owned(),
            // SAFETY: called during the task's step, which holds a reference.
            task: Some(unsafe { TaskRef::clone_raw(task) }),
            panic: Some(first),
        });
    }

    /// Wakes a waker, reporting a panic in its `wake` instead of unwinding
    /// through the loop.
    pub(crate) fn wake_reporting(&self, waker: std::task::Waker) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake())) {
            self.report_panic("a waker panicked when woken", None, payload);
        }
    }

    /// Drops a user value, reporting a panic in its destructor.
    pub(crate) fn drop_reporting<T>(&self, value: T) {
        if let Some(payload) = crate::unwind::drop_catching(value) {
            self.report_drop_panic(payload);
        }
    }

    /// A fast-path eager step put a context in use (the task got one: the
    /// fast path attaches none, and runs only while no context is in use on
    /// the thread): the creator ran with none, so none is current again.
    #[cold]
    #[inline(never)]
    fn left_fast_path(&self) {
        if contextvars::in_use() {
            self.drop_reporting(contextvars::enter(None));
        }
    }

    pub(crate) fn call_exception_handler(&self, ctx: &ExceptionContext) {
        let handler = self.handler.borrow().clone();
        match handler {
            None => default_exception_handler(ctx),
            Some(h) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| h(ctx))) {
                    default_exception_handler(&ExceptionContext {
                        message: "Unhandled error in exception handler".to_owned(),
                        task: None,
                        panic: Some(PanicError::new(payload)),
                    });
                    default_exception_handler(ctx);
                }
            }
        }
    }

    fn run_call(&self, call: Rc<Call>) {
        if call.cancelled.get() {
            return;
        }
        if let Some(f) = call.f.take() {
            self.run_boxed(f);
        }
    }

    fn run_boxed(&self, f: Box<dyn FnOnce()>) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            self.report_panic("Exception in callback", None, payload);
        }
    }

    /// Moves wakes that came from other threads into the ready queue.
    fn drain_injector(&self) {
        while let Some(item) = self.shared.injector.pop() {
            match item {
                Injected::Wake(wake) => {
                    // SAFETY: the entry owns a waker count, so the header is allocated.
                    let header = unsafe { wake.0.as_ref() };
                    header.wakers.fetch_and(
                        !crate::task::header::REMOTE,
                        std::sync::atomic::Ordering::AcqRel,
                    );
                    if header.wakers.load(std::sync::atomic::Ordering::Relaxed)
                        & crate::task::header::LOCAL
                        != 0
                    {
                        // SAFETY: the local side is alive (LOCAL is set, and only
                        // this thread clears it) and the task is ours.
                        unsafe { self.schedule_raw(wake.0) };
                    }
                    drop(wake);
                }
                // Boxed twice over (`Call` holds the box): a wide `Runnable`
                // would slow every ready-queue operation more than this costs.
                Injected::Call(f) => self.push_call(Call::new(f)),
            }
        }
    }

    /// One iteration: take in foreign wakes, then run what was ready at its start.
    fn run_once(&self) {
        self.drain_injector();
        let n = self.ready_len();
        for _ in 0..n {
            match self.pop_ready() {
                Some(Runnable::Task(task)) => {
                    task.header().clear(SCHEDULED);
                    if !task.header().has(COMPLETE) {
                        self.step(&task);
                    }
                }
                Some(Runnable::Call(call)) => self.run_call(call),
                None => break,
            }
        }
    }

    /// Whether nothing could ever wake the loop again: no ready work, and no waker
    /// or handle anywhere that could inject some.
    fn stalled(&self) -> bool {
        self.ready_len() == 0
            && self.shared.injector.is_empty()
            && Arc::strong_count(&self.shared) == 1
            && self.timers.borrow().len() == 0
            && !self.driver.has_io()
            && !self.signals.borrow().any()
    }

    fn all_tasks(&self) -> Vec<TaskRef> {
        let mut tasks = self.registered();
        // Tasks in their eager step are not registered yet: they are the chain
        // from the current task, as long as it runs an eager step. (Only this
        // loop's, if it is the one running here.)
        let mut cur = if std::ptr::eq(context::running_loop(), self) {
            NonNull::new(context::current_task().cast_mut())
        } else {
            None
        };
        while let Some(ptr) = cur {
            // SAFETY: the current task is being polled, and each task in the
            // chain is in its eager step, on the stack of the one after it: alive.
            let header = unsafe { ptr.as_ref() };
            if !header.has(EAGER_STEP) {
                break;
            }
            // SAFETY: alive and ours, on the loop thread.
            tasks.push(unsafe { TaskRef::clone_raw(ptr) });
            cur = header.next.get();
        }
        tasks
    }

    /// Drops every unfinished task's future (marking it cancelled), then the
    /// callbacks still queued.
    fn cancel_everything_now(&self) {
        loop {
            let mut tasks = Vec::with_capacity(self.registry_len.get());
            while let Some(head) = self.registry_head.get() {
                tasks.extend(self.unregister(head));
            }
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                if !task.header().has(COMPLETE) {
                    task.header().set(CANCEL_REQUESTED);
                    self.step(&task);
                }
                // Releasing the task drops its context (user values); that
                // reports rather than unwinds (see `release_local_slow`).
                drop(task);
            }
        }
        // Run the done callbacks the cancellations queued; drop the rest
        // (their captures are user values).
        let n = self.ready_len();
        for _ in 0..n {
            match self.pop_ready() {
                Some(Runnable::Call(call)) => self.run_call(call),
                Some(Runnable::Task(task)) => drop(task),
                None => break,
            }
        }
        while let Some(r) = self.pop_ready() {
            self.drop_reporting(r);
        }
    }
}

/// Makes a task current on this thread and, when dropped (also on unwind),
/// the one that was current before.
struct CurrentTask {
    prev: *const Header,
}

impl CurrentTask {
    #[inline(always)]
    fn enter(task: *const Header) -> Self {
        CurrentTask {
            prev: context::set_current_task(task),
        }
    }
}

impl Drop for CurrentTask {
    #[inline(always)]
    fn drop(&mut self) {
        context::set_current_task(self.prev);
    }
}

/// Undoes what `step` set up for the poll: `RUNNING`, the task's context,
/// the current task (in that order, as the fields drop).
struct StepGuard<'a> {
    header: &'a Header,
    /// The context that was current before the task's, if contexts are in use.
    prev_ctx: Option<Option<contextvars::Context>>,
    /// Dropped after the body of `drop`: the current task is restored last.
    _current: CurrentTask,
}

impl Drop for StepGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.header.clear(RUNNING);
        if self.prev_ctx.is_some() || contextvars::in_use() {
            self.leave_context();
        }
    }
}

impl StepGuard<'_> {
    /// Makes the context that was current before the step current again.
    #[cold]
    #[inline(never)]
    fn leave_context(&mut self) {
        let task_ctx = match self.prev_ctx.take() {
            Some(prev) => contextvars::enter(prev),
            // Contexts came into use during the poll (the task set the
            // thread's first context variable): before it none was current.
            None => contextvars::enter(None),
        };
        // The task's extra data keeps its context, so this is rarely the last
        // handle to it; if it is, its values' destructors must not unwind
        // from here.
        if task_ctx.is_some() {
            // SAFETY: the task being stepped holds a strong count of its owner.
            unsafe { self.header.owner.as_ref() }.drop_reporting(task_ctx);
        }
    }
}

fn default_exception_handler(ctx: &ExceptionContext) {
    eprintln!("asyncio: {ctx}");
}

/// An event loop, asyncio's `AbstractEventLoop` for one thread.
///
/// It runs tasks (futures that need not be `Send`) one at a time on the thread
/// that created it. `EventLoop` is a cheap handle: clones refer to the same loop,
/// which closes when the last handle is dropped (cancelling whatever tasks are
/// left). Most programs use [`asyncio::run`](https://docs.rs/asyncio) or a
/// `Runner` instead of driving a loop by hand.
///
/// ```
/// use asyncio_core::EventLoop;
///
/// let lp = EventLoop::new();
/// let n = lp
///     .run_until_complete(async {
///         let a = asyncio_core::create_task(async { 1 });
///         let b = asyncio_core::create_task(async { 2 });
///         a.await.unwrap() + b.await.unwrap()
///     })
///     .unwrap();
/// assert_eq!(n, 3);
/// lp.close().unwrap();
/// ```
pub struct EventLoop {
    pub(crate) inner: Rc<LoopInner>,
}

impl EventLoop {
    /// A new, idle loop bound to the current thread.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        EventLoop {
            inner: Rc::new(LoopInner::new()),
        }
    }

    pub(crate) fn from_inner(inner: Rc<LoopInner>) -> Self {
        inner.handles.set(inner.handles.get() + 1);
        EventLoop { inner }
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
    /// another loop, [`RunError::Cancelled`] if the main task was cancelled, and
    /// [`RuntimeError::Stalled`] if the main task waits but nothing could ever
    /// wake it (no task ready, no waker or loop handle alive anywhere).
    ///
    /// # Panics
    /// If the main future panics, the panic is resumed here once the loop has
    /// stopped, as asyncio re-raises the main coroutine's exception.
    pub fn run_until_complete<F>(&self, future: F) -> Result<F::Output, RunError>
    where
        F: Future + 'static,
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
        F: Future + 'static,
    {
        self.run_main(future, Some(options))
    }

    fn run_main<F>(&self, future: F, options: Option<TaskOptions>) -> Result<F::Output, RunError>
    where
        F: Future + 'static,
    {
        let _running = self.enter()?;
        let mut main = self.inner.spawn(future, options);
        self.turn_until(|| main.done())?;
        drop(_running);
        match main
            .try_result()
            .expect("the main task is done and its result untaken")
        {
            Ok(value) => Ok(value),
            Err(TaskError::Cancelled(c)) => Err(RunError::Cancelled(c)),
            Err(TaskError::Panicked(p)) => resume_unwind(p.into_panic()),
        }
    }

    /// Turns the running loop until `done()` holds: runs what is ready, fires
    /// due timers, and waits in the kernel when nothing is ready.
    ///
    /// # Errors
    /// [`RuntimeError::Stalled`] when nothing is ready and nothing could ever
    /// wake the loop again.
    fn turn_until(&self, done: impl Fn() -> bool) -> Result<(), RuntimeError> {
        while !done() {
            self.inner.run_once();
            if done() {
                break;
            }
            self.inner.fire_timers();
            if self.inner.ready_len() == 0 {
                if self.inner.stalled() {
                    return Err(RuntimeError::Stalled);
                }
                self.release_cached(self.inner.cells.trim(cell_cache::IDLE_KEEP));
                self.inner.idle();
            } else {
                self.inner.busy_turn();
            }
        }
        Ok(())
    }

    /// Marks the loop running on this thread until the guard drops (also on unwind).
    fn enter(&self) -> Result<RunningGuard<'_>, RuntimeError> {
        if self.inner.closed.get() {
            return Err(RuntimeError::Closed);
        }
        if self.inner.running.get() {
            return Err(RuntimeError::AlreadyRunning);
        }
        if !context::running_loop().is_null() {
            return Err(RuntimeError::AnotherLoopRunning);
        }
        self.inner.running.set(true);
        context::set_running_loop(Rc::as_ptr(&self.inner));
        self.inner.refresh_fast_eager();
        Ok(RunningGuard { lp: &self.inner })
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
        let _stalled = self.turn_until(|| tasks.iter().all(TaskRef::done));
        drop(tasks);
        // The done callbacks the cancellations scheduled.
        self.inner.run_once();
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
        if self.inner.closed.get() {
            self.inner.drop_reporting(f);
            return Err(RuntimeError::Closed);
        }
        Ok(self.inner.call_soon_boxed(Box::new(f)))
    }

    /// Creates a task on this loop, started as the task factory says.
    ///
    /// Unlike [`create_task`](crate::create_task) this works on a loop that is not
    /// running; the task then starts when the loop runs.
    ///
    /// # Panics
    /// If the loop is closed: it could never run the task. Use
    /// [`try_create_task`](Self::try_create_task) to get an error instead.
    pub fn create_task<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.try_create_task(future)
            .expect("create_task on a closed event loop: create tasks before close()")
    }

    /// Like [`create_task`](Self::create_task), failing with
    /// [`RuntimeError::Closed`] on a closed loop.
    pub fn try_create_task<F>(&self, future: F) -> Result<Task<F::Output>, RuntimeError>
    where
        F: Future + 'static,
    {
        if self.inner.closed.get() {
            return Err(RuntimeError::Closed);
        }
        Ok(self.inner.spawn_default(future))
    }

    /// Creates a task with per-call options (name, eager start).
    ///
    /// # Panics
    /// If the loop is closed.
    pub fn create_task_with<F>(&self, future: F, options: TaskOptions) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        assert!(
            !self.inner.closed.get(),
            "create_task_with on a closed event loop: create tasks before close()"
        );
        self.inner.spawn(future, Some(options))
    }

    /// Installs the task factory, as `loop.set_task_factory`.
    pub fn set_task_factory(&self, factory: impl TaskFactory) {
        self.set_task_factory_rc(Some(Rc::new(factory)));
    }

    /// Installs a shared factory, or with `None` goes back to the lazy default.
    pub fn set_task_factory_rc(&self, factory: Option<Rc<dyn TaskFactory>>) {
        self.inner.fixed_mode.set(
            factory
                .as_ref()
                .map_or(Some(StartMode::Lazy), |f| f.fixed_mode()),
        );
        self.inner.refresh_fast_eager();
        *self.inner.factory.borrow_mut() = factory;
    }

    /// The installed factory; `None` means the lazy default.
    pub fn get_task_factory(&self) -> Option<Rc<dyn TaskFactory>> {
        self.inner.factory.borrow().clone()
    }

    /// Installs the exception handler (`None` restores the default, which prints
    /// one line on stderr), as `loop.set_exception_handler`.
    pub fn set_exception_handler(&self, handler: Option<impl Fn(&ExceptionContext) + 'static>) {
        *self.inner.handler.borrow_mut() = handler.map(|h| Rc::new(h) as Handler);
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

    /// Debug mode (asyncio's `loop.set_debug`).
    pub fn set_debug(&self, enabled: bool) {
        self.inner.debug.set(enabled);
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
        self.inner.cancel_everything_now();
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
        let pool = self.inner.pool.borrow().clone();
        if let Some(pool) = pool {
            pool.shutdown_nowait();
        }
        let factory = self.inner.factory.borrow_mut().take();
        self.inner.drop_reporting(factory);
        // Last: with no handler left, a panic in its own destructor goes to
        // the default one.
        let handler = self.inner.handler.borrow_mut().take();
        self.inner.drop_reporting(handler);
        Ok(())
    }

    /// Whether two handles refer to the same loop.
    pub fn same_loop(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Clone for EventLoop {
    fn clone(&self) -> Self {
        EventLoop::from_inner(Rc::clone(&self.inner))
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        let handles = self.inner.handles.get() - 1;
        self.inner.handles.set(handles);
        if handles == 0 && !self.inner.running.get() {
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

struct RunningGuard<'a> {
    lp: &'a Rc<LoopInner>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.lp.running.set(false);
        self.lp.refresh_fast_eager();
        context::set_running_loop(std::ptr::null());
    }
}

/// The loop running on this thread, as `asyncio.get_running_loop()`.
///
/// # Errors
/// [`RuntimeError::NoRunningLoop`] outside a running loop.
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
fn running_borrowed() -> Result<std::mem::ManuallyDrop<Rc<LoopInner>>, RuntimeError> {
    let lp = context::running_loop();
    if lp.is_null() {
        return Err(RuntimeError::NoRunningLoop);
    }
    // SAFETY: as in `get_running_loop`; never dropped, so the count is unchanged.
    Ok(std::mem::ManuallyDrop::new(unsafe { Rc::from_raw(lp) }))
}

/// Runs `f` with the running loop's inner state.
#[inline]
fn with_running<R>(f: impl FnOnce(&Rc<LoopInner>) -> R) -> Result<R, RuntimeError> {
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
#[inline]
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
/// let lp = asyncio_core::EventLoop::new();
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
fn no_running_loop(what: &str, e: RuntimeError) -> ! {
    panic!("asyncio::{what}: {e}")
}

/// Like [`create_task`], failing with [`RuntimeError::NoRunningLoop`] outside a
/// running loop.
#[inline]
pub fn try_create_task<F>(future: F) -> Result<Task<F::Output>, RuntimeError>
where
    F: Future + 'static,
{
    Ok(running_borrowed()?.spawn_default(future))
}

/// Creates a task on the running loop with per-call options.
///
/// # Panics
/// Outside a running loop.
pub fn create_task_with<F>(future: F, options: TaskOptions) -> Task<F::Output>
where
    F: Future + 'static,
{
    with_running(|lp| lp.spawn(future, Some(options)))
        .unwrap_or_else(|e| panic!("asyncio::create_task_with: {e}"))
}

/// The task being run on this thread, as `asyncio.current_task()`.
///
/// Returns `None` outside a task — including outside a running loop, where
/// asyncio would raise `RuntimeError` instead. It costs one thread-local read.
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
pub fn all_tasks() -> Result<Vec<TaskRef>, RuntimeError> {
    with_running(|lp| lp.all_tasks())
}

/// Installs a task factory on the running loop (`loop.set_task_factory`).
///
/// # Panics
/// Outside a running loop: use [`EventLoop::set_task_factory`] on a loop you hold.
pub fn set_task_factory(factory: impl TaskFactory) {
    match get_running_loop() {
        Ok(lp) => lp.set_task_factory(factory),
        Err(e) => panic!(
            "asyncio::set_task_factory: {e}; outside a loop call EventLoop::set_task_factory"
        ),
    }
}
