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
/// use asyncio::{run, shield};
///
/// let out = run(async { shield(async { 5 }).await }).unwrap();
/// assert_eq!(out, Ok(5));
/// ```
pub fn shield<F>(fut: F) -> Shield<F::Output>
where
    F: Future + 'static,
{
    Shield {
        task: Some(create_task(fut)),
    }
}

/// The future of [`shield`]: the shielded task's outcome.
///
/// Dropping it (its awaiter was cancelled) detaches the inner task rather
/// than cancelling it, which is the whole point of a shield.
///
/// ```
/// use std::time::Duration;
///
/// asyncio::run(async {
///     let shielded: asyncio::Shield<u8> = asyncio::shield(async {
///         asyncio::sleep(Duration::from_millis(5)).await;
///         7
///     });
///     let inner = shielded.task().to_ref();
///     // The timeout drops the shield, not the work under it.
///     assert!(asyncio::wait_for(shielded, Duration::from_millis(1)).await.is_err());
///     while !inner.done() {
///         asyncio::sleep(Duration::from_millis(1)).await;
///     }
///     assert!(!inner.cancelled(), "it ran to its end");
/// })
/// .unwrap();
/// ```
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Shield<T> {
    /// `None` only while being dropped.
    task: Option<Task<T>>,
}

impl<T> Shield<T> {
    /// The inner task.
    pub fn task(&self) -> &Task<T> {
        self.task
            .as_ref()
            .expect("a Shield holds its task until dropped")
    }
}

impl<T> Future for Shield<T> {
    type Output = Result<T, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let task = self
            .get_mut()
            .task
            .as_mut()
            .expect("a Shield holds its task until dropped");
        Pin::new(task).poll(cx)
    }
}

impl<T> Drop for Shield<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}
