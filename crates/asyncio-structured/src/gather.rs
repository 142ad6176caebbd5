//! `gather`: run futures as tasks (or take tasks that exist) and collect their
//! outputs in order.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use asyncio_core::{
    CancelledError, PanicError, Task, TaskError, TaskRef, create_task, task_failure_count,
};

use crate::catch::CatchPanic;
use crate::index_waker::IndexWakers;

struct GatherState<T> {
    results: RefCell<Vec<Option<Result<T, TaskError>>>>,
    remaining: Cell<usize>,
    /// The first child that failed, if any.
    first_failure: Cell<Option<usize>>,
    waiter: RefCell<Option<Waker>>,
}

impl<T> GatherState<T> {
    fn finish(&self, index: usize, outcome: Result<T, TaskError>) {
        let failed = outcome.is_err();
        let remaining = self.record(index, outcome);
        let first = failed && self.first_failure.get().is_none();
        if first {
            self.first_failure.set(Some(index));
        }
        if remaining == 0 || first {
            let waker = self.waiter.borrow_mut().take();
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Stores child `index`'s outcome; returns how many are still to come.
    fn record(&self, index: usize, outcome: Result<T, TaskError>) -> usize {
        self.results.borrow_mut()[index] = Some(outcome);
        let remaining = self.remaining.get() - 1;
        self.remaining.set(remaining);
        remaining
    }
}

/// Reports a child that ended without finishing (cancelled).
struct Slot<T> {
    state: Rc<GatherState<T>>,
    index: usize,
    armed: bool,
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        if self.armed {
            let outcome = if std::thread::panicking() {
                TaskError::Panicked(PanicError::new(Box::new("panicked while being cancelled")))
            } else {
                TaskError::Cancelled(CancelledError)
            };
            self.state.finish(self.index, Err(outcome));
        }
    }
}

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
/// use asyncio_structured::{gather, run};
///
/// let out = run(async { gather((1..=3).map(|i| async move { i * 10 })).await }).unwrap();
/// assert_eq!(out.unwrap(), vec![10, 20, 30]);
/// ```
pub fn gather<I>(futures: I) -> Gather<<I::Item as Future>::Output>
where
    I: IntoIterator,
    I::Item: Future + 'static,
{
    let futures = futures.into_iter();
    let state = Rc::new(GatherState {
        results: RefCell::new(Vec::with_capacity(futures.size_hint().0)),
        remaining: Cell::new(0),
        first_failure: Cell::new(None),
        waiter: RefCell::new(None),
    });
    let mut pending = Vec::new();
    for (index, fut) in futures.enumerate() {
        state.results.borrow_mut().push(None);
        state.remaining.set(state.remaining.get() + 1);
        let slot = Slot {
            state: Rc::clone(&state),
            index,
            armed: true,
        };
        let task = create_task(async move {
            let mut slot = slot;
            let outcome = CatchPanic::new(fut).await;
            slot.armed = false;
            slot.state
                .finish(slot.index, outcome.map_err(TaskError::Panicked));
        });
        if !task.done() {
            pending.push(task.to_ref());
        }
    }
    Gather {
        state,
        children: pending,
        joined: None,
        done: false,
    }
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
/// The gather looks at the tasks one loop turn after it is first polled (so
/// tasks that were ready run first), and leaves each task still running a
/// waker that tells it which task finished: collecting an outcome costs the
/// same whatever order the tasks end in.
///
/// ```
/// use asyncio_core::create_task;
/// use asyncio_structured::{gather_tasks, run};
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
    let tasks: Vec<Task<T>> = tasks.into_iter().collect();
    let n = tasks.len();
    let state = Rc::new(GatherState {
        results: RefCell::new((0..n).map(|_| None).collect()),
        remaining: Cell::new(n),
        first_failure: Cell::new(None),
        waiter: RefCell::new(None),
    });
    Gather {
        state,
        children: Vec::new(),
        joined: Some(Joined {
            wakers: IndexWakers::new(n),
            tasks,
            phase: Phase::Fresh,
            mark: task_failure_count(),
        }),
        done: false,
    }
}

/// The tasks of a [`gather_tasks`], awaited by the gather itself.
struct Joined<T> {
    /// The tasks; task `i`'s outcome was collected once `results[i]` of the
    /// gather's state is set.
    tasks: Vec<Task<T>>,
    /// Task `i` is awaited with waker `i` of these.
    wakers: Rc<IndexWakers>,
    phase: Phase,
    /// [`task_failure_count`] when the gather was made: a task whose failure
    /// number is at most this had failed before.
    mark: u64,
}

/// How far a [`Joined`] got.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Never polled.
    Fresh,
    /// Polled once, and let the tasks that were ready then run first.
    Yielded,
    /// Looked at every task; those not done hold one of its wakers.
    Watching,
}

impl<T> Joined<T> {
    /// The gather is dropped before it completed: the tasks that have not
    /// finished are cancelled, as asyncio cancels the awaitables of a
    /// cancelled gather.
    fn cancel(&mut self) {
        for task in self.tasks.drain(..) {
            task.cancel();
        }
    }
}

impl<T: 'static> Joined<T> {
    /// Collects into `state` the outcomes of the tasks that finished.
    ///
    /// The first poll only yields: tasks created just before the gather (as
    /// `gather_tasks(tasks)` usually follows their `create_task`s) are ready
    /// and run before it looks, so most need no waker at all. The next poll
    /// takes the outcome of every task that is done and leaves a waker with
    /// each other one; later polls look only at the tasks that woke it.
    fn collect(&mut self, state: &GatherState<T>, cx: &Context<'_>) {
        match self.phase {
            Phase::Fresh => {
                if !self.tasks.is_empty() {
                    self.phase = Phase::Yielded;
                    cx.waker().wake_by_ref();
                }
            }
            Phase::Yielded => {
                self.phase = Phase::Watching;
                self.wakers.register(cx.waker());
                self.look_at_all(state);
            }
            Phase::Watching => {
                self.wakers.register(cx.waker());
                for index in self.wakers.take_woken() {
                    if let Some(outcome) = self.poll_task(index, state) {
                        state.finish(index, outcome);
                    }
                }
            }
        }
    }

    /// Takes the outcome of every finished task and leaves a waker with the
    /// others. Of the failures found, the first is the one asyncio's done
    /// callbacks would have seen first: those from before the gather was made
    /// in the order of the tasks given, then the others in the order they
    /// happened.
    fn look_at_all(&mut self, state: &GatherState<T>) {
        let mut first: Option<((bool, u64), usize)> = None;
        for index in 0..self.tasks.len() {
            let order = match self.tasks[index].failure_number() {
                Some(n) if n > self.mark => (true, n),
                _ => (false, index as u64),
            };
            if let Some(outcome) = self.poll_task(index, state) {
                if outcome.is_err() && first.is_none_or(|(o, _)| order < o) {
                    first = Some((order, index));
                }
                state.record(index, outcome);
            }
        }
        if let Some((_, index)) = first {
            state.first_failure.set(Some(index));
        }
    }

    /// Polls task `index` with its own waker, unless its outcome was
    /// collected; returns its outcome if it is done.
    fn poll_task(&mut self, index: usize, state: &GatherState<T>) -> Option<Result<T, TaskError>> {
        if state.results.borrow()[index].is_some() {
            return None;
        }
        let task = &mut self.tasks[index];
        match self
            .wakers
            .with_waker(index, |w| Pin::new(task).poll(&mut Context::from_waker(w)))
        {
            Poll::Ready(outcome) => Some(outcome),
            Poll::Pending => None,
        }
    }

    /// The gather completed early: the tasks still running are left to run,
    /// and each one's outcome is taken when it ends (asyncio marks a later
    /// failure retrieved), so nothing is reported as never retrieved.
    ///
    /// Called before the failure's outcome is taken from `state`.
    fn release(&mut self, state: &GatherState<T>) {
        let results = state.results.borrow();
        for (index, mut task) in self.tasks.drain(..).enumerate() {
            if results[index].is_none() {
                let handle = task.to_ref();
                handle.add_done_callback(move |_| drop(task.try_result()));
            }
        }
    }
}

/// The future of [`gather`] and [`gather_tasks`].
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T> {
    state: Rc<GatherState<T>>,
    /// The children `gather` made, while they may need cancelling.
    children: Vec<TaskRef>,
    /// The tasks of `gather_tasks`.
    joined: Option<Joined<T>>,
    done: bool,
}

impl<T: 'static> Gather<T> {
    /// Waits for every child and returns every outcome, failures included
    /// (asyncio's `return_exceptions=True`).
    pub fn return_exceptions(mut self) -> GatherAll<T> {
        let state = Rc::clone(&self.state);
        let children = std::mem::take(&mut self.children);
        let joined = self.joined.take();
        self.done = true;
        GatherAll {
            inner: Gather {
                state,
                children,
                joined,
                done: false,
            },
        }
    }

    /// Takes in what finished and registers `cx` for what is to come.
    fn refresh(&mut self, cx: &Context<'_>) {
        match &mut self.joined {
            Some(joined) => joined.collect(&self.state, cx),
            None => self.register(cx),
        }
    }

    fn register(&self, cx: &Context<'_>) {
        let mut slot = self.state.waiter.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
    }

    fn take_all(&mut self) -> Vec<Result<T, TaskError>> {
        self.done = true;
        self.children.clear();
        std::mem::take(&mut *self.state.results.borrow_mut())
            .into_iter()
            .map(|r| r.expect("every child reported its outcome"))
            .collect()
    }
}

impl<T: 'static> Future for Gather<T> {
    type Output = Result<Vec<T>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "a gather was polled after it completed");
        this.refresh(cx);
        if let Some(index) = this.state.first_failure.get() {
            this.done = true;
            this.children.clear();
            if let Some(joined) = &mut this.joined {
                joined.release(&this.state);
            }
            let failure = this.state.results.borrow_mut()[index].take();
            return match failure {
                Some(Err(e)) => Poll::Ready(Err(e)),
                _ => unreachable!("the first failure is recorded once"),
            };
        }
        if this.state.remaining.get() > 0 {
            return Poll::Pending;
        }
        let all = this.take_all();
        Poll::Ready(Ok(all
            .into_iter()
            .map(|r| r.unwrap_or_else(|_| unreachable!()))
            .collect()))
    }
}

impl<T> Drop for Gather<T> {
    fn drop(&mut self) {
        if !self.done {
            for child in self.children.drain(..) {
                child.cancel();
            }
            if let Some(joined) = &mut self.joined {
                joined.cancel();
            }
        }
    }
}

impl<T> Unpin for Gather<T> {}

impl<T> fmt::Debug for Gather<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gather")
            .field("remaining", &self.state.remaining.get())
            .finish_non_exhaustive()
    }
}

/// The future of [`Gather::return_exceptions`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct GatherAll<T> {
    inner: Gather<T>,
}

impl<T: 'static> Future for GatherAll<T> {
    type Output = Vec<Result<T, TaskError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().inner;
        assert!(!inner.done, "a gather was polled after it completed");
        inner.refresh(cx);
        if inner.state.remaining.get() > 0 {
            return Poll::Pending;
        }
        Poll::Ready(inner.take_all())
    }
}
