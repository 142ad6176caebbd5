//! asyncio's exceptions for the primitives and queues, as error types.
//!
//! Errors that hand an item back (`QueueFull<T>`, `QueueShutDown<T>`,
//! `PutError<T>`) print as `QueueFull(..)` under `Debug`, so `unwrap()` works
//! for any item type, like tokio's `SendError<T>`.

use std::fmt;

use thiserror::Error;

/// `put_nowait` found the queue full (asyncio's `QueueFull`); the item is
/// handed back in field `0`.
///
/// ```
/// use asyncio_sync::{PutError, Queue, QueueFull};
///
/// let q = Queue::new(1);
/// q.put_nowait("a").unwrap();
/// let Err(PutError::Full(QueueFull(item))) = q.put_nowait("b") else { panic!() };
/// assert_eq!(item, "b");
/// ```
#[derive(Error, Clone, Copy, PartialEq, Eq)]
#[error("the queue is full")]
pub struct QueueFull<T>(pub T);

/// `get_nowait` found the queue empty (asyncio's `QueueEmpty`).
///
/// ```
/// use asyncio_sync::{GetError, Queue, QueueEmpty};
///
/// let q = Queue::<u8>::new(0);
/// assert_eq!(q.get_nowait(), Err(GetError::Empty(QueueEmpty)));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("the queue is empty")]
pub struct QueueEmpty;

/// The queue was shut down (asyncio's `QueueShutDown`).
///
/// A `put` on a shut-down queue hands its item back in field `0`; a `get`
/// returns `QueueShutDown<()>` (the default) once the queue is shut down and
/// empty.
///
/// ```
/// use asyncio_sync::{Queue, QueueShutDown};
/// use futures::executor::block_on;
///
/// let q = Queue::new(0);
/// q.shutdown(false);
/// assert_eq!(block_on(q.put(7)), Err(QueueShutDown(7)));
/// assert_eq!(block_on(q.get()), Err(QueueShutDown(())));
/// ```
#[derive(Error, Clone, Copy, PartialEq, Eq, Default)]
#[error("the queue is shut down")]
pub struct QueueShutDown<T = ()>(pub T);

/// Why `put_nowait` refused an item; either way the item is handed back.
///
/// ```
/// use asyncio_sync::{PutError, Queue, QueueShutDown};
///
/// let q = Queue::new(0);
/// q.shutdown(false);
/// let err = q.put_nowait(1).unwrap_err();
/// assert!(matches!(err, PutError::ShutDown(QueueShutDown(1))));
/// assert_eq!(err.into_inner(), 1);
/// ```
#[derive(Error, Clone, Copy, PartialEq, Eq)]
pub enum PutError<T> {
    /// The queue holds `maxsize` items.
    #[error(transparent)]
    Full(QueueFull<T>),
    /// The queue was shut down.
    #[error(transparent)]
    ShutDown(QueueShutDown<T>),
}

impl<T> PutError<T> {
    /// The item that was not put.
    ///
    /// ```
    /// let q = asyncio_sync::Queue::new(1);
    /// q.put_nowait('x').unwrap();
    /// assert_eq!(q.put_nowait('y').unwrap_err().into_inner(), 'y');
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            PutError::Full(QueueFull(item)) | PutError::ShutDown(QueueShutDown(item)) => item,
        }
    }
}

/// Why `get_nowait` returned no item.
///
/// ```
/// use asyncio_sync::{GetError, Queue};
///
/// let q = Queue::<u8>::new(0);
/// assert!(matches!(q.get_nowait(), Err(GetError::Empty(_))));
/// q.shutdown(false);
/// assert!(matches!(q.get_nowait(), Err(GetError::ShutDown(_))));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetError {
    /// The queue is empty but still open: try again later, or `get().await`.
    #[error(transparent)]
    Empty(#[from] QueueEmpty),
    /// The queue is shut down and empty: no item will ever come.
    #[error(transparent)]
    ShutDown(#[from] QueueShutDown),
}

/// `task_done` was called more times than items were put (asyncio raises
/// `ValueError`).
///
/// ```
/// use asyncio_sync::{Queue, TaskDoneError};
///
/// let q = Queue::<u8>::new(0);
/// assert_eq!(q.task_done(), Err(TaskDoneError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("task_done() called too many times")]
pub struct TaskDoneError;

/// A `BoundedSemaphore` was released more times than it was acquired
/// (asyncio raises `ValueError`).
///
/// ```
/// use asyncio_sync::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1);
/// assert_eq!(sem.release(), Err(ReleaseError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("BoundedSemaphore released too many times")]
pub struct ReleaseError;

/// `Barrier::new(0)`: a barrier needs at least one party (asyncio raises
/// `ValueError`).
///
/// ```
/// use asyncio_sync::{Barrier, ZeroPartiesError};
///
/// assert_eq!(Barrier::new(0).unwrap_err(), ZeroPartiesError);
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("a barrier needs at least one party")]
pub struct ZeroPartiesError;

/// The barrier was reset or aborted while (or before) this task waited
/// (asyncio's `BrokenBarrierError`).
///
/// ```
/// use asyncio_sync::{Barrier, BrokenBarrierError};
/// use futures::executor::block_on;
///
/// let barrier = Barrier::new(2).unwrap();
/// barrier.abort();
/// assert_eq!(block_on(barrier.wait()), Err(BrokenBarrierError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("the barrier is broken")]
pub struct BrokenBarrierError;

impl<T> fmt::Debug for QueueFull<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueFull(..)")
    }
}

impl<T> fmt::Debug for QueueShutDown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QueueShutDown(..)")
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::Full(e) => fmt::Debug::fmt(e, f),
            PutError::ShutDown(e) => fmt::Debug::fmt(e, f),
        }
    }
}
