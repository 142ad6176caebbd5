//! The ready queue and the run loop: one turn, a task's step, its completion.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;

use crate::cell_cache;
use crate::context;
use crate::contextvars;
use crate::error::RuntimeError;
use crate::event_loop::ExceptionContext;
use crate::io::Wakeup;
use crate::reactor::SleepMode;
use crate::shared::Injected;
use crate::task::header::Header;
use crate::task::state::*;
use crate::task::{TaskRef, waker};

use super::running::running_inner;
use super::{EventLoop, LoopInner};

/// How many turns of a loop that never runs out of ready tasks pass between
/// two looks at I/O (asyncio looks on every turn; tokio every 61 ticks). A
/// turn runs everything that was ready when it began, so this bounds how long
/// a ready socket waits by 61 turns, at the cost of one non-blocking
/// `epoll_wait` per 61 busy turns, and nothing when no I/O is registered.
///
/// ```
/// // The loop looks at I/O at least every IO_POLL_INTERVAL iterations, even
/// // when tasks are always ready.
/// assert!(asyncio::IO_POLL_INTERVAL > 0);
/// ```
pub const IO_POLL_INTERVAL: u32 = 61;

/// How often a loop parked with signal handlers but without a poller (the
/// process had no descriptor left to make one) looks at its signal flags.
#[cfg(all(unix, not(miri)))]
const SIGNAL_RECHECK: std::time::Duration = std::time::Duration::from_millis(10);

/// How deep cancellations of awaited tasks may be finished inside one another
/// (a task whose cancellation drops the handle of a task it awaited, and so
/// on), counted together with eager steps (`MAX_EAGER_DEPTH`, the same
/// figure); past it the rest finish at their tasks' next turn.
pub(crate) const MAX_SYNC_CANCEL_DEPTH: u32 = super::spawn::MAX_EAGER_DEPTH;

/// A callback scheduled with `call_soon` (or a timer, or another thread).
pub(crate) struct Call {
    cancelled: Cell<bool>,
    f: Cell<Option<Box<dyn FnOnce()>>>,
    /// The context the callback runs in (asyncio's `context=`, by default a
    /// copy of the one current when it was scheduled); `None`: the loop's
    /// own callbacks, and any while no context is in use on the thread.
    context: RefCell<Option<contextvars::Context>>,
}

impl Call {
    pub(crate) fn new(f: Box<dyn FnOnce()>) -> Rc<Call> {
        Self::with_context(f, None)
    }

    pub(crate) fn with_context(
        f: Box<dyn FnOnce()>,
        context: Option<contextvars::Context>,
    ) -> Rc<Call> {
        Rc::new(Call {
            cancelled: Cell::new(false),
            f: Cell::new(Some(f)),
            context: RefCell::new(context),
        })
    }

    /// The callback's context, made (empty) on first request.
    fn get_context(&self) -> contextvars::Context {
        let mut slot = self.context.borrow_mut();
        slot.get_or_insert_with(contextvars::Context::new).clone()
    }

    /// A call that already ran, for a report about it.
    fn finished() -> Rc<Call> {
        Rc::new(Call {
            cancelled: Cell::new(false),
            f: Cell::new(None),
            context: RefCell::new(None),
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

/// What the ready queue holds: a task to step or a callback to run.
pub(super) enum Runnable {
    Task(TaskRef),
    Call(Rc<Call>),
}

/// A [`Runnable`] packed into one word, as the ready queue stores it: the
/// task's cell pointer, or the callback's `Rc` pointer with its lowest bit
/// set (both are at least 8-byte aligned). A million queued tasks take 8 MB
/// instead of 16.
pub(super) struct Packed(NonNull<u8>);

const CALL_TAG: usize = 1;
const _: () = assert!(std::mem::align_of::<Header>() > CALL_TAG);
const _: () = assert!(std::mem::align_of::<Call>() > CALL_TAG);
const _: () = assert!(std::mem::size_of::<Packed>() == std::mem::size_of::<usize>());

impl Packed {
    #[inline(always)]
    pub(super) fn pack(r: Runnable) -> Packed {
        match r {
            Runnable::Task(task) => Packed(std::mem::ManuallyDrop::new(task).as_ptr().cast()),
            Runnable::Call(call) => {
                let ptr = Rc::into_raw(call).cast_mut().cast::<u8>();
                let tagged = ptr.map_addr(|a| a | CALL_TAG);
                Packed(NonNull::new(tagged).expect("an Rc is never null"))
            }
        }
    }

    /// The task's cell pointer, if this is a task.
    pub(super) fn task(&self) -> Option<NonNull<Header>> {
        (self.0.addr().get() & CALL_TAG == 0).then(|| self.0.cast())
    }

    #[inline(always)]
    pub(super) fn unpack(self) -> Runnable {
        let ptr = std::mem::ManuallyDrop::new(self).0;
        if ptr.addr().get() & CALL_TAG == 0 {
            // SAFETY: an untagged pointer is a task's cell pointer, packed
            // with the `TaskRef` count it held, handed back once here.
            Runnable::Task(unsafe { TaskRef::from_raw(ptr.cast()) })
        } else {
            let call = ptr.as_ptr().map_addr(|a| a & !CALL_TAG).cast::<Call>();
            // SAFETY: a tagged pointer came from `Rc::into_raw` of a callback
            // (untagged here, with its provenance); its count is handed back
            // once.
            Runnable::Call(unsafe { Rc::from_raw(call) })
        }
    }
}

impl Drop for Packed {
    fn drop(&mut self) {
        // Only a queue dropped with entries left drops one packed: the loop
        // drains its queue before, so this is never on a hot path.
        drop(Packed(self.0).unpack());
    }
}

/// A callback scheduled with [`EventLoop::call_soon`]; it can still be cancelled.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
///
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// asyncio::run(async move {
///     let lp = asyncio::get_running_loop().unwrap();
///     let handle = lp.call_soon(move || r.set(true));
///     handle.cancel();
///     assert!(handle.cancelled());
///     asyncio::yield_now().await;
/// })
/// .unwrap();
/// assert!(!ran.get(), "a cancelled callback does not run");
/// ```
#[derive(Clone)]
pub struct CallHandle {
    call: Rc<Call>,
}

impl CallHandle {
    pub(crate) fn from_call(call: Rc<Call>) -> Self {
        CallHandle { call }
    }

    /// The context the callback runs in, as asyncio's `Handle.get_context()`:
    /// the one given with `call_soon_with_context` (and the timer forms), or
    /// a copy of the context current when it was scheduled. Values set in it
    /// before the callback runs are what it sees.
    ///
    /// ```
    /// let var = asyncio::ContextVar::new("request");
    /// let seen = std::rc::Rc::new(std::cell::Cell::new(None));
    /// let (v, s) = (var.clone(), seen.clone());
    /// let lp = asyncio::EventLoop::new();
    /// let handle = lp.call_soon(move || s.set(v.get()));
    /// handle.get_context().run(|| var.set(7));
    /// lp.stop();
    /// lp.run_forever().unwrap();
    /// assert_eq!(seen.get(), Some(7));
    /// ```
    pub fn get_context(&self) -> contextvars::Context {
        self.call.get_context()
    }

    /// Cancels the callback if it has not run yet, as `Handle.cancel()`.
    pub fn cancel(&self) {
        self.call.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn cancelled(&self) -> bool {
        self.call.cancelled.get()
    }
}

/// Two handles are equal when they refer to the same scheduled callback.
impl PartialEq for CallHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.call, &other.call)
    }
}

impl Eq for CallHandle {}

impl fmt::Debug for CallHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallHandle")
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

/// Makes a task current on this thread and, when dropped (also on unwind),
/// the one that was current before.
pub(super) struct CurrentTask {
    prev: *const Header,
}

impl CurrentTask {
    #[inline(always)]
    pub(super) fn enter(task: *const Header) -> Self {
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
pub(super) struct StepGuard<'a> {
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
    pub(super) fn leave_context(&mut self) {
        let task_ctx = match self.prev_ctx.take() {
            Some(prev) => contextvars::enter(prev),
            // Contexts came into use during the poll (the task set the
            // thread's first context variable): before it none was current.
            None => contextvars::enter(None),
        };
        // The task's extra data keeps its context, so this is rarely the last
        // handle to it; if it is, its values' destructors (user code) run at
        // the step's end, when the task's state is whole.
        if let Some(ctx) = task_ctx {
            // SAFETY: the task being stepped holds a strong count of its owner.
            let owner = unsafe { self.header.owner().as_ref() };
            owner.defer(super::Deferred::Drop(Box::new(ctx)));
            self.header.set(DEFERRED);
        }
    }
}

impl LoopInner {
    pub(crate) fn push_call(&self, call: Rc<Call>) {
        self.push_ready(Runnable::Call(call));
    }

    /// Waits in the kernel until the next timer, an I/O event or a wake-up,
    /// then queues what became ready.
    pub(super) fn idle(&self) {
        self.busy_turns.set(0);
        let timeout = self.timer_timeout();
        let mut wakeups = self.io_wakeups.take();
        let mode = self.sleep_mode();
        // Parked with signal handlers installed: only the poller could be
        // woken by a signal, and there is none (no descriptor left to make
        // it), so the loop looks at the signal flags every few milliseconds.
        #[cfg(all(unix, not(miri)))]
        let timeout = if matches!(mode, SleepMode::Park) && self.signals.borrow().any() {
            Some(timeout.map_or(SIGNAL_RECHECK, |t| t.min(SIGNAL_RECHECK)))
        } else {
            timeout
        };
        if self.shared.prepare_to_sleep(mode) {
            // A signal that came before the loop published its wake-up fd
            // wrote to no fd: the flag says so (see `signals`).
            if !self.signals.borrow().arrived() {
                self.driver.wait(mode, timeout, &mut wakeups);
            }
            self.shared.awake();
        }
        self.take_signals();
        self.dispatch_io(&mut wakeups);
        self.io_wakeups.set(wakeups);
        self.fire_timers();
    }

    /// How the loop waits: in its poller if it has one, or if it handles
    /// signals (whose actions wake the poller; its first such wait makes
    /// it), else parked, with no file descriptor. If the poller cannot be
    /// made (the process is out of descriptors), the loop parks and `idle`
    /// caps the wait so that it still sees signals; the next wait tries to
    /// make the poller again.
    fn sleep_mode(&self) -> SleepMode {
        #[cfg(all(unix, not(miri)))]
        if !self.driver.has_poller() && self.signals.borrow().any() {
            let _ = self.poller();
        }
        if self.driver.has_poller() {
            SleepMode::Poll
        } else {
            SleepMode::Park
        }
    }

    /// A turn that left tasks ready: the loop will not wait in the kernel,
    /// so every [`IO_POLL_INTERVAL`] such turns it looks at I/O without
    /// waiting, and a socket becomes ready however busy the tasks keep it.
    #[inline]
    pub(super) fn busy_turn(&self) {
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
    pub(super) fn poll_io_now(&self) {
        if self.driver.has_io() || self.signals.borrow().any() {
            let mut wakeups = self.io_wakeups.take();
            self.driver.poll_now(&mut wakeups);
            self.take_signals();
            self.dispatch_io(&mut wakeups);
            self.io_wakeups.set(wakeups);
        }
    }

    /// Wakes the futures and queues the callbacks that I/O events asked for.
    /// Leaves `wakeups` empty (its capacity kept for the next wait).
    pub(super) fn dispatch_io(&self, wakeups: &mut Vec<Wakeup>) {
        for w in wakeups.drain(..) {
            match w {
                Wakeup::Waker(w) => self.wake_reporting(w),
                Wakeup::Signals => self.drain_signal_pipe(),
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
    pub(super) fn push_ready(&self, r: Runnable) {
        // SAFETY: loop thread; no other borrow of `ready` is alive (see the field).
        unsafe { (*self.ready.get()).push_back(Packed::pack(r)) }
    }

    #[inline]
    pub(super) fn pop_ready(&self) -> Option<Runnable> {
        // SAFETY: as in `push_ready`.
        unsafe { (*self.ready.get()).pop_front() }.map(Packed::unpack)
    }

    /// The tasks in the ready queue, in its order (new references).
    pub(super) fn ready_tasks(&self) -> Vec<TaskRef> {
        // SAFETY: as in `push_ready`; cloning a reference runs no user code.
        let ready = unsafe { &*self.ready.get() };
        ready
            .iter()
            .filter_map(Packed::task)
            // SAFETY: a queued task is alive: its entry holds a reference.
            .map(|ptr| unsafe { TaskRef::clone_raw(ptr) })
            .collect()
    }

    pub(super) fn ready_len(&self) -> usize {
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
        // (A task whose last reference is being released looks scheduled:
        // see `release_local_slow`. A wake from a destructor in its stage
        // stops here, and never queues a reference to a dying cell.)
        if header.has(SCHEDULED | COMPLETE) {
            return;
        }
        header.set(SCHEDULED);
        // SAFETY: caller's contract: the local side is alive.
        self.push_ready(Runnable::Task(unsafe { TaskRef::clone_raw(ptr) }));
    }

    pub(crate) fn call_soon_boxed(&self, f: Box<dyn FnOnce()>) -> CallHandle {
        self.call_soon_in(f, None)
    }

    pub(crate) fn call_soon_in(
        &self,
        f: Box<dyn FnOnce()>,
        context: Option<contextvars::Context>,
    ) -> CallHandle {
        let call = Call::with_context(f, context);
        self.push_ready(Runnable::Call(Rc::clone(&call)));
        CallHandle { call }
    }

    /// Polls the task once (or drops its future, if it was cancelled).
    #[inline]
    pub(super) fn step(&self, task: &TaskRef) {
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
        } else if header.state.get() & (REGISTERED | CANCEL_REQUESTED | DEFERRED) != REGISTERED {
            self.suspended_slow(task);
        }
    }

    /// Finishes the cancellation of `task` now, inside the caller, instead of
    /// at the task's next turn: what asyncio's awaiter sees, since a
    /// cancelled awaiter (or `wait_for` on its timeout) resumes only once the
    /// task it awaited has finished cancelling. Used when the handle of an
    /// awaited task is dropped. Does nothing (the cancellation then happens
    /// at the task's next turn, as for any `cancel()`) unless this loop is
    /// running on this thread and open, the task is not being polled (its
    /// own step, or an eager step above this one), and fewer than
    /// [`MAX_SYNC_CANCEL_DEPTH`] such cancellations are nested here, so a
    /// long chain of tasks awaiting each other cannot overflow the stack.
    pub(crate) fn finish_cancel_now(&self, task: &TaskRef) {
        let header = task.header();
        if header.state.get() & (COMPLETE | RUNNING | CANCEL_REQUESTED) != CANCEL_REQUESTED
            || self.closed.get()
            || !std::ptr::eq(context::running_loop(), self)
        {
            return;
        }
        // One bound for this nesting and the eager steps' together: each can
        // start the other (an eager chain in a destructor run here, a handle
        // dropped at the end of an eager chain), so separate bounds would
        // multiply.
        let depth = super::spawn::nesting_below(self, context::current_task());
        if depth >= MAX_SYNC_CANCEL_DEPTH {
            return;
        }
        struct Base<'a>(&'a Cell<u32>, u32);
        impl Drop for Base<'_> {
            fn drop(&mut self) {
                self.0.set(self.1);
            }
        }
        let _base = Base(&self.nesting_base, self.nesting_base.replace(depth + 1));
        // A queued entry of the task stays in the ready queue; the loop skips
        // it, as the task is complete when it comes up.
        self.step(task);
    }

    /// A step that suspended a task not yet in the registry (its first), or
    /// one cancelled meanwhile.
    #[inline(never)]
    pub(super) fn suspended_slow(&self, task: &TaskRef) {
        let header = task.header();
        if !header.has(REGISTERED) {
            self.register(task);
        }
        if header.has(CANCEL_REQUESTED) {
            self.schedule(task);
        }
        if header.has(DEFERRED) {
            header.clear(DEFERRED);
            self.run_deferred();
        }
    }

    #[inline]
    pub(super) fn complete(&self, task: &TaskRef) {
        let header = task.header();
        header.set(COMPLETE);
        if header.has(COMPLETION_WORK) {
            self.completion_work(task);
        }
    }

    /// Unregisters the task, wakes whoever awaits it, schedules its done
    /// callbacks and reports an unobserved failure.
    #[inline(never)]
    pub(super) fn completion_work(&self, task: &TaskRef) {
        let header = task.header();
        if header.has(FAILED | CANCELLED) {
            let n = context::count_failure();
            header.with_extra(|e| e.failure_number = n);
        }
        let registered = self.unregister(task.as_ptr());
        let mut join = header.take_join_waker();
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
        if header.has(DEFERRED) {
            header.clear(DEFERRED);
            self.run_deferred();
        }
        if header.has(FAILED) && !header.has(HAS_HANDLE | FAILURE_SEEN) {
            header.set(FAILURE_SEEN);
            self.report_unobserved(task);
        }
        drop(registered);
    }

    pub(super) fn run_call(&self, call: Rc<Call>) {
        if !call.cancelled.get()
            && let Some(f) = call.f.take()
        {
            let context = call.context.borrow().clone();
            match context {
                None => {
                    if let Err(payload) = crate::gate::call(crate::gate::Site::Callback, f) {
                        self.report_callback_panic(
                            CallHandle::from_call(Rc::clone(&call)),
                            payload,
                        );
                    }
                }
                Some(ctx) => {
                    let called = {
                        let ctx = ctx.clone();
                        crate::gate::call(crate::gate::Site::Callback, move || ctx.run(f))
                    };
                    if let Err(payload) = called {
                        self.report_callback_panic(
                            CallHandle::from_call(Rc::clone(&call)),
                            payload,
                        );
                    }
                    // The call still holds the context: this is not its last handle.
                    drop(ctx);
                }
            }
        }
        // On every path, cancelled or run: the call's context (its own, or
        // one `get_context` made while it ran) may hold the last handle on
        // context-variable values, user values whose destructors run through
        // the gate.
        self.drop_reporting(call);
    }

    /// Moves wakes that came from other threads into the ready queue. The
    /// callbacks after the last wake go to `injected_calls` instead, the
    /// ready queue's tail in effect (`run_once` runs them right after it):
    /// the order is the injector's, and a callback costs no allocation here.
    pub(super) fn drain_injector(&self) {
        while let Some(item) = self.shared.injector.pop() {
            match item {
                Injected::Wake(wake) => {
                    // FIFO: the callbacks injected before this wake go first.
                    if !self.injected_calls.borrow().is_empty() {
                        self.flush_injected_calls();
                    }
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
                Injected::Call(f) => self.injected_calls.borrow_mut().push_back(f),
            }
        }
    }

    /// Moves the drained callbacks into the ready queue (a foreign wake came
    /// after them), each as a `Call`.
    #[cold]
    #[inline(never)]
    fn flush_injected_calls(&self) {
        let calls = std::mem::take(&mut *self.injected_calls.borrow_mut());
        for f in calls {
            self.push_call(Call::new(f));
        }
    }

    /// Runs the callbacks `drain_injector` set aside this turn.
    #[inline]
    fn run_injected_calls(&self, timed: bool) {
        loop {
            // Nothing else adds to the list while the loop runs them: only
            // `drain_injector` does, at the start of a turn.
            let Some(f) = self.injected_calls.borrow_mut().pop_front() else {
                break;
            };
            let t0 = timed.then(std::time::Instant::now);
            if let Err(payload) = crate::gate::call(crate::gate::Site::Callback, f) {
                self.report_callback_panic(CallHandle::from_call(Call::finished()), payload);
            }
            if let Some(t0) = t0 {
                self.check_slow_callback(t0);
            }
        }
    }

    /// Drops the callbacks set aside if a turn was cut short (the loop
    /// closes); through the gate, as every user value.
    pub(super) fn drop_injected_calls(&self) {
        let calls = std::mem::take(&mut *self.injected_calls.borrow_mut());
        for f in calls {
            self.drop_reporting(f);
        }
    }

    /// One iteration: take in foreign wakes, then run what was ready at its start.
    pub(super) fn run_once(&self) {
        self.drain_injector();
        if self.debug.get() {
            return self.run_once_timed();
        }
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
        if !self.injected_calls.borrow().is_empty() {
            self.run_injected_calls(false);
        }
    }

    /// `run_once` in debug mode: each step and callback timed, the slow ones
    /// logged.
    #[cold]
    #[inline(never)]
    fn run_once_timed(&self) {
        let n = self.ready_len();
        for _ in 0..n {
            let t0 = std::time::Instant::now();
            match self.pop_ready() {
                Some(Runnable::Task(task)) => {
                    task.header().clear(SCHEDULED);
                    if !task.header().has(COMPLETE) {
                        self.step(&task);
                        self.check_slow_step(&task, t0);
                    }
                }
                Some(Runnable::Call(call)) => {
                    self.run_call(call);
                    self.check_slow_callback(t0);
                }
                None => break,
            }
        }
        self.run_injected_calls(true);
    }

    /// Debug mode: logs a callback that ran longer than
    /// `slow_callback_duration` (asyncio's "Executing ... took" warning).
    #[cold]
    #[inline(never)]
    fn check_slow_callback(&self, t0: std::time::Instant) {
        let took = t0.elapsed();
        if took >= self.slow_callback_duration.get() {
            log::warn!(
                target: "asyncio",
                "Executing a callback took {:.3} seconds",
                took.as_secs_f64()
            );
        }
    }

    /// Debug mode: logs a task step that ran longer than
    /// `slow_callback_duration`, with the task's name and creation site.
    #[cold]
    #[inline(never)]
    pub(super) fn check_slow_step(&self, task: &TaskRef, t0: std::time::Instant) {
        let took = t0.elapsed();
        if took < self.slow_callback_duration.get() {
            return;
        }
        let site = task
            .created_at()
            .map_or_else(String::new, |l| format!(" created at {l}"));
        log::warn!(
            target: "asyncio",
            "Executing task {} '{}'{site} took {:.3} seconds",
            task.id(),
            task.name(),
            took.as_secs_f64()
        );
    }

    /// Whether nothing could ever wake the loop again: no ready work, and no waker
    /// or handle anywhere that could inject some.
    pub(super) fn stalled(&self) -> bool {
        if self.ready_len() != 0 || Arc::strong_count(&self.shared) != 1 {
            return false;
        }
        // The count first, then the injector: a thread that pushed a call
        // and then dropped the last other handle released its push with that
        // drop, and this fence makes it visible to the read below. Read the
        // other way round, the push could land between the two reads, the
        // handle go, and a loop with a call queued be called stalled.
        crate::sync::fence(std::sync::atomic::Ordering::Acquire);
        self.shared.injector.is_empty()
            && self.timers.borrow().len() == 0
            && !self.driver.has_io()
            && !self.signals.borrow().any()
    }

    /// Drops every unfinished task's future (marking it cancelled), then the
    /// callbacks still queued.
    pub(super) fn cancel_everything_now(&self) {
        self.drop_injected_calls();
        loop {
            // The tasks that never ran, and the registered ones.
            let never_ran = self.never_ran();
            let mut tasks = self.unregister_all();
            tasks.extend(never_ran);
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                if !task.header().has(COMPLETE) {
                    if self.debug.get() {
                        self.call_exception_handler(
                            &ExceptionContext::new("Task was destroyed but it is pending!")
                                .with_task(task.clone()),
                        );
                    }
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

impl EventLoop {
    /// Turns the running loop until `done()` holds: runs what is ready, fires
    /// due timers, and waits in the kernel when nothing is ready. With
    /// `honour_stop`, a [`stop`](Self::stop) ends it after the turn it was
    /// requested in (or, requested before, after the first turn).
    ///
    /// # Errors
    /// [`RuntimeError::Stalled`] when nothing is ready and nothing could ever
    /// wake the loop again; [`RuntimeError::Stopped`] when `stop` ended it
    /// before `done()` held.
    pub(super) fn turn_until(
        &self,
        done: impl Fn() -> bool,
        honour_stop: bool,
    ) -> Result<(), RuntimeError> {
        while !done() {
            self.inner.run_once();
            if done() {
                break;
            }
            if honour_stop && self.inner.stopping.get() {
                return Err(RuntimeError::Stopped);
            }
            self.inner.fire_timers();
            if self.inner.ready_len() == 0 {
                if self.inner.stalled() {
                    return Err(RuntimeError::Stalled);
                }
                if self.trim_cache_step() {
                    self.inner.idle();
                }
            } else {
                self.inner.busy_turn();
            }
        }
        Ok(())
    }

    /// Runs the loop until [`stop`](Self::stop) is called, as asyncio's
    /// `loop.run_forever()`.
    ///
    /// Each turn is asyncio's `_run_once`: it looks at I/O (waiting in the
    /// kernel only when nothing is ready and no stop is pending), moves due
    /// timers to the ready queue, then runs what was ready when the turn
    /// began. `stop()` ends the run once the turn it was called in is over;
    /// callbacks and tasks that turn scheduled stay queued and run at the
    /// start of the next run. A `stop()` called while the loop is not running
    /// makes the next `run_forever` run one turn and return. The request is
    /// consumed by the run it ends.
    ///
    /// Tasks still pending when it returns stay for the next run (or for
    /// [`close`](Self::close), which cancels them).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::rc::Rc;
    ///
    /// let lp = asyncio::EventLoop::new();
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let (s, l) = (seen.clone(), lp.clone());
    /// lp.call_soon(move || {
    ///     s.borrow_mut().push("first");
    ///     let s2 = s.clone();
    ///     // Scheduled by the last turn's callback: runs in the next run.
    ///     l.call_soon(move || s2.borrow_mut().push("second"));
    ///     l.stop();
    /// });
    /// lp.run_forever().unwrap();
    /// assert_eq!(*seen.borrow(), ["first"]);
    /// lp.stop(); // before the run: it makes one turn and returns
    /// lp.run_forever().unwrap();
    /// assert_eq!(*seen.borrow(), ["first", "second"]);
    /// ```
    ///
    /// # Errors
    /// [`RuntimeError::Closed`], [`RuntimeError::AlreadyRunning`] and
    /// [`RuntimeError::AnotherLoopRunning`] as
    /// [`run_until_complete`](Self::run_until_complete);
    /// [`RuntimeError::Stalled`] when nothing is ready and nothing could ever
    /// wake the loop (no waker, timer, I/O registration, signal handler or
    /// [`LoopHandle`](crate::LoopHandle) alive): nothing could call `stop`
    /// either, and asyncio would hang.
    pub fn run_forever(&self) -> Result<(), RuntimeError> {
        let running = self.enter()?;
        let turned = self.turn_forever();
        self.inner.stopping.set(false);
        drop(running);
        self.close_if_unowned();
        turned
    }

    /// With nothing ready: one step of trimming the task-cell cache to what
    /// an idle loop keeps. `true` once it is trimmed (the loop may sleep);
    /// `false` after a step that left more to free, having looked at I/O
    /// without waiting, so that what arrives meanwhile is not kept waiting
    /// behind the rest of the trim.
    fn trim_cache_step(&self) -> bool {
        let (freed, done) = self
            .inner
            .cells
            .trim_some(cell_cache::IDLE_KEEP, cell_cache::IDLE_TRIM_CELLS);
        self.release_cached(freed);
        if !done {
            self.inner.poll_io_now();
        }
        done
    }

    fn turn_forever(&self) -> Result<(), RuntimeError> {
        loop {
            if self.inner.ready_len() == 0 && !self.inner.stopping.get() {
                if self.inner.stalled() {
                    return Err(RuntimeError::Stalled);
                }
                if self.trim_cache_step() {
                    // Waits for I/O, a timer or another thread, then fires
                    // the timers that are due.
                    self.inner.idle();
                }
            } else {
                if self.inner.stopping.get() {
                    // The last turn looks at I/O without waiting, as asyncio's
                    // `select(0)` when stopping.
                    self.inner.poll_io_now();
                } else {
                    self.inner.busy_turn();
                }
                self.inner.fire_timers();
            }
            self.inner.run_once();
            if self.inner.stopping.get() {
                return Ok(());
            }
        }
    }

    /// Asks the loop to stop, as asyncio's `loop.stop()`: a running
    /// [`run_forever`](Self::run_forever) returns once the turn in progress
    /// is over; if the loop is not running, the next `run_forever` runs one
    /// turn and returns. A [`run_until_complete`](Self::run_until_complete)
    /// stopped before its future completed returns [`RuntimeError::Stopped`].
    /// From another thread use [`LoopHandle::stop`](crate::LoopHandle::stop);
    /// from a signal, a handler that calls this (`add_signal_handler`
    /// callbacks run on the loop).
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Marks the loop running on this thread until the guard drops (also on unwind).
    pub(super) fn enter(&self) -> Result<RunningGuard<'_>, RuntimeError> {
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
}

/// Marks the loop not running when dropped (also on unwind).
pub(super) struct RunningGuard<'a> {
    lp: &'a Rc<LoopInner>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.lp.running.set(false);
        self.lp.refresh_fast_eager();
        context::set_running_loop(std::ptr::null());
    }
}
