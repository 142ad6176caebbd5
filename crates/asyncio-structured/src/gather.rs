//! `gather`: run futures as tasks (or take tasks that exist) and collect their
//! outputs in order.
//!
//! Both forms end up awaiting a list of tasks. Each task keeps its outcome in
//! its own cell until the gather has them all: nothing is copied out per task
//! while the others run, and the gather holds one handle per task and nothing
//! else. It looks at the tasks one loop turn after it is first polled (tasks
//! created just before it, already in the ready queue, have run by then) and
//! leaves each task still running a waker that names it (`index_waker`), so a
//! later completion costs O(1) whatever order the tasks end in.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use asyncio_core::{Task, TaskError, create_task, task_failure_count};

use crate::index_waker::IndexWakers;

/// Runs each future as a task (through the loop's task factory) and waits for
/// all of them, as `asyncio.gather(*aws)`.
///
/// The outputs come back in the order of the input. If a child panics or is
/// cancelled, the gather completes at once with that [`TaskError`]; the other
/// children are *not* cancelled and keep running, as in asyncio. Dropping the
/// gather before it completes cancels every child (asyncio's "if gather() is
/// cancelled, all submitted awaitables are cancelled").
/// [`Gather::return_exceptions`] waits for every child and returns each
/// outcome instead.
///
/// Gathering nothing completes at once with an empty `Vec`. To gather tasks
/// that already exist, use [`gather_tasks`], which takes them as they are.
///
/// # Panics
/// Outside a running event loop (the children are created at once, like
/// `create_task`).
///
/// ```
/// use asyncio::{gather, run};
///
/// let out = run(async { gather((1..=3).map(|i| async move { i * 10 })).await }).unwrap();
/// assert_eq!(out.unwrap(), vec![10, 20, 30]);
/// ```
#[track_caller]
pub fn gather<I>(futures: I) -> Gather<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + 'static,
    <I::Item as Future>::Output: 'static,
{
    // The failures that come before the gather exists are those of children
    // that ended inside their own `create_task` (an eager start): asyncio
    // sees them in argument order, which is also the order they happened.
    let mark = task_failure_count();
    let debug = asyncio_core::get_running_loop().is_ok_and(|lp| lp.get_debug());
    let tasks: Vec<_> = if debug {
        // Called from here (not from a closure), `create_task` records the
        // user's `gather` call as each child's creation site.
        let futures = futures.into_iter();
        let mut tasks = Vec::with_capacity(futures.size_hint().0);
        for future in futures {
            tasks.push(create_task(future));
        }
        tasks
    } else {
        // Collected, which is cheaper per child than a loop of pushes.
        futures.into_iter().map(create_task).collect()
    };
    Gather::new(tasks, mark)
}

/// Waits for tasks that already exist and collects their outcomes in the
/// order given, as `asyncio.gather(*tasks)`.
///
/// The tasks themselves are gathered: no second task is made for each (asyncio's
/// `ensure_future` returns a task as it is). Otherwise this is [`gather`]: the
/// first failure (a panic, or a cancelled task) completes the gather at once
/// and the other tasks keep running; [`Gather::return_exceptions`] waits for
/// all; dropping the gather before it completes cancels the tasks that have not
/// finished (asyncio's "if gather() is cancelled, all submitted awaitables
/// (that have not completed yet) are also cancelled"). The outcome of every
/// task is taken by the gather, also after it completed, so a failure that
/// comes later is never reported as "never retrieved".
///
/// [`gather`] of a `Task` would work too, but would wrap it in a new task (a
/// generic future cannot be recognised as a task in Rust): use this for tasks.
///
/// ```
/// use asyncio::create_task;
/// use asyncio::{gather_tasks, run};
///
/// let out = run(async {
///     let tasks: Vec<_> = (1..=3).map(|i| create_task(async move { i * 10 })).collect();
///     gather_tasks(tasks).await
/// })
/// .unwrap();
/// assert_eq!(out.unwrap(), vec![10, 20, 30]);
/// ```
pub fn gather_tasks<T, I>(tasks: I) -> Gather<T>
where
    T: 'static,
    I: IntoIterator<Item = Task<T>>,
{
    // A `Vec` given is taken as it is (no copy).
    Gather::new(tasks.into_iter().collect(), task_failure_count())
}

/// How far a gather got.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Never polled.
    Fresh,
    /// Polled once, and let the tasks that were ready then run first.
    Yielded,
    /// Looked at every task; those not done hold one of its wakers.
    Watching,
    /// Returned its output (or was turned into a [`GatherAll`]).
    Finished,
}

/// The future of [`gather`] and [`gather_tasks`].
///
/// ```
/// let out = asyncio::run(async {
///     let g: asyncio::Gather<u8> = asyncio::gather((1..=2u8).map(|i| async move { i }));
///     g.await
/// })
/// .unwrap();
/// assert_eq!(out.unwrap(), [1, 2]);
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T> {
    /// The tasks, in the order given; each keeps its outcome until the gather
    /// takes it.
    tasks: Vec<Task<T>>,
    /// Task `i` is awaited with waker `i` of these.
    wakers: Rc<IndexWakers>,
    phase: Phase,
    /// Tasks the gather has not seen finish.
    remaining: usize,
    /// The index of the failure asyncio would report, once one is seen.
    first_failure: Option<usize>,
    /// [`task_failure_count`] when the gather was made: a task whose failure
    /// number is at most this had failed before.
    mark: u64,
}

impl<T> Gather<T> {
    fn new(tasks: Vec<Task<T>>, mark: u64) -> Self {
        Gather {
            wakers: IndexWakers::new(tasks.len()),
            remaining: tasks.len(),
            tasks,
            phase: Phase::Fresh,
            first_failure: None,
            mark,
        }
    }
}

impl<T: 'static> Gather<T> {
    /// Waits for every child and returns every outcome, failures included
    /// (asyncio's `return_exceptions=True`).
    pub fn return_exceptions(mut self) -> GatherAll<T> {
        let inner = Gather {
            tasks: std::mem::take(&mut self.tasks),
            wakers: Rc::clone(&self.wakers),
            phase: self.phase,
            remaining: self.remaining,
            first_failure: self.first_failure,
            mark: self.mark,
        };
        self.phase = Phase::Finished;
        GatherAll { inner }
    }

    /// Takes note of the tasks that finished since the last poll.
    ///
    /// The first poll only yields, unless every task is done already: tasks
    /// created just before the gather (as `gather_tasks(tasks)` usually
    /// follows their `create_task`s) are ready and run before it looks, so
    /// most need no waker at all. The next poll
    /// looks at every task and leaves a waker with each one still running;
    /// later polls look only at the tasks that woke it.
    fn refresh(&mut self, cx: &Context<'_>) {
        assert!(
            self.phase != Phase::Finished,
            "a gather was polled after it completed"
        );
        match self.phase {
            Phase::Fresh => {
                if self.tasks.iter().all(|t| t.done()) {
                    // Every child already finished (inside its `create_task`,
                    // under the eager factory): complete without suspending,
                    // as asyncio's gather of done futures returns a done
                    // future, so a recursive gather of eager children never
                    // suspends. The scan stops at the first child not done.
                    self.phase = Phase::Watching;
                    self.look_at_all();
                } else {
                    self.phase = Phase::Yielded;
                    cx.waker().wake_by_ref();
                }
            }
            Phase::Yielded => {
                self.phase = Phase::Watching;
                self.wakers.register(cx.waker());
                self.look_at_all();
            }
            Phase::Watching | Phase::Finished => {
                self.wakers.register(cx.waker());
                for index in self.wakers.take_woken() {
                    self.woken(index);
                }
            }
        }
    }

    /// Notes every finished task and leaves a waker with the others. Of the
    /// failures found, the first is the one asyncio's done callbacks would
    /// have seen first: those from before the gather was made in the order of
    /// the tasks given, then the others in the order they happened.
    fn look_at_all(&mut self) {
        let mut first: Option<((bool, u64), usize)> = None;
        for index in 0..self.tasks.len() {
            let task = &mut self.tasks[index];
            if task.done() {
                self.remaining -= 1;
                if task.cancelled() || task.panicked() {
                    let order = match task.failure_number() {
                        Some(n) if n > self.mark => (true, n),
                        _ => (false, index as u64),
                    };
                    if first.is_none_or(|(o, _)| order < o) {
                        first = Some((order, index));
                    }
                }
            } else {
                // Not done: the poll only leaves waker `index` with it.
                let polled = self
                    .wakers
                    .with_waker(index, |w| Pin::new(task).poll(&mut Context::from_waker(w)));
                debug_assert!(polled.is_pending(), "a task not done stays pending");
            }
        }
        self.first_failure = first.map(|(_, index)| index);
    }

    /// Task `index` woke the gather: it finished.
    fn woken(&mut self, index: usize) {
        let task = &self.tasks[index];
        // A task wakes its awaiter once, when it completes.
        debug_assert!(task.done(), "a task's waker is woken when it completes");
        self.remaining -= 1;
        if self.first_failure.is_none() && (task.cancelled() || task.panicked()) {
            self.first_failure = Some(index);
        }
    }

    /// The outcome of task `index`, taken from it.
    fn take(&mut self, index: usize) -> Result<T, TaskError> {
        self.tasks[index]
            .try_result()
            .expect("the gather takes the outcome of a finished task once")
    }

    /// The gather completed at a failure: the tasks still running are left
    /// to run, and each one's outcome is taken when it ends (asyncio marks a
    /// later failure retrieved), so nothing is reported as never retrieved;
    /// the outcomes of the tasks that finished are dropped.
    fn release(&mut self, taken: usize) {
        for (index, mut task) in std::mem::take(&mut self.tasks).into_iter().enumerate() {
            if index == taken {
                continue;
            }
            if task.done() {
                drop(task.try_result());
            } else {
                let handle = task.to_ref();
                handle.add_done_callback(move |_| drop(task.try_result()));
            }
        }
    }
}

impl<T: 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.refresh(cx);
        if let Some(index) = this.first_failure {
            this.phase = Phase::Finished;
            let failure = this.take(index);
            this.release(index);
            return match failure {
                Err(e) => Poll::Ready(Err(e)),
                Ok(_) => unreachable!("the first failure is a failed task"),
            };
        }
        if this.remaining > 0 {
            return Poll::Pending;
        }
        this.phase = Phase::Finished;
        let out = (0..this.tasks.len())
            .map(|i| {
                this.take(i)
                    .unwrap_or_else(|_| unreachable!("no task failed"))
            })
            .collect();
        Poll::Ready(Ok(out))
    }
}

impl<T> Drop for Gather<T> {
    fn drop(&mut self) {
        if self.phase == Phase::Finished {
            return;
        }
        // Dropped before it completed: the tasks not finished are cancelled,
        // as asyncio cancels the awaitables of a cancelled gather; the
        // outcomes of all are dropped with them.
        for task in &self.tasks {
            task.cancel();
        }
    }
}

impl<T> Unpin for Gather<T> {}

impl<T> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("tasks", &self.tasks.len())
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// The future of [`Gather::return_exceptions`].
///
/// ```
/// let outcomes = asyncio::run(async {
///     let a = asyncio::create_task(async { 1 });
///     let b = asyncio::create_task(async {
///         if true {
///             panic!("b failed");
///         }
///         2
///     });
///     let all: asyncio::GatherAll<i32> = asyncio::gather_tasks([a, b]).return_exceptions();
///     all.await
/// })
/// .unwrap();
/// assert_eq!(outcomes[0], Ok(1));
/// assert!(outcomes[1].as_ref().unwrap_err().is_panic());
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct GatherAll<T> {
    inner: Gather<T>,
}

impl<T: 'static> Future for GatherAll<T> {
    type Output = Vec<Result<T, TaskError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().inner;
        inner.refresh(cx);
        if inner.remaining > 0 {
            return Poll::Pending;
        }
        inner.phase = Phase::Finished;
        Poll::Ready((0..inner.tasks.len()).map(|i| inner.take(i)).collect())
    }
}
