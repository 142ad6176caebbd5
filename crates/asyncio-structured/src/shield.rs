//! `shield`: protect a future from the cancellation of whoever awaits it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use asyncio_core::{Task, TaskError, create_task};

/// Runs `fut` as its own task and awaits it, as `asyncio.shield`.
///
/// If the task awaiting the shield is cancelled (its future dropped), the inner
/// task is not: it runs on to completion. Cancelling the inner task itself (for
/// example through [`Shield::task`]) still cancels it.
///
/// # Panics
/// Outside a running event loop.
///
/// ```
/// use asyncio_structured::{run, shield};
///
/// let out = run(async { shield(async { 5 }).await }).unwrap();
/// assert_eq!(out, Ok(5));
/// ```
pub fn shield<F>(fut: F) -> Shield<F::Output>
where
    F: Future + 'static,
{
    Shield {
        task: create_task(fut),
    }
}

/// The future of [`shield`]: the shielded task's outcome.
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Shield<T> {
    task: Task<T>,
}

impl<T> Shield<T> {
    /// The inner task.
    pub fn task(&self) -> &Task<T> {
        &self.task
    }
}

impl<T> Future for Shield<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().task).poll(cx)
    }
}
