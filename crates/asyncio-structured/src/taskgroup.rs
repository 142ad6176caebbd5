//! `TaskGroup`: children that end together, and fail together.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use asyncio_core::{
    PanicError, Task, TaskOptions, TaskRef, create_task_in_place, create_task_with, current_task,
    get_running_loop, in_eager_step,
};

use crate::catch::CatchPanic;
use crate::error::{BoxError, ChildFailure, ExceptionGroup, TaskGroupError};

/// What the group's children share.
struct GroupState {
    /// Children that suspended at least once, so may need cancelling. Finished
    /// ones are swept out as the list grows; a child that finishes inside
    /// `create_task` (eager) is never listed.
    children: RefCell<Vec<TaskRef>>,
    /// Children that have not finished, but for one that finishes inside its
    /// own `create_task` (see `ChildGuard`).
    live: Cell<usize>,
    failures: RefCell<Vec<ChildFailure>>,
    /// A child failed: the others are being cancelled and no new task is taken.
    aborting: Cell<bool>,
    /// An abort was scheduled with `call_soon` (asyncio aborts from the failed
    /// child's done callback, one loop turn after the failure).
    abort_scheduled: Cell<bool>,
    /// Joined or dropped: no new task is taken.
    finished: Cell<bool>,
    /// Whoever waits for the group (its `join`, or its scope).
    waiter: Cell<Option<Waker>>,
    /// The task that made the group: once it is being cancelled, nobody may
    /// read the group's failures any more.
    owner: Option<TaskRef>,
}

impl GroupState {
    fn new() -> Rc<Self> {
        Rc::new(GroupState {
            children: RefCell::new(Vec::new()),
            live: Cell::new(0),
            failures: RefCell::new(Vec::new()),
            aborting: Cell::new(false),
            abort_scheduled: Cell::new(false),
            finished: Cell::new(false),
            waiter: Cell::new(None),
            owner: current_task(),
        })
    }

    /// Whether the group's failures may still be read: it has not ended, and
    /// the task that made it is not being cancelled (at a runner's shutdown
    /// every task is, and a child may be dropped before its owner).
    fn may_be_read(&self) -> bool {
        !self.finished.get()
            && self
                .owner
                .as_ref()
                .is_none_or(|t| t.cancelling() == 0 && !t.done())
    }

    /// Starts `fut` as a child task (with `options`, if given: a name, a
    /// context, an eager start).
    #[inline(always)]
    #[track_caller]
    fn spawn<F, K>(self: &Rc<Self>, fut: F, options: Option<TaskOptions>) -> Task<K::Ok>
    where
        F: Future + 'static,
        K: Kind<F::Output> + 'static,
    {
        // `Rc::as_ptr` keeps the provenance of the whole `Rc` allocation, which
        // `Rc::from_raw` needs when the child gives its count back.
        let group = NonNull::new(Rc::as_ptr(self).cast_mut()).expect("an Rc is never null");
        let child = move || Child::<F, K> {
            fut: ManuallyDrop::new(CatchPanic::new(fut)),
            guard: ChildGuard::new(group),
            _kind: PhantomData,
        };
        let task = match options {
            // Built in the task's memory: a child (the future, a pointer and a
            // flag) is just the kind of small padded value whose copies stall
            // the CPU, and ex_6_1 creates a million of them. (The closure holds
            // the future and the pointer apart, unpadded.)
            None => create_task_in_place(child),
            Some(options) => {
                // Without a loop `create_task_with` would drop the child before
                // panicking, outside any start: fail before making it.
                if let Err(e) = get_running_loop() {
                    panic!("asyncio::TaskGroup::create_task_named: {e}");
                }
                create_task_with(child(), options)
            }
        };
        if !task.done() {
            // The child suspended (or has not started yet): from now on it
            // counts, and keeps the group alive until it reports.
            self.live.set(self.live.get() + 1);
            // SAFETY: `self` is a live `Rc`; the child's guard gives this count
            // back, once, when it reports.
            unsafe { Rc::increment_strong_count(Rc::as_ptr(self)) };
            self.track(task.to_ref());
            // A sibling may have failed during this child's eager step.
            if self.aborting.get() {
                task.cancel();
            }
        }
        task
    }

    /// Why the group takes no new task, if it does not.
    #[inline(always)]
    fn refusal(&self) -> Option<TaskGroupError> {
        if self.finished.get() {
            Some(TaskGroupError::Finished)
        } else if self.aborting.get() {
            Some(TaskGroupError::ShuttingDown)
        } else {
            None
        }
    }

    /// Lists a child that suspended, sweeping out finished ones now and then so
    /// the list stays within twice the number of live children.
    fn track(&self, child: TaskRef) {
        let sweep = {
            let mut children = self.children.borrow_mut();
            children.push(child);
            children.len() >= 2 * self.live.get() + 64
        };
        if sweep {
            // Dropping a finished child's reference may run its output's
            // destructor: do it with the list taken out of its cell.
            let mut list = std::mem::take(&mut *self.children.borrow_mut());
            list.retain(|t| !t.done());
            let mut cur = self.children.borrow_mut();
            list.append(&mut cur);
            *cur = list;
        }
    }

    /// A counted child ended: with a failure, successfully (`None`), or
    /// cancelled (`None`).
    ///
    /// As in asyncio, a failure aborts the group from a callback scheduled with
    /// `call_soon`, so siblings that fail in the same loop iteration are all
    /// recorded. (A child that fails during its eager step inside `create_task`
    /// is never counted; it aborts the group at once, `child_failed_eagerly`.)
    #[inline]
    fn child_done(self: &Rc<Self>, failure: Option<ChildFailure>) {
        let live = self.live.get() - 1;
        self.live.set(live);
        if let Some(failure) = failure {
            self.child_failed(failure);
        }
        if live == 0 {
            self.wake_waiter();
        }
    }

    /// A child failed inside its own `create_task` (its eager step): the group
    /// aborts at once.
    #[cold]
    fn child_failed_eagerly(&self, failure: ChildFailure) {
        self.failures.borrow_mut().push(failure);
        self.abort();
    }

    /// A counted child failed (after its `create_task` returned): the group
    /// aborts from a callback, as asyncio's done callback does.
    #[cold]
    fn child_failed(self: &Rc<Self>, failure: ChildFailure) {
        self.failures.borrow_mut().push(failure);
        if !self.abort_scheduled.replace(true) {
            let me = Rc::clone(self);
            match get_running_loop() {
                Ok(lp) => drop(lp.call_soon(move || me.abort())),
                Err(_) => self.abort(),
            }
        }
    }

    /// A child failed (it returned `Err` through `create_fallible_task`, or
    /// panicked) and goes on counting until its future is dropped: inside its
    /// own `create_task` the group aborts at once, afterwards from a callback.
    ///
    /// # Safety
    /// `group` is alive: kept by the creator during the child's eager step,
    /// and by the child's own count afterwards.
    #[cold]
    #[inline(never)]
    unsafe fn failed_in_poll(group: NonNull<GroupState>, failure: ChildFailure) {
        if in_eager_step() {
            // SAFETY: caller's contract.
            unsafe { group.as_ref() }.child_failed_eagerly(failure);
        } else {
            // SAFETY: caller's contract: this borrows the child's count,
            // which is neither taken nor given back here.
            let group = ManuallyDrop::new(unsafe { Rc::from_raw(group.as_ptr().cast_const()) });
            group.child_failed(failure);
        }
    }

    /// Records a failure of the body itself and aborts at once.
    fn body_failed(&self, failure: ChildFailure) {
        self.failures.borrow_mut().push(failure);
        self.abort();
    }

    /// Cancels the children and refuses new ones (asyncio's `_abort`).
    fn abort(&self) {
        if !self.aborting.replace(true) {
            self.cancel_children();
            self.wake_waiter();
        }
    }

    fn cancel_children(&self) {
        let children: Vec<TaskRef> = self
            .children
            .borrow()
            .iter()
            .filter(|t| !t.done())
            .cloned()
            .collect();
        for child in children {
            child.cancel();
        }
    }

    fn wake_waiter(&self) {
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    fn register_waiter(&self, cx: &Context<'_>) {
        let waker = match self.waiter.take() {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.waiter.set(Some(waker));
    }

    fn has_children(&self) -> bool {
        self.live.get() > 0
    }

    /// The group's outcome once every child is done.
    fn outcome(&self) -> Result<(), ExceptionGroup> {
        self.finished.set(true);
        let failures = std::mem::take(&mut *self.failures.borrow_mut());
        if failures.is_empty() {
            Ok(())
        } else {
            Err(ExceptionGroup::new(failures))
        }
    }

    /// The owner went away without waiting: cancel everything, take nothing new.
    fn abandon(&self) {
        if !self.finished.replace(true) {
            self.cancel_children();
        }
    }
}

fn task_name() -> String {
    current_task().map_or_else(|| "<no task>".to_owned(), |t| t.name())
}

/// How a child's output reads: as its value ([`Plain`]), or as success or a
/// failure of the group ([`Fallible`]).
trait Kind<O> {
    /// What the child's task yields.
    type Ok;
    fn split(out: O) -> Result<Self::Ok, BoxError>;
}

/// `create_task`: the output is the value; only a panic fails the group.
struct Plain;

impl<O> Kind<O> for Plain {
    type Ok = O;

    #[inline(always)]
    fn split(out: O) -> Result<O, BoxError> {
        Ok(out)
    }
}

/// `create_fallible_task`: an `Err` fails the group.
struct Fallible;

impl<T, E: Into<BoxError>> Kind<Result<T, E>> for Fallible {
    type Ok = T;

    #[inline(always)]
    fn split(out: Result<T, E>) -> Result<T, BoxError> {
        out.map_err(Into::into)
    }
}

/// What the task of a child that failed says to its awaiter.
const FAILED_CHILD: &str = "the child failed: its error is in the TaskGroup's ExceptionGroup";

/// A child's future inside its task: runs `fut`, then reports to the group how
/// it ended.
///
/// A child that fails records its failure in the group and cancels its own
/// task (its error has one owner, the group): whoever awaits the task gets
/// `TaskError::Cancelled` with a message that says so.
struct Child<F, K> {
    /// Dropped by `Child`'s `Drop`, before `guard`: a child dropped before it
    /// finished (cancelled) reports once its future is gone, with the panic of
    /// that future's destructor if there was one.
    fut: ManuallyDrop<CatchPanic<F>>,
    guard: ChildGuard,
    _kind: PhantomData<K>,
}

impl<F, K> Drop for Child<F, K> {
    /// The whole of a child's drop, its guard's part included: `ChildGuard` has
    /// no `Drop` of its own, so a child that succeeded inside its own
    /// `create_task` (ex_6_1's million children) costs one test and its
    /// future's destructor here, small enough to stay inline in the task.
    #[inline(always)]
    fn drop(&mut self) {
        if self.guard.owed == Owed::Nothing {
            // SAFETY: `fut` is dropped once, here, in place (it may be pinned),
            // and never used again.
            unsafe { ManuallyDrop::drop(&mut self.fut) };
        } else {
            self.drop_owing();
        }
    }
}

impl<F, K> Child<F, K> {
    /// The child still owes its group a report. Dropped before it ended (the
    /// group or the loop closing cancelled it), a panic of its future's
    /// destructor is the child's failure, recorded in the group with its own
    /// message, as asyncio records an exception raised while a child handles
    /// its `CancelledError`; the task itself then ends cancelled, so the loop
    /// does not report the failure a second time as never retrieved. A counted
    /// child that succeeded gives its group back after its future is gone,
    /// whether or not that future's destructor panics.
    #[cold]
    #[inline(never)]
    fn drop_owing(&mut self) {
        let fut = &mut self.fut;
        // SAFETY: as in `drop`: once, in place, never used again.
        let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(fut) }));
        // Whatever happens below, also if a panic goes on, the guard then
        // settles what it still owes.
        let guard = Settle(&mut self.guard);
        if let Err(payload) = dropped {
            match guard.0.owed {
                Owed::Unstarted | Owed::Outcome => guard.0.cleanup_panicked(payload),
                Owed::Nothing | Owed::Success => resume_unwind(payload),
            }
        }
    }
}

/// Settles what a child's guard still owes its group when dropped: how the
/// child ended (cancelled, if it had not), or the success of a counted child.
struct Settle<'a>(&'a mut ChildGuard);

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        let guard = &mut *self.0;
        match guard.owed {
            Owed::Nothing => {}
            Owed::Unstarted => guard.dropped_unstarted(),
            Owed::Outcome => guard.report_unfinished(),
            Owed::Success => {
                guard.owed = Owed::Nothing;
                // SAFETY: a counted child's count, taken back once (nothing
                // is owed any more).
                unsafe { ChildGuard::counted_child_done(guard.group, None) };
            }
        }
    }
}

impl<F, K> Future for Child<F, K>
where
    F: Future,
    K: Kind<F::Output>,
{
    type Output = K::Ok;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `fut` is structurally pinned: it is never moved out of `self`
        // (`Child`'s `Drop` drops it in place), and `Child` is `Unpin` only
        // when `F` is.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above; `fut` is only dropped by `Child`'s `Drop`.
        let fut = unsafe { Pin::new_unchecked(&mut *this.fut) };
        let failure = match fut.poll(cx) {
            Poll::Pending => {
                this.guard.started();
                return Poll::Pending;
            }
            Poll::Ready(Ok(out)) => match K::split(out) {
                Ok(value) => {
                    this.guard.succeeded();
                    return Poll::Ready(value);
                }
                Err(error) => ChildFailure::Error {
                    task: task_name(),
                    error,
                },
            },
            Poll::Ready(Err(panic)) => ChildFailure::Panic {
                task: task_name(),
                panic,
            },
        };
        this.guard.failed(failure);
        Poll::Pending
    }
}

/// Reports how a child ended to its group; when the child is dropped unreported
/// (it was cancelled, or panicked in a destructor while being cancelled),
/// `Child`'s `Drop` reports that through it.
///
/// A child that finishes inside its own `create_task` (its eager step) never
/// counts among the group's live children and holds no reference to the group:
/// the creator's reference keeps the group alive meanwhile, and that saves two
/// counter updates per child on the path of ex_6_1. Once `create_task` returns
/// with the child unfinished, the creator counts it in `live` and gives it one
/// strong count of the group, which the report gives back.
///
/// Which of the two holds when the child reports is told by
/// [`in_eager_step`]: the report runs while the child's own task is current —
/// in its poll, or when its future is dropped by the loop's cancellation or
/// after a panic in that poll — and that task is in its eager step exactly
/// when it ends inside its `create_task`. (A child's future is otherwise only
/// dropped when the loop closes, with no task current; while the loop runs its
/// unfinished tasks are held by the loop.) Asking the task rather than
/// counting the group's `create_task` calls up and down keeps consecutive
/// children independent of each other.
struct ChildGuard {
    group: NonNull<GroupState>,
    owed: Owed,
}

/// What a child's guard still owes its group.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Owed {
    /// Nothing: the child reported, or succeeded inside its own `create_task`.
    Nothing,
    /// That the (counted) child ended — it succeeded, or its failure is
    /// already recorded: told once its future is dropped. (One state for
    /// both keeps the tests of the other states as cheap as a bit test.)
    Success,
    /// How the child ended, but it was never polled: dropped inside its own
    /// `create_task` it owes nothing (it was never counted).
    Unstarted,
    /// How the child ended: it has not yet (dropped now, it was cancelled).
    Outcome,
}

impl ChildGuard {
    fn new(group: NonNull<GroupState>) -> Self {
        ChildGuard {
            group,
            owed: Owed::Unstarted,
        }
    }

    /// The child's future was polled (and has not ended).
    #[inline(always)]
    fn started(&mut self) {
        if self.owed == Owed::Unstarted {
            self.owed = Owed::Outcome;
        }
    }

    /// The child succeeded. A counted child tells its group when its future
    /// is dropped, right after this poll; so the poll of a child calls nothing
    /// that could touch the task's memory, and the compiler folds the rest of
    /// an eager step that ends here (ex_6_1's case) to a few stores.
    #[inline(always)]
    fn succeeded(&mut self) {
        if matches!(self.owed, Owed::Unstarted | Owed::Outcome) {
            self.owed = if in_eager_step() {
                Owed::Nothing
            } else {
                Owed::Success
            };
        }
    }

    /// A counted child ended (see the type's documentation).
    ///
    /// # Safety
    /// `group` holds the strong count the creator gave this child, given back
    /// here, once.
    #[cold]
    #[inline(never)]
    unsafe fn counted_child_done(group: NonNull<GroupState>, failure: Option<ChildFailure>) {
        // SAFETY: caller's contract.
        let group = unsafe { Rc::from_raw(group.as_ptr().cast_const()) };
        group.child_done(failure);
    }

    /// The child failed: the group records it now, and the child cancels its
    /// own task (the loop drops its future, without polling it, next turn).
    /// It goes on counting until then (the creator counts a child that failed
    /// in its eager step, as it is still pending), and gives its count back as
    /// a successful child does, when its future is dropped.
    #[cold]
    #[inline(never)]
    fn failed(&mut self, failure: ChildFailure) {
        if !matches!(self.owed, Owed::Unstarted | Owed::Outcome) {
            return;
        }
        // From here the group only needs the count back, as from a child
        // that succeeded.
        self.owed = Owed::Success;
        // SAFETY: in its own poll the child's group is alive (see the type's
        // documentation).
        unsafe { GroupState::failed_in_poll(self.group, failure) };
        if let Some(me) = current_task() {
            me.cancel_with(FAILED_CHILD);
        }
    }

    /// Tells the group how the child ended (`None`: it was cancelled).
    #[cold]
    #[inline(never)]
    fn report(&mut self, failure: Option<ChildFailure>) {
        if !matches!(self.owed, Owed::Unstarted | Owed::Outcome) {
            return;
        }
        self.owed = Owed::Nothing;
        // SAFETY: the group is alive: kept by the creator while its
        // `create_task` runs, and by this child's own count afterwards (see the
        // type's documentation).
        let group = unsafe { self.group.as_ref() };
        if in_eager_step() {
            // Ended inside its own `create_task`: never counted.
            if let Some(failure) = failure {
                group.child_failed_eagerly(failure);
            }
        } else {
            // SAFETY: the count the creator gave this child, taken back once
            // (nothing is owed any more).
            unsafe { Self::counted_child_done(self.group, failure) };
        }
    }

    /// The child's future is dropped before it was ever polled: inside its own
    /// `create_task` (a task factory panicked, say), nobody counted it and it
    /// owes nothing; otherwise it was cancelled before it started.
    #[cold]
    fn dropped_unstarted(&mut self) {
        // Its own task in its eager step: the loop abandons a child whose
        // start failed (a factory hook panicked) as it would cancel an eager
        // child, inside the `create_task` that made it. (Not the thread-wide
        // `in_task_start()`: another task of any loop may be starting while
        // this one is dropped, say by a `close()` a factory hook calls.)
        if in_eager_step() {
            self.owed = Owed::Nothing;
        } else {
            self.report_unfinished();
        }
    }

    /// The child's future panicked as it was dropped before it ended.
    #[cold]
    fn cleanup_panicked(&mut self, payload: Box<dyn Any + Send>) {
        if self.owed == Owed::Unstarted && in_eager_step() {
            // Dropped inside its own `create_task`, never counted: the panic
            // goes on as it would without the group.
            self.owed = Owed::Nothing;
            resume_unwind(payload);
        }
        // SAFETY: the child still owes its outcome, so the group is alive (see
        // the type's documentation).
        // With no loop running, the loop is closing (`close()` drops what is
        // left): the group will not be joined either.
        if !unsafe { self.group.as_ref() }.may_be_read() || get_running_loop().is_err() {
            // The group was dropped, or its owner is being cancelled: nobody
            // would read the failure there. The task ends with the panic,
            // which the loop reports.
            resume_unwind(payload);
        }
        self.report(Some(ChildFailure::Panic {
            task: task_name(),
            panic: PanicError::new(payload),
        }));
    }

    #[cold]
    fn report_unfinished(&mut self) {
        let failure = std::thread::panicking().then(|| ChildFailure::Panic {
            task: task_name(),
            panic: PanicError::new(Box::new("panicked while being cancelled")),
        });
        self.report(failure);
    }
}

/// A group of tasks that end together, as asyncio's `TaskGroup`.
///
/// Add children with [`create_task`](TaskGroupHandle::create_task) (or
/// [`create_fallible_task`](TaskGroupHandle::create_fallible_task), whose `Err`
/// fails the group) and wait for all of them with [`join`](Self::join). If a
/// child fails — panics, or returns `Err` from a fallible task — the
/// other children are cancelled, no new task is accepted, and `join` returns
/// every failure in an [`ExceptionGroup`], in the order they happened. Dropping a
/// group that was not joined (for example because the task owning it was
/// cancelled) cancels its children: no child outlives its group.
///
/// asyncio also cancels the *body* of the `async with` block when a child fails;
/// a Rust future cannot be cancelled from inside while it keeps running, so that
/// needs the scoped form, [`task_group`], which drops the body at its next
/// suspension point. With `TaskGroup` the body sees the failure when it calls
/// `create_task` (an error) or `join`.
///
/// ```
/// let r = asyncio::run(async {
///     let tg = asyncio::TaskGroup::new();
///     let a = tg.create_task(async { 1 });
///     let b = tg.create_task(async { 2 });
///     tg.join().await?;
///     Ok::<_, Box<dyn std::error::Error + Send + Sync>>(a.await? + b.await?)
/// });
/// assert_eq!(r.unwrap().unwrap(), 3);
/// ```
pub struct TaskGroup {
    handle: TaskGroupHandle,
}

impl TaskGroup {
    /// An empty group, ready for children.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        TaskGroup {
            handle: TaskGroupHandle {
                state: GroupState::new(),
            },
        }
    }

    /// A handle that children (or anyone) can use to add tasks to the group.
    pub fn handle(&self) -> TaskGroupHandle {
        self.handle.clone()
    }

    /// Waits until every child is done (children may still be added meanwhile),
    /// then returns the failures, if any.
    ///
    /// `join` consumes the group, so joining twice does not compile:
    ///
    /// ```compile_fail
    /// # async fn f() {
    /// let tg = asyncio::TaskGroup::new();
    /// let first = tg.join();
    /// let second = tg.join(); // error: use of moved value
    /// # }
    /// ```
    ///
    /// Dropping the returned future before it completes cancels the children
    /// that are left.
    pub fn join(self) -> Join {
        Join { group: self }
    }
}

impl std::ops::Deref for TaskGroup {
    type Target = TaskGroupHandle;

    /// `create_task` and `create_task_named` come from the handle.
    fn deref(&self) -> &TaskGroupHandle {
        &self.handle
    }
}

impl Drop for TaskGroup {
    fn drop(&mut self) {
        self.handle.state.abandon();
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = &self.handle.state;
        f.debug_struct("TaskGroup")
            .field("children", &state.live.get())
            .field("failures", &state.failures.borrow().len())
            .field("aborting", &state.aborting.get())
            .field("finished", &state.finished.get())
            .finish()
    }
}

/// The future of [`TaskGroup::join`].
///
/// ```
/// asyncio::run(async {
///     let tg = asyncio::TaskGroup::new();
///     tg.create_task(asyncio::yield_now());
///     let join: asyncio::Join = tg.join();
///     join.await.unwrap();
/// })
/// .unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Join {
    group: TaskGroup,
}

impl Future for Join {
    type Output = Result<(), ExceptionGroup>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let state = &self.group.handle.state;
        if state.finished.get() {
            panic!("a TaskGroup's Join was polled after it completed");
        }
        if state.has_children() {
            state.register_waiter(cx);
            return Poll::Pending;
        }
        Poll::Ready(state.outcome())
    }
}

/// Adds tasks to a group from anywhere: clone it into children.
///
/// It does not keep the group open: once the group ended, `create_task` fails
/// with [`TaskGroupError::Finished`].
///
/// ```
/// let n = asyncio::run(asyncio::task_group(|tg| async move {
///     let inner = tg.clone();
///     // A child adds a sibling through its own handle.
///     let parent = tg.create_task(async move { inner.create_task(async { 2 }).await.unwrap() * 21 });
///     Ok::<_, asyncio::TaskError>(parent.await?)
/// }))
/// .unwrap();
/// assert_eq!(n.unwrap(), 42);
/// ```
#[derive(Clone)]
pub struct TaskGroupHandle {
    state: Rc<GroupState>,
}

impl TaskGroupHandle {
    /// Starts `fut` as a child task, as `TaskGroup.create_task`; the task
    /// yields what `fut` returns.
    ///
    /// The child starts as the loop's task factory says (eagerly under
    /// `eager_task_factory`). Its output is a value, whatever its type (a
    /// `Result` too): only a panic fails the group. For a child whose `Err`
    /// should fail the group, as an exception does in asyncio, use
    /// [`create_fallible_task`](Self::create_fallible_task).
    ///
    /// Once a child failed the group is shutting down, and `create_task`
    /// panics (asyncio raises `RuntimeError`): `fut` is dropped unpolled,
    /// and the panic ends the body (or the child) that called it, which
    /// `task_group` records in its [`ExceptionGroup`] after the failure that
    /// started the shutdown, as asyncio's group collects the body's
    /// `RuntimeError`. [`try_create_task`](Self::try_create_task) returns
    /// [`TaskGroupError::ShuttingDown`] instead.
    ///
    /// ```
    /// let n = asyncio::run(async {
    ///     asyncio::task_group(|tg| async move {
    ///         let a = tg.create_task(async { 20 });
    ///         let b = tg.create_task(async { 22 });
    ///         Ok::<_, asyncio::TaskError>(a.await? + b.await?)
    ///     })
    ///     .await
    /// })
    /// .unwrap();
    /// assert_eq!(n.unwrap(), 42);
    /// ```
    ///
    /// # Panics
    /// Outside a running event loop, as `create_task`; on a group that is
    /// shutting down (above); and on a group that has ended (create tasks
    /// while the group's body runs, or use `try_create_task`).
    #[inline]
    #[track_caller]
    pub fn create_task<F>(&self, fut: F) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => self.state.spawn::<F, Plain>(fut, None),
            Some(e) => refused(e, fut),
        }
    }

    /// [`create_task`](Self::create_task) with a task name.
    ///
    /// # Panics
    /// As `create_task`.
    #[track_caller]
    pub fn create_task_named<F>(&self, fut: F, name: impl Into<String>) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => self
                .state
                .spawn::<F, Plain>(fut, Some(TaskOptions::new().name(name))),
            Some(e) => refused(e, fut),
        }
    }

    /// [`create_task`](Self::create_task) with per-call options: a name, the
    /// [`Context`](asyncio_core::Context) the child runs in (asyncio's
    /// `TaskGroup.create_task(coro, context=ctx)`), an eager start.
    ///
    /// ```
    /// let var = asyncio::ContextVar::new("user");
    /// let seen = asyncio::run(asyncio::task_group(|tg| async move {
    ///     let ctx = asyncio::Context::new();
    ///     ctx.run(|| var.set("ada"));
    ///     let child = tg.create_task_with(
    ///         async move { var.get() },
    ///         asyncio::TaskOptions::new().context(ctx),
    ///     );
    ///     Ok::<_, asyncio::TaskError>(child.await?)
    /// }))
    /// .unwrap();
    /// assert_eq!(seen.unwrap(), Some("ada"));
    /// ```
    ///
    /// # Panics
    /// As `create_task`.
    #[track_caller]
    pub fn create_task_with<F>(&self, fut: F, options: TaskOptions) -> Task<F::Output>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => self.state.spawn::<F, Plain>(fut, Some(options)),
            Some(e) => refused(e, fut),
        }
    }

    /// [`create_task_with`](Self::create_task_with), failing instead when the
    /// group takes no new task.
    ///
    /// # Errors
    /// As [`try_create_task`](Self::try_create_task).
    pub fn try_create_task_with<F>(
        &self,
        fut: F,
        options: TaskOptions,
    ) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => Ok(self.state.spawn::<F, Plain>(fut, Some(options))),
            Some(e) => Err(e),
        }
    }

    /// [`create_task`](Self::create_task), failing instead when the group takes
    /// no new task.
    ///
    /// # Errors
    /// [`TaskGroupError::ShuttingDown`] once a child failed, and
    /// [`TaskGroupError::Finished`] after the group ended.
    pub fn try_create_task<F>(&self, fut: F) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => Ok(self.state.spawn::<F, Plain>(fut, None)),
            Some(e) => Err(e),
        }
    }

    /// [`create_task_named`](Self::create_task_named), failing instead when
    /// the group takes no new task.
    ///
    /// # Errors
    /// As [`try_create_task`](Self::try_create_task).
    pub fn try_create_task_named<F>(
        &self,
        fut: F,
        name: impl Into<String>,
    ) -> Result<Task<F::Output>, TaskGroupError>
    where
        F: Future + 'static,
    {
        match self.state.refusal() {
            None => Ok(self
                .state
                .spawn::<F, Plain>(fut, Some(TaskOptions::new().name(name)))),
            Some(e) => Err(e),
        }
    }

    /// [`create_fallible_task`](Self::create_fallible_task), failing instead
    /// when the group takes no new task.
    ///
    /// # Errors
    /// As [`try_create_task`](Self::try_create_task).
    pub fn try_create_fallible_task<F, T, E>(&self, fut: F) -> Result<Task<T>, TaskGroupError>
    where
        F: Future<Output = Result<T, E>> + 'static,
        E: Into<BoxError> + 'static,
        T: 'static,
    {
        match self.state.refusal() {
            None => Ok(self.state.spawn::<F, Fallible>(fut, None)),
            Some(e) => Err(e),
        }
    }

    /// [`create_fallible_task_named`](Self::create_fallible_task_named),
    /// failing instead when the group takes no new task.
    ///
    /// # Errors
    /// As [`try_create_task`](Self::try_create_task).
    pub fn try_create_fallible_task_named<F, T, E>(
        &self,
        fut: F,
        name: impl Into<String>,
    ) -> Result<Task<T>, TaskGroupError>
    where
        F: Future<Output = Result<T, E>> + 'static,
        E: Into<BoxError> + 'static,
        T: 'static,
    {
        match self.state.refusal() {
            None => Ok(self
                .state
                .spawn::<F, Fallible>(fut, Some(TaskOptions::new().name(name)))),
            Some(e) => Err(e),
        }
    }

    /// Starts a child whose `Err` fails the group, as an exception raised in
    /// an asyncio child does: the error goes into the group's
    /// [`ExceptionGroup`] (kept as `Box<dyn Error + Send + Sync>`), the other
    /// children and the body are cancelled. The task yields the `Ok` value;
    /// a child that failed ends cancelled, as its error now belongs to the
    /// group (see `docs/semantics.md`).
    ///
    /// ```
    /// let out = asyncio::run(async {
    ///     asyncio::task_group(|tg| async move {
    ///         tg.create_fallible_task(async { "42".parse::<u32>() });
    ///         tg.create_fallible_task(async { "x".parse::<u32>() });
    ///         Ok::<_, asyncio::TaskError>(())
    ///     })
    ///     .await
    /// })
    /// .unwrap();
    /// let group = out.unwrap_err();
    /// assert!(group.downcast_ref::<std::num::ParseIntError>().is_some());
    /// ```
    ///
    /// # Panics
    /// As `create_task`.
    #[track_caller]
    pub fn create_fallible_task<F, T, E>(&self, fut: F) -> Task<T>
    where
        F: Future<Output = Result<T, E>> + 'static,
        E: Into<BoxError> + 'static,
        T: 'static,
    {
        match self.state.refusal() {
            None => self.state.spawn::<F, Fallible>(fut, None),
            Some(e) => refused(e, fut),
        }
    }

    /// [`create_fallible_task`](Self::create_fallible_task) with a task name.
    ///
    /// # Panics
    /// As `create_task`.
    #[track_caller]
    pub fn create_fallible_task_named<F, T, E>(&self, fut: F, name: impl Into<String>) -> Task<T>
    where
        F: Future<Output = Result<T, E>> + 'static,
        E: Into<BoxError> + 'static,
        T: 'static,
    {
        match self.state.refusal() {
            None => self
                .state
                .spawn::<F, Fallible>(fut, Some(TaskOptions::new().name(name))),
            Some(e) => refused(e, fut),
        }
    }
}

/// What `create_task` does on a group that takes no new task: it panics, as
/// asyncio raises `RuntimeError` (the future is dropped unpolled first).
#[cold]
#[inline(never)]
#[track_caller]
fn refused<T, F>(error: TaskGroupError, fut: F) -> Task<T> {
    drop(fut);
    match error {
        TaskGroupError::ShuttingDown => panic!(
            "TaskGroup::create_task on a group that is shutting down (a child failed; asyncio \
             raises RuntimeError): use try_create_task to get TaskGroupError::ShuttingDown"
        ),
        TaskGroupError::Finished => panic!(
            "TaskGroup::create_task on a group that has ended: create tasks while the group's \
             body runs, or use try_create_task to get a TaskGroupError"
        ),
    }
}

impl fmt::Debug for TaskGroupHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupHandle").finish_non_exhaustive()
    }
}

/// Runs `body` with a task group and waits for the group, as
/// `async with asyncio.TaskGroup() as tg: body`.
///
/// The body returns a `Result`, as a Python body either finishes or raises:
/// `Ok(value)` is the group's value once every child finished; `Err(error)`
/// fails the group as a child's failure does (asyncio adds the body's
/// exception to the group). `?` works inside the body, on a child's task
/// too.
///
/// When a child fails, the other children *and the body* are cancelled (the
/// body's future is dropped at its current suspension point); once every child
/// has finished, all failures come back in an [`ExceptionGroup`] (a panic or an
/// `Err` of the body is one of them).
///
/// ```
/// let out = asyncio::run(async {
///     asyncio::task_group(|tg| async move {
///         tg.create_task(async { 1 });
///         tg.create_fallible_task(async { Err::<(), _>("disk full".to_string()) });
///         // Wait for ever: the failure cancels the body here.
///         std::future::pending::<()>().await;
///         Ok::<_, asyncio::TaskError>(())
///     })
///     .await
/// })
/// .unwrap();
/// let errors = out.unwrap_err();
/// assert_eq!(errors.len(), 1);
/// assert!(errors.to_string().contains("disk full"));
/// ```
pub fn task_group<B, Fut, T, E>(body: B) -> Scope<Fut>
where
    B: FnOnce(TaskGroupHandle) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    let state = GroupState::new();
    let body = body(TaskGroupHandle {
        state: Rc::clone(&state),
    });
    Scope {
        state,
        body: Some(Box::pin(CatchPanic::new(body))),
        output: None,
    }
}

/// The future of [`task_group`].
///
/// ```
/// let scope = asyncio::task_group(|tg| async move {
///     Ok::<_, asyncio::TaskError>(tg.create_task(async { "done" }).await?)
/// });
/// let out = asyncio::run(scope).unwrap();
/// assert_eq!(out.unwrap(), "done");
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Scope<Fut: Future> {
    state: Rc<GroupState>,
    body: Option<Pin<Box<CatchPanic<Fut>>>>,
    output: Option<Fut::Output>,
}

impl<Fut, T, E> Future for Scope<Fut>
where
    Fut: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, ExceptionGroup>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: nothing is structurally pinned: the body is boxed.
        let this = unsafe { self.get_unchecked_mut() };
        let state = Rc::clone(&this.state);
        if let Some(body) = &mut this.body {
            if state.aborting.get() {
                drop_body(&mut this.body, &state);
            } else {
                match body.as_mut().poll(cx) {
                    Poll::Pending => {}
                    Poll::Ready(Ok(Ok(out))) => {
                        this.output = Some(Ok(out));
                        drop_body(&mut this.body, &state);
                    }
                    Poll::Ready(Ok(Err(error))) => {
                        state.body_failed(ChildFailure::Error {
                            task: task_name(),
                            error: error.into(),
                        });
                        drop_body(&mut this.body, &state);
                    }
                    Poll::Ready(Err(panic)) => {
                        state.body_failed(ChildFailure::Panic {
                            task: task_name(),
                            panic,
                        });
                        drop_body(&mut this.body, &state);
                    }
                }
                // A child may have failed while the body ran.
                if state.aborting.get() {
                    drop_body(&mut this.body, &state);
                }
            }
        }
        if this.body.is_some() || state.has_children() {
            state.register_waiter(cx);
            return Poll::Pending;
        }
        match state.outcome() {
            Err(errors) => Poll::Ready(Err(errors)),
            Ok(()) => match this.output.take() {
                Some(Ok(out)) => Poll::Ready(Ok(out)),
                _ => unreachable!("the body returned Ok (it was not cancelled: nothing failed)"),
            },
        }
    }
}

/// Drops the body (cancelling it, if it has not finished). A panic of its
/// destructors is a failure of the body, kept with the others in the order
/// they happened, as asyncio's `__aexit__` keeps an exception raised in the
/// body's `finally` after the group cancelled it (test_taskgroups
/// `test_taskgroup_19`); it must not unwind out of the group, which would lose
/// the children's failures and leave them running.
fn drop_body<B>(body: &mut Option<B>, state: &GroupState) {
    if let Some(b) = body.take()
        && let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(b)))
    {
        state.body_failed(ChildFailure::Panic {
            task: task_name(),
            panic: PanicError::new(payload),
        });
    }
}

impl<Fut: Future> Drop for Scope<Fut> {
    fn drop(&mut self) {
        // The owner is cancelled: the children are cancelled whatever the
        // body's destructors do; their panic then ends the owner (the scope
        // has no one left to report to).
        let body = self.body.take();
        let dropped = catch_unwind(AssertUnwindSafe(move || drop(body)));
        self.state.abandon();
        if let Err(payload) = dropped {
            resume_unwind(payload);
        }
    }
}

impl<Fut: Future> fmt::Debug for Scope<Fut> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("body_running", &self.body.is_some())
            .finish_non_exhaustive()
    }
}
