//! `gather`: run futures as tasks (or take tasks that exist) and collect their
//! outputs in order.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use asyncio_core::{CancelledError, PanicError, Task, TaskError, TaskRef, create_task};

use crate::catch::CatchPanic;

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
        self.results.borrow_mut()[index] = Some(outcome);
        let remaining = self.remaining.get() - 1;
        self.remaining.set(remaining);
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
                TaskError::Cancelled(CancelledError::new())
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
#[track_caller]
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
/// Outcomes are collected by done callbacks, so the gather completes one loop
/// turn after its last task, as asyncio's does.
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
    let tasks = tasks.into_iter();
    let state = Rc::new(GatherState {
        results: RefCell::new(Vec::with_capacity(tasks.size_hint().0)),
        remaining: Cell::new(0),
        first_failure: Cell::new(None),
        waiter: RefCell::new(None),
    });
    let mut pending = Vec::new();
    for (index, mut task) in tasks.enumerate() {
        state.results.borrow_mut().push(None);
        state.remaining.set(state.remaining.get() + 1);
        let handle = task.to_ref();
        if !task.done() {
            pending.push(handle.clone());
        }
        let state = Rc::clone(&state);
        handle.add_done_callback(move |_| {
            let outcome = task
                .try_result()
                .expect("a done task's outcome, taken only by its gather");
            state.finish(index, outcome);
        });
    }
    Gather {
        state,
        children: pending,
        done: false,
    }
}

/// The future of [`gather`] and [`gather_tasks`].
#[must_use = "futures do nothing unless awaited"]
pub struct Gather<T> {
    state: Rc<GatherState<T>>,
    children: Vec<TaskRef>,
    done: bool,
}

impl<T> Gather<T> {
    /// Waits for every child and returns every outcome, failures included
    /// (asyncio's `return_exceptions=True`).
    pub fn return_exceptions(mut self) -> GatherAll<T> {
        let state = Rc::clone(&self.state);
        let children = std::mem::take(&mut self.children);
        self.done = true;
        GatherAll {
            inner: Gather {
                state,
                children,
                done: false,
            },
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

impl<T> Future for Gather<T> {
    type Output = Result<Vec<T>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "a gather was polled after it completed");
        if let Some(index) = this.state.first_failure.get() {
            this.done = true;
            this.children.clear();
            let failure = this.state.results.borrow_mut()[index].take();
            return match failure {
                Some(Err(e)) => Poll::Ready(Err(e)),
                _ => unreachable!("the first failure is recorded once"),
            };
        }
        if this.state.remaining.get() > 0 {
            this.register(cx);
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

impl<T> Future for GatherAll<T> {
    type Output = Vec<Result<T, TaskError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.get_mut().inner;
        assert!(!inner.done, "a gather was polled after it completed");
        if inner.state.remaining.get() > 0 {
            inner.register(cx);
            return Poll::Pending;
        }
        Poll::Ready(inner.take_all())
    }
}
