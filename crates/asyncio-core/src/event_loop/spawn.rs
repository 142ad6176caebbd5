//! Spawning: the eager fast path, the general path (options, task factory),
//! eager steps, and the memory of task cells.

use std::alloc::Layout;
use std::future::Future;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::context;
use crate::contextvars;
use crate::factory::{StartMode, TaskOptions};
use crate::task::header::Header;
use crate::task::raw::TaskCell;
use crate::task::state::*;
use crate::task::{Task, TaskRef, waker};

use super::LoopInner;
use super::run::CurrentTask;

/// How deep eager steps may nest (an eager task creating an eager task …) before
/// new tasks fall back to being scheduled. Each level keeps a `poll` frame on the
/// native stack; the bound keeps a million-deep chain from overflowing it. The
/// bound counts, together with eager steps, the cancellations finished inside
/// the drop of an awaited task's handle (see `wait_for`), since either can
/// start the other.
///
/// ```
/// // An eager task that starts an eager task, and so on: past the bound the
/// // next one is scheduled instead of started at once.
/// assert!(asyncio::MAX_EAGER_DEPTH >= 16);
/// ```
pub const MAX_EAGER_DEPTH: u32 = 64;

const _: () = assert!(MAX_EAGER_DEPTH < EAGER_DEPTH >> EAGER_DEPTH_SHIFT);

/// Marks a `create_task` call on the general path, from before its task is
/// made until it returns or unwinds (see [`in_task_start`]).
pub(super) struct Starting;

impl Starting {
    /// Also notes where the `create_task` call was made, for debug mode
    /// (passed this way, `start_new`'s calling convention stays as it is).
    #[inline(always)]
    #[track_caller]
    pub(super) fn enter() -> Self {
        context::start_spawn(std::panic::Location::caller());
        Starting
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        context::add_starting(-1);
    }
}

/// How many steps are nested on this thread below a new one: the depth the
/// current task keeps in its state word if it is in its eager step, else the
/// loop's base for steps that are not eager (`LoopInner::nesting_base`: the
/// cancellations being finished inside handle drops, see
/// `finish_cancel_now`). One count for both kinds of nesting, so that they
/// cannot multiply: an eager chain started inside a finished cancellation
/// starts where the cancellation is, not at 1.
#[inline(always)]
pub(super) fn nesting_below(lp: &LoopInner, current: *const Header) -> u32 {
    if !current.is_null() {
        // SAFETY: the current task is being polled on this thread, so alive;
        // only this thread touches its state word.
        let state = unsafe { (*current).state.get() };
        if state & EAGER_STEP != 0 {
            return (state & EAGER_DEPTH) >> EAGER_DEPTH_SHIFT;
        }
    }
    lp.nesting_base.get()
}

impl LoopInner {
    /// Creates a task and starts it as the options or the factory say.
    #[track_caller]
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F, opts: Option<TaskOptions>) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.spawn_general(|| future, opts)
    }

    /// [`spawn`](Self::spawn) with the future made in place: the general path,
    /// which applies options and factory hooks (type-erased, in `start_new`).
    #[inline(always)]
    #[track_caller]
    pub(super) fn spawn_general<F>(
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
    #[track_caller]
    pub(crate) fn spawn_default<F>(self: &Rc<Self>, future: F) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        self.spawn_default_with(|| future)
    }

    /// [`spawn_default`](Self::spawn_default) with the future made in place.
    #[inline(always)]
    #[track_caller]
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
        let depth = nesting_below(self, creator) + 1;
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

    /// Debug mode: the task remembers where it was created.
    #[cold]
    #[inline(never)]
    fn record_creation(&self, task: &TaskRef) {
        if let Some(site) = context::spawn_site() {
            task.header().with_extra(|e| e.created_at = Some(site));
        }
    }

    /// Recomputes `fixed_mode` and `fast_eager` after debug mode or the
    /// factory changed: in debug mode every spawn takes the general path,
    /// which records where the task was created.
    pub(super) fn refresh_modes(&self) {
        self.fixed_mode.set(if self.debug.get() {
            None
        } else {
            self.factory_mode.get()
        });
        self.refresh_fast_eager();
    }

    /// Recomputes `fast_eager` after the loop started or stopped, or its
    /// factory changed (`contextvars` clears it when a context comes into use).
    pub(super) fn refresh_fast_eager(&self) {
        self.fast_eager.set(
            self.running.get()
                && self.fixed_mode.get() == Some(StartMode::Eager)
                && !contextvars::in_use(),
        );
    }

    /// Whether a new task may run its first step now: the loop runs and eager
    /// steps are not nested too deep.
    #[inline]
    pub(super) fn can_step_eagerly(&self) -> bool {
        self.running.get() && nesting_below(self, context::current_task()) < MAX_EAGER_DEPTH
    }

    #[inline]
    pub(super) fn next_task_id(&self) -> u64 {
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
    pub(super) unsafe fn eager_step<F>(&self, task: &TaskRef, creator: *const Header)
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
        header.set_creator(creator);
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
    pub(super) fn push_eager(&self, header: &Header) {
        let creator = context::current_task();
        header.set_creator(creator);
        let depth = nesting_below(self, creator) + 1;
        header.set(EAGER_STEP | depth << EAGER_DEPTH_SHIFT);
    }

    /// The end of a fast-path eager step that has more to do than mark the
    /// task done: completion work, or a context the step put in use.
    #[cold]
    #[inline(never)]
    pub(super) fn eager_step_done_slow(&self, task: &TaskRef, state: u32) {
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
    pub(super) fn suspended_in_eager_step(&self, task: &TaskRef) {
        // Listed first: leaving the fast path may run user code (a context
        // value's destructor), which must find the task in `all_tasks()`.
        self.suspended_slow(task);
        if task.header().has(HAS_CONTEXT) {
            self.left_fast_path();
        }
    }

    /// Starts a new task as its options, the context rules and the factory say
    /// (every spawn but the eager fast path). Not generic: the cell is built.
    #[inline(never)]
    pub(super) fn start_new(&self, task: &TaskRef, mut opts: Option<TaskOptions>) {
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
                // Debug mode clears `fixed_mode` (the fast paths have no
                // room for it): the creation site is recorded here.
                None => {
                    if self.debug.get() {
                        self.record_creation(task);
                    }
                    let factory = self.factory.borrow().clone();
                    match factory {
                        Some(f) => {
                            let gate = crate::gate::Site::FactoryHook;
                            match crate::gate::call(gate, || f.create(task)) {
                                // A hook that closed the loop (or finished
                                // the task) leaves nothing to start: the task
                                // is not scheduled onto a loop that will never
                                // run it, but ends cancelled now, its future
                                // dropped.
                                Ok(_) if self.closed.get() || task.header().has(COMPLETE) => {
                                    drop(f);
                                    self.abandon_unstarted(task);
                                    return;
                                }
                                Ok(mode) => (mode, Some(f)),
                                Err(payload) => {
                                    drop(f);
                                    self.abandon_unstarted(task);
                                    std::panic::resume_unwind(payload)
                                }
                            }
                        }
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
            let gate = crate::gate::Site::FactoryHook;
            if let Err(payload) = crate::gate::call(gate, || f.started(task, mode)) {
                self.report_panic(
                    "a task factory's `started` hook panicked",
                    Some(task.clone()),
                    payload,
                );
            }
        }
    }

    /// The factory's `create` hook panicked: the task never starts. It ends
    /// cancelled here, its future dropped, so that a `TaskRef` the hook kept
    /// sees a finished task (not one that no queue, registry or `close()`
    /// knows of), and the panic goes on to `create_task`'s caller.
    #[cold]
    #[inline(never)]
    fn abandon_unstarted(&self, task: &TaskRef) {
        let header = task.header();
        // The hook itself may have finished the task already (it cancelled
        // it and ran the loop, or closed the loop): its future is gone.
        if header.has(COMPLETE | FUTURE_GONE) {
            return;
        }
        header.set(CANCEL_REQUESTED);
        // As an eager step: the future's destructor runs inside the
        // `create_task` that made it, and `in_eager_step()` tells it so (a
        // TaskGroup child then knows it was never counted).
        self.push_eager(header);
        self.step(task);
        header.clear(EAGER_STEP | EAGER_DEPTH);
        debug_assert!(header.has(COMPLETE));
    }

    /// Starts the task; returns how it actually started.
    pub(super) fn start(&self, task: &TaskRef, mode: StartMode) -> StartMode {
        if mode == StartMode::Eager && self.can_step_eagerly() {
            let started = self.debug.get().then(std::time::Instant::now);
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
            if let Some(t0) = started {
                self.check_slow_step(task, t0);
            }
            // (`step` registers a task that suspends.)
            debug_assert!(header.has(COMPLETE | REGISTERED));
            StartMode::Eager
        } else {
            // Registered when it first suspends (see `registry`).
            self.schedule(task);
            StartMode::Lazy
        }
    }

    /// A fast-path eager step put a context in use (the task got one: the
    /// fast path attaches none, and runs only while no context is in use on
    /// the thread): the creator ran with none, so none is current again.
    #[cold]
    #[inline(never)]
    pub(super) fn left_fast_path(&self) {
        if contextvars::in_use() {
            self.drop_reporting(contextvars::enter(None));
        }
    }
}
