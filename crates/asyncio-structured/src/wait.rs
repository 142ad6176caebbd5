//! `wait` and `as_completed`: react to tasks as they finish.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asyncio_core::{CallbackId, Sleep, Task, sleep};
use futures_core::Stream;

/// When [`wait`] returns, as asyncio's `FIRST_COMPLETED`, `FIRST_EXCEPTION` and
/// `ALL_COMPLETED`.
///
/// ```
/// use std::time::Duration;
///
/// let (done, pending) = asyncio::run(async {
///     let fast = asyncio::create_task(async { 1 });
///     let slow = asyncio::create_task(async {
///         asyncio::sleep(Duration::from_secs(60)).await;
///         2
///     });
///     let r = asyncio::wait(vec![fast, slow], asyncio::ReturnWhen::FirstCompleted)
///         .unwrap()
///         .await;
///     (r.done.len(), r.pending.len())
/// })
/// .unwrap();
/// assert_eq!((done, pending), (1, 1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReturnWhen {
    /// As soon as any task is done.
    FirstCompleted,
    /// As soon as any task fails (a cancelled task does not count, as in
    /// asyncio); otherwise when all are done. A failure is a panic; for
    /// tasks that return a `Result` and are waited for with
    /// [`wait_fallible`], an `Err` too (asyncio's raised exception).
    FirstException,
    /// When every task is done.
    #[default]
    AllCompleted,
}

/// `wait` was given no task (asyncio's `ValueError: Set of Tasks/Futures is empty`).
///
/// ```
/// asyncio::run(async {
///     let none: Vec<asyncio::Task<()>> = Vec::new();
///     assert_eq!(
///         asyncio::wait(none, asyncio::ReturnWhen::AllCompleted).err(),
///         Some(asyncio::EmptyWaitError)
///     );
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("wait() needs at least one task")]
pub struct EmptyWaitError;

/// The two sets `wait` returns.
///
/// ```
/// let values = asyncio::run(async {
///     let tasks = (1..=3).map(|i| asyncio::create_task(async move { i })).collect();
///     let asyncio::WaitResult { done, pending } =
///         asyncio::wait(tasks, asyncio::ReturnWhen::AllCompleted).unwrap().await;
///     assert!(pending.is_empty());
///     let mut values = Vec::new();
///     for t in done {
///         values.push(t.await.unwrap());
///     }
///     values
/// })
/// .unwrap();
/// assert_eq!(values, [1, 2, 3]);
/// ```
#[derive(Debug)]
pub struct WaitResult<T> {
    /// The tasks that are done, in input order.
    pub done: Vec<Task<T>>,
    /// The tasks still pending, in input order.
    pub pending: Vec<Task<T>>,
}

/// Completion notices shared by the tasks' done callbacks and the waiter.
struct Notices {
    finished: RefCell<VecDeque<usize>>,
    waiter: RefCell<Option<Waker>>,
}

impl Notices {
    fn new() -> Rc<Self> {
        Rc::new(Notices {
            finished: RefCell::new(VecDeque::new()),
            waiter: RefCell::new(None),
        })
    }

    fn register(&self, cx: &Context<'_>) {
        let mut slot = self.waiter.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }
}

/// Subscribes to each task's completion; the callbacks hold only a weak
/// reference, so a dropped waiter leaves nothing behind but a no-op.
fn watch<T>(tasks: &[Task<T>], notices: &Rc<Notices>) -> Vec<CallbackId> {
    tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let weak: Weak<Notices> = Rc::downgrade(notices);
            t.add_done_callback(move |_| {
                if let Some(n) = weak.upgrade() {
                    n.finished.borrow_mut().push_back(i);
                    let waker = n.waiter.borrow_mut().take();
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
            })
        })
        .collect()
}

/// Waits for the tasks until `return_when` is met, as `asyncio.wait`, and
/// returns them split into done and pending (no task is cancelled).
///
/// # Errors
/// [`EmptyWaitError`] when `tasks` is empty, as asyncio raises `ValueError`.
///
/// ```
/// use asyncio::{create_task, yield_now};
/// use asyncio::{ReturnWhen, run, wait};
///
/// run(async {
///     let quick = create_task(async { 1 });
///     let slow = create_task(async {
///         for _ in 0..5 {
///             yield_now().await;
///         }
///         2
///     });
///     let r = wait(vec![quick, slow], ReturnWhen::FirstCompleted).unwrap().await;
///     assert_eq!((r.done.len(), r.pending.len()), (1, 1));
/// })
/// .unwrap();
/// ```
pub fn wait<T>(tasks: Vec<Task<T>>, return_when: ReturnWhen) -> Result<Wait<T>, EmptyWaitError> {
    if tasks.is_empty() {
        return Err(EmptyWaitError);
    }
    Ok(Wait::new(tasks, return_when, panicked::<T>))
}

/// [`wait`] for tasks that return a `Result`, where an `Err` is a failure as
/// an exception is in asyncio: with [`ReturnWhen::FirstException`] it returns
/// as soon as a task returns `Err` or panics (a cancelled task does not
/// count). The other modes are [`wait`]'s. (A generic `wait` cannot tell a
/// `Result` from any other value, as a `TaskGroup` child's `Err` fails the
/// group only through `create_fallible_task`.)
///
/// # Errors
/// [`EmptyWaitError`] when `tasks` is empty.
///
/// ```
/// use asyncio::{ReturnWhen, create_task, sleep, wait_fallible};
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let failing = create_task(async { "x".parse::<u32>() });
///     let slow = create_task(async {
///         sleep(Duration::from_secs(60)).await;
///         Ok(1)
///     });
///     let r = wait_fallible(vec![failing, slow], ReturnWhen::FirstException).unwrap().await;
///     assert_eq!((r.done.len(), r.pending.len()), (1, 1));
///     assert!(r.done[0].result().unwrap().unwrap().is_err());
/// })
/// .unwrap();
/// ```
pub fn wait_fallible<T, E>(
    tasks: Vec<Task<Result<T, E>>>,
    return_when: ReturnWhen,
) -> Result<Wait<Result<T, E>>, EmptyWaitError> {
    if tasks.is_empty() {
        return Err(EmptyWaitError);
    }
    Ok(Wait::new(
        tasks,
        return_when,
        returned_err_or_panicked::<T, E>,
    ))
}

/// Whether a done task failed as [`wait`] counts it.
fn panicked<T>(task: &Task<T>) -> bool {
    task.panicked()
}

/// Whether a done task failed as [`wait_fallible`] counts it.
fn returned_err_or_panicked<T, E>(task: &Task<Result<T, E>>) -> bool {
    task.panicked() || matches!(task.result(), Ok(Ok(Err(_))))
}

/// The future of [`wait`].
///
/// ```
/// use std::time::Duration;
///
/// let pending = asyncio::run(async {
///     let t = asyncio::create_task(asyncio::sleep(Duration::from_secs(60)));
///     let w: asyncio::Wait<()> = asyncio::wait(vec![t], asyncio::ReturnWhen::AllCompleted)
///         .unwrap()
///         .timeout(Duration::from_millis(1));
///     w.await.pending.len()
/// })
/// .unwrap();
/// assert_eq!(pending, 1, "the timeout returns what is still pending");
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<T> {
    tasks: Vec<Task<T>>,
    callbacks: Vec<CallbackId>,
    notices: Rc<Notices>,
    return_when: ReturnWhen,
    finished: usize,
    /// A task failed, as `failed` tells.
    failure_seen: bool,
    /// Whether a done task counts as failed for `FirstException`.
    failed: fn(&Task<T>) -> bool,
    /// Ends the wait early, leaving the unfinished tasks pending.
    deadline: Option<Sleep>,
}

impl<T> Wait<T> {
    fn new(tasks: Vec<Task<T>>, return_when: ReturnWhen, failed: fn(&Task<T>) -> bool) -> Self {
        let notices = Notices::new();
        let callbacks = watch(&tasks, &notices);
        Wait {
            tasks,
            callbacks,
            notices,
            return_when,
            finished: 0,
            failure_seen: false,
            failed,
            deadline: None,
        }
    }

    /// Returns after `timeout` at the latest, with the unfinished tasks in
    /// `pending` (asyncio's `wait(..., timeout=)`: a timeout is not an error,
    /// and the tasks are not cancelled).
    ///
    /// # Panics
    /// If awaited outside a running loop.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(sleep(timeout));
        self
    }

    /// Takes in completion notices; returns whether `return_when` is met. Each
    /// task is counted once, when its done callback runs (as in asyncio, a task
    /// that was already done is noticed one loop turn later).
    fn satisfied(&mut self) -> bool {
        loop {
            let next = self.notices.finished.borrow_mut().pop_front();
            let Some(i) = next else { break };
            self.finished += 1;
            if !self.failure_seen && self.return_when == ReturnWhen::FirstException {
                self.failure_seen = (self.failed)(&self.tasks[i]);
            }
        }
        let all = self.finished == self.tasks.len();
        match self.return_when {
            ReturnWhen::AllCompleted => all,
            ReturnWhen::FirstCompleted => self.finished > 0,
            ReturnWhen::FirstException => self.failure_seen || all,
        }
    }

    fn split(&mut self) -> WaitResult<T> {
        for (task, id) in self.tasks.iter().zip(self.callbacks.drain(..)) {
            task.remove_done_callback(id);
        }
        let (done, pending) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|t| t.done());
        WaitResult { done, pending }
    }
}

impl<T> Future for Wait<T> {
    type Output = WaitResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WaitResult<T>> {
        let this = self.get_mut();
        if this.satisfied() {
            return Poll::Ready(this.split());
        }
        if let Some(deadline) = &mut this.deadline
            && Pin::new(deadline).poll(cx).is_ready()
        {
            return Poll::Ready(this.split());
        }
        this.notices.register(cx);
        Poll::Pending
    }
}

impl<T> Unpin for Wait<T> {}

impl<T> fmt::Debug for Wait<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("tasks", &self.tasks.len())
            .field("return_when", &self.return_when)
            .finish_non_exhaustive()
    }
}

/// Yields the tasks in the order they finish, as `asyncio.as_completed` (its
/// 3.13 async-iterator form, which yields the original tasks). Each yielded task
/// is done: awaiting it returns its outcome at once.
///
/// The stream ends once every task was yielded. Dropping it leaves the tasks
/// running (they are the caller's, as in asyncio).
///
/// ```
/// use asyncio::{create_task, yield_now};
/// use asyncio::{as_completed, run};
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
///
/// let order = run(async {
///     let slow = create_task(async {
///         for _ in 0..3 {
///             yield_now().await;
///         }
///         "slow"
///     });
///     let fast = create_task(async { "fast" });
///     let mut stream = as_completed(vec![slow, fast]);
///     let mut order = Vec::new();
///     while let Some(task) = poll_fn(|cx| Pin::new(&mut stream).poll_next(cx)).await {
///         order.push(task.await.unwrap());
///     }
///     order
/// })
/// .unwrap();
/// assert_eq!(order, ["fast", "slow"]);
/// ```
pub fn as_completed<T>(tasks: Vec<Task<T>>) -> AsCompleted<T> {
    let notices = Notices::new();
    let callbacks = watch(&tasks, &notices);
    AsCompleted {
        tasks: tasks.into_iter().map(Some).collect(),
        callbacks,
        notices,
        left: 0,
        deadline: None,
        timed_out: false,
    }
    .counted()
}

/// The stream of [`as_completed`].
///
/// ```
/// use asyncio::StreamExt;
///
/// let total = asyncio::run(async {
///     let tasks = (1..=3).map(|i| asyncio::create_task(async move { i })).collect();
///     let mut finished: asyncio::AsCompleted<i32> = asyncio::as_completed(tasks);
///     let mut total = 0;
///     while let Some(t) = finished.next().await {
///         total += t.await.unwrap();
///     }
///     total
/// })
/// .unwrap();
/// assert_eq!(total, 6);
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct AsCompleted<T> {
    tasks: Vec<Option<Task<T>>>,
    callbacks: Vec<CallbackId>,
    notices: Rc<Notices>,
    left: usize,
    deadline: Option<Sleep>,
    timed_out: bool,
}

impl<T> AsCompleted<T> {
    /// Ends the stream after `timeout` even if tasks are left (asyncio's
    /// `as_completed(..., timeout=)`, whose iterator then raises
    /// `TimeoutError`): check [`timed_out`](Self::timed_out) after the stream
    /// ends, and take the unfinished tasks with
    /// [`into_remaining`](Self::into_remaining). They are not cancelled.
    ///
    /// # Panics
    /// If polled outside a running loop.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.deadline = Some(sleep(timeout));
        self
    }

    /// Whether the stream ended because its timeout expired
    /// (asyncio's `TimeoutError`).
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    fn counted(mut self) -> Self {
        self.left = self.tasks.len();
        self
    }

    /// How many tasks have not been yielded yet.
    pub fn remaining(&self) -> usize {
        self.left
    }

    /// Takes the tasks not yielded yet (for example after a timeout).
    pub fn into_remaining(mut self) -> Vec<Task<T>> {
        self.left = 0;
        std::mem::take(&mut self.tasks)
            .into_iter()
            .flatten()
            .collect()
    }
}

impl<T> Stream for AsCompleted<T> {
    type Item = Task<T>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Task<T>>> {
        let this = self.get_mut();
        if this.left == 0 {
            return Poll::Ready(None);
        }
        loop {
            let next = this.notices.finished.borrow_mut().pop_front();
            let Some(i) = next else { break };
            if let Some(task) = this.tasks[i].take() {
                this.left -= 1;
                return Poll::Ready(Some(task));
            }
        }
        if let Some(deadline) = &mut this.deadline
            && Pin::new(deadline).poll(cx).is_ready()
        {
            this.timed_out = true;
            this.deadline = None;
            this.left = 0;
            return Poll::Ready(None);
        }
        // Tasks that were already done when the stream was made are noticed
        // through their (scheduled) callbacks; nothing else to check here.
        this.notices.register(cx);
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> Drop for AsCompleted<T> {
    fn drop(&mut self) {
        for (task, id) in self.tasks.iter().zip(self.callbacks.drain(..)) {
            if let Some(task) = task {
                task.remove_done_callback(id);
            }
        }
    }
}

impl<T> Unpin for AsCompleted<T> {}

impl<T> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted")
            .field("remaining", &self.left)
            .finish_non_exhaustive()
    }
}
