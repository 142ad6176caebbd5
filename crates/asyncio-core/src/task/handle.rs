//! The two handles users hold: `TaskRef` (type-erased) and `Task<T>` (typed, awaitable).

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::Deref;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use super::header::{Header, LOCAL};
use super::state::*;
use crate::error::{InvalidStateError, TaskError};
use crate::event_loop::{EventLoop, LoopInner};

/// A type-erased handle to a task, as `asyncio.current_task()` and
/// `asyncio.all_tasks()` return it.
///
/// A `TaskRef` can name, inspect and cancel the task and attach done callbacks, but
/// cannot take its result (use the [`Task`] that `create_task` returned for that).
/// Like an asyncio task it belongs to its loop's thread, so it is neither `Send`
/// nor `Sync`. Cloning is cheap (a non-atomic count).
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let name = lp
///     .run_until_complete(async {
///         let me = asyncio::current_task().expect("inside a task");
///         me.set_name("main");
///         me.name()
///     })
///     .unwrap();
/// assert_eq!(name, "main");
/// ```
pub struct TaskRef {
    ptr: NonNull<Header>,
    _not_send: PhantomData<*const ()>,
}

/// Identifies a done callback so it can be removed again.
///
/// ```
/// asyncio::run(async {
///     let t = asyncio::create_task(asyncio::yield_now());
///     let id = t.add_done_callback(|_| unreachable!("removed before it ran"));
///     assert!(t.remove_done_callback(id));
///     t.await.unwrap();
///     asyncio::yield_now().await;
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallbackId(u64);

impl CallbackId {
    pub(crate) fn new(id: u64) -> Self {
        CallbackId(id)
    }

    pub(crate) fn get(self) -> u64 {
        self.0
    }
}

impl TaskRef {
    /// Takes over one loop-side reference.
    ///
    /// # Safety
    /// The caller gives up one count of `refs` on a live header.
    pub(crate) unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        TaskRef {
            ptr,
            _not_send: PhantomData,
        }
    }

    /// A new loop-side reference to a live header.
    ///
    /// # Safety
    /// `ptr` is a live header whose local side is alive (`refs > 0`), on its loop thread.
    #[inline]
    pub(crate) unsafe fn clone_raw(ptr: NonNull<Header>) -> Self {
        // SAFETY: caller's contract.
        let header = unsafe { ptr.as_ref() };
        let refs = header.refs.get();
        debug_assert!(
            refs > 0,
            "a task whose cell is being released is never referenced again"
        );
        if refs == u32::MAX || refs == 0 {
            refcount_overflow();
        }
        header.refs.set(refs + 1);
        // SAFETY: we just took the count we hand over.
        unsafe { TaskRef::from_raw(ptr) }
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a `TaskRef` is a loop-side reference: the cell stays allocated.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn as_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    pub(crate) fn owner(&self) -> &LoopInner {
        // SAFETY: the local side holds a strong `Rc` count on its owner.
        unsafe { self.header().owner().as_ref() }
    }

    /// The task's id: unique among the tasks of its loop, in creation order.
    pub fn id(&self) -> u64 {
        self.header().id
    }

    /// The task's name: the one given with [`set_name`](Self::set_name) or
    /// [`TaskOptions::name`](crate::TaskOptions::name), or `Task-<id>` as asyncio
    /// names tasks.
    pub fn name(&self) -> String {
        match self.header().extra_ref().and_then(|e| e.name.as_ref()) {
            Some(name) => name.clone(),
            None => format!("Task-{}", self.header().id),
        }
    }

    /// Renames the task.
    pub fn set_name(&self, name: impl Into<String>) {
        let name = name.into();
        self.header().with_extra(|e| e.name = Some(name));
    }

    /// Where the task was created (the caller of `create_task`), if the loop
    /// was in debug mode then (asyncio's `_source_traceback`, one frame).
    ///
    /// ```
    /// let line = line!() + 2;
    /// let site = asyncio::Runner::builder().debug(true).build().run(async {
    ///     let t = asyncio::create_task(async {});
    ///     t.created_at().map(|l| (l.file().to_owned(), l.line()))
    /// });
    /// let (file, at) = site.unwrap().expect("recorded in debug mode");
    /// assert!(file.ends_with(".rs"));
    /// assert_eq!(at, line);
    /// ```
    pub fn created_at(&self) -> Option<&'static std::panic::Location<'static>> {
        self.header().extra_ref().and_then(|e| e.created_at)
    }

    /// Whether the task finished: with a value, a panic, or by cancellation.
    pub fn done(&self) -> bool {
        self.header().has(COMPLETE)
    }

    /// Whether the task finished by cancellation.
    pub fn cancelled(&self) -> bool {
        self.header().has(CANCELLED)
    }

    /// Whether the task finished by panicking.
    pub fn panicked(&self) -> bool {
        self.header().has(FAILED)
    }

    /// For a task that ended failed (panicked or cancelled), the order of
    /// that failure among the failed tasks of this thread: `n` when it was the
    /// `n`th whose completion the loop processed (see [`task_failure_count`]).
    /// `None` for a task that is not done or succeeded.
    ///
    /// Not in asyncio, whose done callbacks run in the order the tasks ended:
    /// a library that looks at finished tasks after the fact (as
    /// `gather_tasks` does) uses it to tell which failure came first, as
    /// asyncio's `gather` reports the first exception raised.
    ///
    /// [`task_failure_count`]: crate::task_failure_count
    pub fn failure_number(&self) -> Option<u64> {
        if !self.header().has(COMPLETE) {
            return None;
        }
        match self.header().extra_ref().map_or(0, |e| e.failure_number) {
            0 => None,
            n => Some(n),
        }
    }

    /// Asks the task to stop, as `Task.cancel()`.
    ///
    /// Returns `false` if the task is already done. Otherwise the task's future is
    /// dropped the next time the loop would poll it (at once if it is waiting, at its
    /// next suspension point if it is the task calling `cancel`); its destructors
    /// are its `finally` blocks. The task then ends with
    /// [`TaskError::Cancelled`], unless a destructor panics, in which case it ends
    /// with that panic.
    pub fn cancel(&self) -> bool {
        self.cancel_inner(None)
    }

    /// [`cancel`](Self::cancel) with a message, as `Task.cancel(msg)`: whoever
    /// awaits the task gets a [`CancelledError`](crate::CancelledError) whose
    /// [`message`](crate::CancelledError::message) is `msg`.
    ///
    /// When a task is cancelled several times before it acts on it, the first
    /// message is kept; [`uncancel`](Self::uncancel) down to zero forgets it.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// let err = lp
    ///     .run_until_complete(async {
    ///         let t = asyncio::create_task(std::future::pending::<()>());
    ///         asyncio::yield_now().await;
    ///         assert!(t.cancel_with("deadline passed"));
    ///         t.await.unwrap_err()
    ///     })
    ///     .unwrap();
    /// assert_eq!(err.cancelled_message(), Some("deadline passed"));
    /// assert_eq!(err.to_string(), "the task was cancelled: deadline passed");
    /// ```
    pub fn cancel_with(&self, msg: impl Into<String>) -> bool {
        self.cancel_inner(Some(msg.into()))
    }

    fn cancel_inner(&self, msg: Option<String>) -> bool {
        let header = self.header();
        if header.has(COMPLETE) {
            return false;
        }
        header.with_extra(|e| {
            e.cancelling += 1;
            if e.cancel_message.is_none() {
                e.cancel_message = msg;
            }
        });
        if !header.has(CANCEL_REQUESTED) {
            header.set(CANCEL_REQUESTED);
            if !header.has(RUNNING) {
                self.owner().schedule(self);
            }
        }
        true
    }

    /// How many `cancel()` requests are pending, as `Task.cancelling()`.
    pub fn cancelling(&self) -> u32 {
        self.header().extra_ref().map_or(0, |e| e.cancelling)
    }

    /// Takes back one `cancel()` request, as `Task.uncancel()`; returns how many
    /// remain. When none remain and the task has not yet acted on the request, it
    /// will not be cancelled.
    pub fn uncancel(&self) -> u32 {
        let header = self.header();
        let left = header.with_extra(|e| {
            e.cancelling = e.cancelling.saturating_sub(1);
            e.cancelling
        });
        if left == 0 {
            header.clear(CANCEL_REQUESTED);
            // A message of a withdrawn request is not that of a later one.
            // (Dropped outside `with_extra`, as a matter of habit: a `String`
            // runs no user code.)
            let msg = header.with_extra(|e| e.cancel_message.take());
            drop(msg);
        }
        left
    }

    /// Adds a callback to run once the task is done, as `add_done_callback`.
    ///
    /// Callbacks are scheduled on the loop with `call_soon` when the task
    /// finishes (at once if it already has), in the order they were added, and
    /// receive the task. A panicking callback is reported to the loop's exception
    /// handler; the loop goes on.
    ///
    /// # Panics
    /// On a task whose loop is closed (it is done, and its loop can run
    /// nothing more; asyncio raises `RuntimeError`):
    /// [`try_add_done_callback`](Self::try_add_done_callback) returns the error.
    pub fn add_done_callback(&self, callback: impl FnOnce(&TaskRef) + 'static) -> CallbackId {
        self.try_add_done_callback(callback)
            .unwrap_or_else(|e| crate::event_loop::closed_loop("TaskRef::add_done_callback", e))
    }

    /// [`add_done_callback`](Self::add_done_callback), failing with
    /// [`RuntimeError::Closed`](crate::RuntimeError::Closed) when the task's
    /// loop is closed.
    pub fn try_add_done_callback(
        &self,
        callback: impl FnOnce(&TaskRef) + 'static,
    ) -> Result<CallbackId, crate::RuntimeError> {
        let header = self.header();
        if header.has(COMPLETE) && self.owner().closed.get() {
            self.owner().drop_reporting(callback);
            return Err(crate::RuntimeError::Closed);
        }
        let id = header.with_extra(|e| {
            e.next_callback += 1;
            e.next_callback
        });
        if header.has(COMPLETE) {
            let me = self.clone();
            self.owner()
                .call_soon_boxed(Box::new(move || callback(&me)));
        } else {
            let callback: super::header::DoneCallback = Box::new(callback);
            header.with_extra(|e| e.callbacks.push((id, callback)));
            header.set(HAS_CALLBACKS);
        }
        Ok(CallbackId(id))
    }

    /// Removes a callback added with [`add_done_callback`](Self::add_done_callback)
    /// that has not been scheduled yet; returns whether it was found.
    ///
    /// asyncio removes callbacks by equality of the function; Rust closures have no
    /// equality, so the id returned by `add_done_callback` names the callback instead.
    pub fn remove_done_callback(&self, id: CallbackId) -> bool {
        let removed = self.header().with_extra(|e| {
            let pos = e.callbacks.iter().position(|(cid, _)| *cid == id.0)?;
            Some(e.callbacks.remove(pos))
        });
        // Dropped here, outside `with_extra`: the closure's captures are user code.
        removed.is_some()
    }

    /// Gives the task a context (it had none). This alone does not put
    /// contexts in use on the thread (which would close the eager fast path):
    /// a context no variable was set in yet holds nothing to see, and the
    /// first `ContextVar::set` in the task enters it (see
    /// `contextvars::current`).
    pub(crate) fn attach_context(&self, ctx: crate::contextvars::Context) {
        let old = self.header().with_extra(|e| e.context.replace(ctx));
        self.header().set(HAS_CONTEXT);
        // Dropped outside `with_extra`: its values' destructors are user code.
        drop(old);
    }

    /// The context the task runs in, as asyncio's `Task.get_context()`: a
    /// copy of its creator's made at `create_task`, or the one given with
    /// [`TaskOptions::context`](crate::TaskOptions::context). A task created
    /// while no context variable was in use on the thread gets an empty one
    /// here (what it would have seen).
    ///
    /// ```
    /// let var = asyncio::ContextVar::new("user");
    /// asyncio::run(async move {
    ///     var.set("ada");
    ///     let task = asyncio::create_task(async {});
    ///     var.set("bob"); // after the copy: the task does not see it
    ///     assert_eq!(task.get_context().run(|| var.get()), Some("ada"));
    /// })
    /// .unwrap();
    /// ```
    pub fn get_context(&self) -> crate::contextvars::Context {
        if let Some(ctx) = self.context() {
            return ctx;
        }
        let ctx = crate::contextvars::Context::new();
        self.attach_context(ctx.clone());
        ctx
    }

    /// The task's own context, if it has one.
    pub(crate) fn context(&self) -> Option<crate::contextvars::Context> {
        if !self.header().has(HAS_CONTEXT) {
            return None;
        }
        self.header().extra_ref().and_then(|e| e.context.clone())
    }

    /// The loop the task belongs to.
    pub fn get_loop(&self) -> EventLoop {
        // SAFETY: the owner is alive while we hold a local reference.
        EventLoop::from_inner(unsafe { clone_owner(self.header()) })
    }
}

/// A task's outcome is delivered on its own loop: awaited from a task of
/// another loop, nothing would ever wake the awaiter. asyncio raises
/// `RuntimeError` ("attached to a different loop") in the awaiting task; the
/// panic does the same here, failing the awaiting task at once.
#[cold]
#[inline(never)]
fn awaited_from_another_loop() -> ! {
    panic!(
        "a Task was awaited from a task of another event loop: it is attached to a different \
         loop; await it on its own loop, or hand its result over with \
         LoopHandle::run_coroutine_threadsafe"
    )
}

/// Four billion references to one task can only come from leaked clones.
#[cold]
#[inline(never)]
fn refcount_overflow() -> ! {
    std::process::abort()
}

/// A new `Rc` to the task's owner.
///
/// # Safety
/// The header's local side must be alive.
pub(crate) unsafe fn clone_owner(header: &Header) -> Rc<LoopInner> {
    // SAFETY: the local side holds one strong count, so the pointer is a live `Rc`.
    unsafe {
        Rc::increment_strong_count(header.owner().as_ptr().cast_const());
        Rc::from_raw(header.owner().as_ptr().cast_const())
    }
}

impl Clone for TaskRef {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: we hold a local reference, so the local side is alive.
        unsafe { TaskRef::clone_raw(self.ptr) }
    }
}

impl Drop for TaskRef {
    #[inline(always)]
    fn drop(&mut self) {
        let header = self.header();
        let refs = header.refs.get() - 1;
        header.refs.set(refs);
        if refs == 0 {
            // SAFETY: that was the last loop-side reference.
            unsafe { release_local(self.ptr) };
        }
    }
}

/// Drops what the loop side owns and gives up the `LOCAL` bit; frees the cell if
/// no waker is left.
///
/// # Safety
/// Called once, on the loop thread, when `refs` reached zero.
#[inline(always)]
unsafe fn release_local(ptr: NonNull<Header>) {
    // SAFETY: caller's contract.
    if !unsafe { free_if_trivial(ptr) } {
        // SAFETY: caller's contract, passed on.
        unsafe { release_local_slow(ptr) }
    }
}

/// The common end of a task: finished, its stage, extra data and join waker
/// holding nothing, and no waker anywhere. Then frees the cell and returns
/// `true`; otherwise does nothing.
///
/// # Safety
/// The caller holds the last loop-side reference (it is given up on `true`), on
/// the loop thread.
#[inline(always)]
unsafe fn free_if_trivial(ptr: NonNull<Header>) -> bool {
    // SAFETY: the cell is allocated: the caller holds a local reference.
    let header = unsafe { ptr.as_ref() };
    let state = header.state.get();
    if state & (HAS_EXTRA | HAS_JOIN_WAKER) == 0
        && state & (OUTPUT_TAKEN | STAGE_TRIVIAL) != 0
        && header.wakers.load(Ordering::Acquire) == LOCAL
    {
        // SAFETY: no waker exists, so no other thread can reach the cell (only
        // a waker holder could make a new one); nothing in it needs dropping.
        unsafe { free_unreachable(ptr) };
        true
    } else {
        false
    }
}

/// Gives the memory of a cell that holds nothing to drop back to its loop, and
/// the loop's strong count with it.
///
/// # Safety
/// On the loop thread, by the holder of the last local reference, with no
/// waker alive; the cell is not used afterwards.
#[inline(always)]
unsafe fn free_unreachable(ptr: NonNull<Header>) {
    // SAFETY: the caller's reference keeps the cell allocated until here.
    let header = unsafe { ptr.as_ref() };
    let vtable = header.vtable;
    // SAFETY: the cell is the owner's and dead (caller's contract), and
    // holds the owner's strong count.
    unsafe { LoopInner::free_cell(header.owner(), ptr.cast(), vtable.layout, vtable.class) };
}

/// Drops what the loop side owns and gives up the `LOCAL` bit; frees the cell if
/// no waker is left.
///
/// # Safety
/// Called once, on the loop thread, when `refs` reached zero.
#[inline(never)]
unsafe fn release_local_slow(ptr: NonNull<Header>) {
    // SAFETY: the cell is still allocated: we hold the `LOCAL` bit.
    let header = unsafe { ptr.as_ref() };
    // From here the cell is dying: marked scheduled, so that a wake from a
    // destructor below (a future or a panic payload holding the task's own
    // waker) is ignored by `schedule_raw` instead of queueing a reference
    // to a cell that is about to be freed.
    header.set(SCHEDULED);
    // A taken outcome left nothing behind in the stage.
    let panic = if header.has(OUTPUT_TAKEN) {
        None
    } else {
        // SAFETY: last local owner, loop thread.
        unsafe { (header.vtable.drop_stage)(ptr) }
    };
    let join_waker = header.take_join_waker();
    // SAFETY: no one else reaches the field any more.
    let extra = unsafe { (*header.extra.get()).take() };
    // SAFETY: the local side's strong count, given back exactly once.
    let owner = unsafe { Rc::from_raw(header.owner().as_ptr().cast_const()) };
    let vtable = header.vtable;
    // Free the cell before running user destructors (which might, in theory,
    // panic); from here `header` is not touched.
    if header.wakers.load(Ordering::Acquire) == LOCAL
        || header.wakers.fetch_sub(LOCAL, Ordering::AcqRel) == LOCAL
    {
        // No waker and no local reference: nothing reaches the cell. Its memory
        // goes back to the loop's cache (or to the allocator, if that is full).
        if owner.cells.free(ptr.cast(), vtable.layout, vtable.class) {
            // The cached cell keeps its count of the loop; `owner` takes a
            // new one for the rest of this function.
            // SAFETY: `owner` is a live `Rc`.
            unsafe { Rc::increment_strong_count(Rc::as_ptr(&owner)) };
        }
    }
    // User values (a waker, done callbacks never run, a context's values):
    // a panic in their destructors is reported, not unwound through whoever
    // dropped the last reference.
    if let Some(payload) = panic {
        owner.report_drop_panic(payload);
    }
    if join_waker.is_some() {
        owner.drop_reporting(join_waker);
    }
    if extra.is_some() {
        owner.drop_reporting(extra);
    }
    drop(owner);
}

impl PartialEq for TaskRef {
    fn eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }
}

impl Eq for TaskRef {}

impl Hash for TaskRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.ptr.hash(state);
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.cancelled() {
            "cancelled"
        } else if self.panicked() {
            "panicked"
        } else if self.done() {
            "finished"
        } else {
            "pending"
        };
        f.debug_struct("Task")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("state", &state)
            .finish()
    }
}

/// A task: the handle `create_task` returns, and a future of the task's outcome.
///
/// Awaiting it gives `Ok(value)`, or [`TaskError::Cancelled`] /
/// [`TaskError::Panicked`]. Dropping it detaches the task, which runs on (it does
/// not cancel it: call [`cancel`](TaskRef::cancel) for that). It dereferences to
/// [`TaskRef`] for everything else (`cancel`, `done`, `name`, callbacks).
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let out = lp
///     .run_until_complete(async {
///         let task = asyncio::create_task(async { 6 * 7 });
///         task.await
///     })
///     .unwrap();
/// assert_eq!(out, Ok(42));
/// ```
pub struct Task<T> {
    /// Released by `Drop for Task` itself (its fast path frees the cell directly).
    raw: std::mem::ManuallyDrop<TaskRef>,
    _output: PhantomData<T>,
}

impl<T> Task<T> {
    /// Takes over the handle reference of a task created with `HAS_HANDLE`.
    ///
    /// # Safety
    /// `raw` must point to a cell whose output type is `T`.
    pub(crate) unsafe fn from_ref(raw: TaskRef) -> Self {
        Task {
            raw: std::mem::ManuallyDrop::new(raw),
            _output: PhantomData,
        }
    }

    /// Takes the outcome without waiting, as `Task.result()`.
    ///
    /// Fails with [`InvalidStateError::NotDone`] before the task finished, and with
    /// [`InvalidStateError::ResultTaken`] once the outcome was taken (by this call or
    /// by awaiting).
    pub fn try_result(&mut self) -> Result<Result<T, TaskError>, InvalidStateError> {
        let header = self.raw.header();
        if !header.has(COMPLETE) {
            return Err(InvalidStateError::NotDone);
        }
        if header.has(OUTPUT_TAKEN) {
            return Err(InvalidStateError::ResultTaken);
        }
        Ok(self.take_output())
    }

    /// The outcome, left in the task, as Python's `Task.result()`, which can
    /// be called any number of times: a reference to the value, or the error
    /// the task ended with (a new [`TaskError`] each call: a panic's payload,
    /// which cannot be copied, stays in the task, and the copy keeps its
    /// message).
    ///
    /// [`try_result`](Self::try_result) and awaiting move the value out
    /// instead (Rust cannot hand out a value it does not own twice without
    /// `Clone`); after that this fails with
    /// [`InvalidStateError::ResultTaken`]. Reading it counts as retrieving a
    /// failure: dropping the task afterwards reports nothing.
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// lp.run_until_complete(async {
    ///     let task = asyncio::create_task(async { String::from("done") });
    ///     asyncio::yield_now().await;
    ///     assert_eq!(task.result().unwrap().unwrap(), "done");
    ///     assert_eq!(task.result().unwrap().unwrap(), "done"); // again
    ///     assert_eq!(task.await.unwrap(), "done"); // and then moved out
    /// })
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    /// [`InvalidStateError::NotDone`] before the task finished,
    /// [`InvalidStateError::ResultTaken`] once its outcome was moved out.
    pub fn result(&self) -> Result<Result<&T, TaskError>, InvalidStateError> {
        let header = self.raw.header();
        if !header.has(COMPLETE) {
            return Err(InvalidStateError::NotDone);
        }
        if header.has(OUTPUT_TAKEN) {
            return Err(InvalidStateError::ResultTaken);
        }
        header.set(FAILURE_SEEN);
        let ptr = self.raw.ptr;
        // SAFETY: live cell of this task, loop thread (`Task` is `!Send`).
        let value = unsafe { (header.vtable.output_ref)(ptr) };
        if !value.is_null() {
            // SAFETY: the cell's output type is `T` (constructor's contract)
            // and the value is there. It stays there, unmoved, while `self`
            // is borrowed: only `try_result` and `poll`, which need `&mut`,
            // move it out, and the cell lives while this handle does.
            return Ok(Ok(unsafe { &*value.cast::<T>() }));
        }
        // SAFETY: as above.
        let failure = match unsafe { (header.vtable.peek_panic)(ptr) } {
            Some(p) => crate::task::raw::Failure::Panicked(p),
            None => crate::task::raw::Failure::Cancelled,
        };
        Ok(Err(crate::task::raw::task_error(ptr, failure)))
    }

    fn take_output(&mut self) -> Result<T, TaskError> {
        let header = self.raw.header();
        header.set(OUTPUT_TAKEN | FAILURE_SEEN);
        let mut out: Poll<Result<T, TaskError>> = Poll::Pending;
        // SAFETY: the cell's output type is `T` (constructor's contract), the task is
        // complete and the output was not taken yet.
        unsafe { (header.vtable.read_output)(self.raw.ptr, (&raw mut out).cast()) };
        match out {
            Poll::Ready(out) => out,
            Poll::Pending => unreachable!("read_output always writes the outcome"),
        }
    }

    /// Lets the task run on without this handle, also if it was awaited.
    ///
    /// Dropping a `Task` that was never awaited detaches it too; dropping one
    /// that is being awaited (its awaiter was cancelled, or gave up as
    /// `wait_for` does on its timeout) cancels the task, as asyncio cancels
    /// what a cancelled task awaits. `detach` is the way to stop awaiting
    /// without cancelling (what [`shield`](https://docs.rs/asyncio) does).
    ///
    /// ```
    /// let lp = asyncio::EventLoop::new();
    /// let t = lp.create_task(async { 5 });
    /// let r = t.to_ref();
    /// t.detach();
    /// lp.run_until_complete(asyncio::yield_now()).unwrap();
    /// assert!(r.done() && !r.cancelled());
    /// ```
    pub fn detach(mut self) {
        if !self.raw.header().has(COMPLETE) {
            self.forget_awaiter();
        }
        drop(self);
    }

    /// Drops the waker this handle left for the task's completion.
    fn forget_awaiter(&mut self) {
        let waker = self.raw.header().take_join_waker();
        self.raw.owner().drop_reporting(waker);
    }

    /// The type-erased handle (a new reference; this `Task` stays usable).
    pub fn to_ref(&self) -> TaskRef {
        TaskRef::clone(&self.raw)
    }
}

impl<T> Deref for Task<T> {
    type Target = TaskRef;

    fn deref(&self) -> &TaskRef {
        &self.raw
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let header = this.raw.header();
        if header.has(COMPLETE) {
            assert!(
                !header.has(OUTPUT_TAKEN),
                "a Task was polled after it returned its result"
            );
            return Poll::Ready(this.take_output());
        }
        let running = crate::context::running_loop();
        if !running.is_null() && !std::ptr::eq(running, header.owner().as_ptr()) {
            awaited_from_another_loop();
        }
        // The borrow ends in this statement, and `will_wake` compares
        // pointers without calling into the waker.
        let same = header.join_waker().is_some_and(|w| w.will_wake(cx.waker()));
        if !same {
            // The clone and the old waker's drop are user code, which may
            // re-enter the loop and complete this task (taking the slot): no
            // borrow of the slot is held across either. The new waker is in
            // the slot, and the flag set, before the old one is dropped, so a
            // completion that runs inside that drop wakes the new one.
            let new = cx.waker().clone();
            if header.has(COMPLETE) {
                // The clone re-entered the loop, which finished the task: no
                // completion is left to wake `new`.
                let out = this.take_output();
                drop(new);
                return Poll::Ready(out);
            }
            // Runs no user code: the old waker is moved out, not dropped.
            let old = header.replace_join_waker(new);
            if old.is_none() && header.has(HAS_CALLBACKS) {
                // The awaiter comes after the callbacks already added.
                header.with_extra(|e| e.callbacks_before_join = e.next_callback);
            }
            drop(old);
        }
        Poll::Pending
    }
}

impl<T> Drop for Task<T> {
    #[inline(always)]
    fn drop(&mut self) {
        let header = self.raw.header();
        // The handle of a task that finished without failing, whose stage, extra
        // data and join waker hold nothing, held by no one else and with no
        // waker anywhere: free the cell at once. (One mask test for the state;
        // a taken output, rarer, goes the general way.)
        const MASK: u32 = COMPLETE | FAILED | HAS_EXTRA | HAS_JOIN_WAKER | STAGE_TRIVIAL;
        if header.state.get() & MASK == COMPLETE | STAGE_TRIVIAL
            && header.refs.get() == 1
            && header.wakers.load(Ordering::Acquire) == LOCAL
        {
            // SAFETY: ours is the last local reference and no waker exists, so
            // no other thread can reach the cell; it is given up here and `raw`
            // is never used again.
            unsafe { free_unreachable(self.raw.ptr) };
            return;
        }
        self.drop_slow();
    }
}

impl<T> Task<T> {
    #[inline(never)]
    fn drop_slow(&mut self) {
        let state = self.raw.header().state.get();
        if state & COMPLETE == 0 {
            if state & HAS_JOIN_WAKER != 0 {
                // Dropped while awaited: whoever awaited it was cancelled (or
                // gave up, as `wait_for` on its timeout), and asyncio cancels
                // what a cancelled task awaits. (`detach` clears the waker
                // first; a handle never awaited detaches.) The awaiter's
                // waker is user code: it is dropped through the gate once the
                // task is cancelled, so a panicking `Drop` neither skips the
                // cancellation nor leaks this handle's reference.
                let waker = self.raw.header().take_join_waker();
                self.raw.cancel();
                // No handle from here: if the waker's `Drop` runs the loop
                // and the task completes failed meanwhile, completion sees no
                // handle and reports the failure.
                self.raw.header().clear(HAS_HANDLE);
                self.raw.owner().drop_reporting(waker);
                // As asyncio's awaiter, whoever dropped the handle (the
                // cancelled awaiter, a timeout) goes on only once the task
                // has finished cancelling: its destructors run here, when
                // the loop can step it now.
                self.raw.owner().finish_cancel_now(&self.raw);
            }
            // Only completion looks at the flag: a failure nobody can take any
            // more is reported then.
            self.raw.header().clear(HAS_HANDLE);
        } else if state & (FAILED | FAILURE_SEEN) == FAILED {
            self.raw.header().set(FAILURE_SEEN);
            self.raw.owner().report_unobserved(&self.raw);
        }
        // SAFETY: `drop` runs once and `raw` is not used afterwards.
        unsafe { std::mem::ManuallyDrop::drop(&mut self.raw) };
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.raw, f)
    }
}

impl<T> Unpin for Task<T> {}
