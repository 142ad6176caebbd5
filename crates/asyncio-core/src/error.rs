//! The errors of the event loop and its tasks, named as asyncio names them.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// The task was cancelled before it finished (asyncio's `CancelledError`).
///
/// In asyncio-rs cancelling a task drops its future at its next suspension point,
/// so there is no exception to catch inside the task: destructors play the part of
/// `finally`. The error is what an awaiter of the task sees, with the message
/// given to [`TaskRef::cancel_with`](crate::TaskRef::cancel_with), if any (as
/// `CancelledError.args` carries the message of `Task.cancel(msg)`).
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let out = lp
///     .run_until_complete(async {
///         let task = asyncio::create_task(asyncio::sleep(std::time::Duration::from_secs(3600)));
///         task.cancel_with("shutting down");
///         task.await
///     })
///     .unwrap();
/// let err = out.unwrap_err();
/// assert!(err.is_cancelled());
/// assert_eq!(err.cancelled_message(), Some("shutting down"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CancelledError {
    // An `Arc<String>` is one thin pointer: the error stays as small as the
    // task outcomes it is part of allow.
    message: Option<Arc<String>>,
}

impl CancelledError {
    /// A cancellation without a message.
    pub const fn new() -> Self {
        CancelledError { message: None }
    }

    /// A cancellation carrying `message` (`CancelledError(msg)`).
    pub fn with_message(message: impl Into<String>) -> Self {
        CancelledError {
            message: Some(Arc::new(message.into())),
        }
    }

    /// The message given to `cancel_with`, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref().map(String::as_str)
    }
}

impl fmt::Display for CancelledError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            None => f.write_str("the task was cancelled"),
            Some(msg) => write!(f, "the task was cancelled: {msg}"),
        }
    }
}

impl std::error::Error for CancelledError {}

/// An operation was asked of a task or loop in a state that does not allow it
/// (asyncio's `InvalidStateError`).
///
/// ```
/// asyncio::run(async {
///     let mut t = asyncio::create_task(async { 1 });
///     assert_eq!(t.try_result().unwrap_err(), asyncio::InvalidStateError::NotDone);
///     asyncio::yield_now().await;
///     assert_eq!(t.try_result().unwrap(), Ok(1));
///     assert_eq!(t.try_result().unwrap_err(), asyncio::InvalidStateError::ResultTaken);
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidStateError {
    /// The result was asked for before the task finished.
    #[error("the task is not done yet: await it or check done() first")]
    NotDone,
    /// The result was already taken, by an earlier `await` or `try_result`.
    #[error("the task's result was already taken")]
    ResultTaken,
    /// A result, exception or cancellation was set on a future that is
    /// already done.
    #[error("the future is already done: set its result, exception or cancellation once")]
    AlreadyDone,
}

/// Misuse of the event loop (asyncio's `RuntimeError`).
///
/// ```
/// let err = asyncio::run(async { asyncio::run(async {}) }).unwrap().unwrap_err();
/// assert_eq!(err, asyncio::RunError::Runtime(asyncio::RuntimeError::AnotherLoopRunning));
/// assert_eq!(asyncio::get_running_loop().unwrap_err(), asyncio::RuntimeError::NoRunningLoop);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// No event loop is running on this thread.
    #[error(
        "no running event loop: call this from a task, inside asyncio::run or EventLoop::run_until_complete"
    )]
    NoRunningLoop,
    /// `run_until_complete` was called on the loop that is already running it.
    #[error("this event loop is already running: await the future instead of running it again")]
    AlreadyRunning,
    /// Another event loop is running on this thread; loops do not nest.
    #[error(
        "cannot run an event loop while another loop is running on this thread: await the future instead, or use a LoopHandle from another thread"
    )]
    AnotherLoopRunning,
    /// The loop was closed and can run nothing more.
    #[error("the event loop is closed")]
    Closed,
    /// The loop cannot be closed while it is running.
    #[error("cannot close a running event loop")]
    CloseWhileRunning,
    /// The main task (or `run_forever`) is waiting, but nothing could ever
    /// wake the loop: no task is ready and no waker, timer or loop handle
    /// exists anywhere (asyncio would hang).
    #[error(
        "the loop is waiting but nothing can ever wake it: no task is ready and no waker, timer or loop handle is alive"
    )]
    Stalled,
    /// `stop()` ended a `run_until_complete` before its future completed
    /// (asyncio's "Event loop stopped before Future completed.").
    #[error(
        "the event loop was stopped before the main future completed: stop() ends run_forever; let the main future return instead"
    )]
    Stopped,
    /// The loop's default executor (`to_thread`, `run_in_executor`) was shut
    /// down, or could not start a thread.
    #[error(
        "the default executor is shut down or could not start a thread: run blocking work before the loop closes"
    )]
    ExecutorUnavailable,
}

/// Why `run_until_complete` (or a `Runner`) produced no value.
///
/// A panic in the main future is not in this list: it is re-raised on the calling
/// thread once the loop is back in a clean state, as asyncio re-raises the main
/// coroutine's exception.
///
/// ```
/// let out = asyncio::run(async {
///     asyncio::current_task().unwrap().cancel();
///     asyncio::yield_now().await;
/// });
/// assert!(matches!(out, Err(asyncio::RunError::Cancelled(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The loop could not run the future (closed, or already running).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The main task was cancelled before it finished.
    #[error(transparent)]
    Cancelled(#[from] CancelledError),
    /// Ctrl-C (SIGINT) cancelled the main task during `Runner::run` (asyncio
    /// raises `KeyboardInterrupt`).
    #[error("interrupted by Ctrl-C (SIGINT): the main task was cancelled")]
    Interrupted,
}

/// A task panicked; the panic was caught at the task boundary.
///
/// The message is kept for display; the original payload can be taken back with
/// [`PanicError::into_panic`] to re-raise it with [`std::panic::resume_unwind`].
/// It is `Send + Sync` (the payload sits behind a lock only `into_panic` takes),
/// so it travels in `anyhow::Error` or `Box<dyn Error + Send + Sync>`.
///
/// ```
/// let lp = asyncio::EventLoop::new();
/// let out = lp
///     .run_until_complete(async { asyncio::create_task(async { panic!("boom") }).await })
///     .unwrap();
/// match out {
///     Err(asyncio::TaskError::Panicked(p)) => assert_eq!(p.message(), "boom"),
///     other => panic!("expected a panic, got {other:?}"),
/// }
/// ```
pub struct PanicError {
    // Boxed so that a task's outcome slot stays one pointer wide.
    inner: Box<PanicInner>,
}

struct PanicInner {
    message: String,
    /// Behind a `Mutex` only to be `Sync`: the payload is `Send` but not
    /// `Sync`, and nothing reads it through a shared reference.
    payload: Mutex<Option<Box<dyn Any + Send + 'static>>>,
}

impl PanicInner {
    fn take_payload(&mut self) -> Option<Box<dyn Any + Send + 'static>> {
        self.payload
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl PanicError {
    /// Wraps a payload caught with [`std::panic::catch_unwind`].
    pub fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        PanicError {
            inner: Box::new(PanicInner {
                message: panic_message(&*payload),
                payload: Mutex::new(Some(payload)),
            }),
        }
    }

    /// The panic's message (`"Box<dyn Any>"` when the payload was not a string).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The original panic payload, for [`std::panic::resume_unwind`].
    pub fn into_panic(mut self) -> Box<dyn Any + Send + 'static> {
        match self.inner.take_payload() {
            Some(payload) => payload,
            None => Box::new(std::mem::take(&mut self.inner.message)),
        }
    }
}

impl Drop for PanicInner {
    /// The payload's destructor is user code and may panic: a `PanicError`
    /// is dropped in the middle of the loop's own work (a task's discarded
    /// outcome, a report to the exception handler), so its payload is dropped
    /// without letting such a panic out.
    fn drop(&mut self) {
        if let Some(payload) = self.take_payload() {
            crate::gate::discard_payload(payload);
        }
    }
}

impl Clone for PanicError {
    /// A clone keeps the message; the payload (which cannot be cloned) becomes the message.
    fn clone(&self) -> Self {
        PanicError {
            inner: Box::new(PanicInner {
                message: self.inner.message.clone(),
                payload: Mutex::new(None),
            }),
        }
    }
}

impl PartialEq for PanicError {
    fn eq(&self, other: &Self) -> bool {
        self.inner.message == other.inner.message
    }
}

impl Eq for PanicError {}

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PanicError")
            .field(&self.inner.message)
            .finish()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the task panicked: {}", self.inner.message)
    }
}

impl std::error::Error for PanicError {}

/// How a task ended without a value: what awaiting a [`Task`](crate::Task) can fail with.
///
/// ```
/// let (cancelled, panicked) = asyncio::run(async {
///     let a = asyncio::create_task(std::future::pending::<()>());
///     a.cancel();
///     let b = asyncio::create_task(async { panic!("oops") });
///     (a.await.unwrap_err(), b.await.unwrap_err())
/// })
/// .unwrap();
/// assert!(cancelled.is_cancelled());
/// assert!(panicked.is_panic() && panicked.to_string().contains("oops"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// The task was cancelled.
    #[error(transparent)]
    Cancelled(#[from] CancelledError),
    /// The task panicked.
    #[error(transparent)]
    Panicked(#[from] PanicError),
}

impl TaskError {
    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled(_))
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// The message the task was cancelled with
    /// ([`cancel_with`](crate::TaskRef::cancel_with)), if it was cancelled with one.
    pub fn cancelled_message(&self) -> Option<&str> {
        match self {
            TaskError::Cancelled(c) => c.message(),
            TaskError::Panicked(_) => None,
        }
    }
}

/// The text of a panic payload, as `std`'s panic hook would print it.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_owned()
    }
}
