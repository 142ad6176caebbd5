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
/// use asyncio::{PutError, Queue, QueueFull};
///
/// let q = Queue::new(1);
/// q.put_nowait("a").unwrap();
/// let Err(PutError::Full(QueueFull(item))) = q.put_nowait("b") else { panic!() };
/// assert_eq!(item, "b");
/// ```
///
/// ```
/// let q = asyncio::Queue::new(1);
/// q.put_nowait("a").unwrap();
/// match q.put_nowait("b") {
///     Err(asyncio::PutError::Full(asyncio::QueueFull(item))) => assert_eq!(item, "b"),
///     other => panic!("expected QueueFull, got {other:?}"),
/// }
/// ```
#[derive(Error, Clone, Copy, PartialEq, Eq)]
#[error("the queue is full")]
pub struct QueueFull<T>(pub T);

/// `get_nowait` found the queue empty (asyncio's `QueueEmpty`).
///
/// ```
/// use asyncio::{GetError, Queue, QueueEmpty};
///
/// let q = Queue::<u8>::new(0);
/// assert_eq!(q.get_nowait(), Err(GetError::Empty(QueueEmpty)));
/// ```
///
/// ```
/// let q = asyncio::Queue::<u8>::new(0);
/// assert_eq!(q.get_nowait(), Err(asyncio::GetError::Empty(asyncio::QueueEmpty)));
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
/// use asyncio::{Queue, QueueShutDown};
/// use futures::executor::block_on;
///
/// let q = Queue::new(0);
/// q.shutdown(false);
/// assert_eq!(block_on(q.put(7)), Err(QueueShutDown(7)));
/// assert_eq!(block_on(q.get()), Err(QueueShutDown(())));
/// ```
///
/// ```
/// let q = asyncio::Queue::new(0);
/// q.shutdown(false);
/// let refused = q.put_nowait(5).unwrap_err();
/// assert_eq!(refused, asyncio::PutError::ShutDown(asyncio::QueueShutDown(5)));
/// let got = asyncio::run(async move { q.get().await }).unwrap();
/// assert_eq!(got, Err(asyncio::QueueShutDown(())));
/// ```
#[derive(Error, Clone, Copy, PartialEq, Eq, Default)]
#[error("the queue is shut down")]
pub struct QueueShutDown<T = ()>(pub T);

/// Why `put_nowait` refused an item; either way the item is handed back.
///
/// ```
/// use asyncio::{PutError, Queue, QueueShutDown};
///
/// let q = Queue::new(0);
/// q.shutdown(false);
/// let err = q.put_nowait(1).unwrap_err();
/// assert!(matches!(err, PutError::ShutDown(QueueShutDown(1))));
/// assert_eq!(err.into_inner(), 1);
/// ```
///
/// ```
/// let q = asyncio::Queue::new(1);
/// q.put_nowait(1).unwrap();
/// let e = q.put_nowait(2).unwrap_err();
/// assert_eq!(e.into_inner(), 2, "the item comes back");
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
    /// let q = asyncio::Queue::new(1);
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
/// use asyncio::{GetError, Queue};
///
/// let q = Queue::<u8>::new(0);
/// assert!(matches!(q.get_nowait(), Err(GetError::Empty(_))));
/// q.shutdown(false);
/// assert!(matches!(q.get_nowait(), Err(GetError::ShutDown(_))));
/// ```
///
/// ```
/// let q = asyncio::Queue::<u8>::new(0);
/// assert!(matches!(q.get_nowait(), Err(asyncio::GetError::Empty(_))));
/// q.shutdown(false);
/// assert!(matches!(q.get_nowait(), Err(asyncio::GetError::ShutDown(_))));
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
/// use asyncio::{Queue, TaskDoneError};
///
/// let q = Queue::<u8>::new(0);
/// assert_eq!(q.task_done(), Err(TaskDoneError));
/// ```
///
/// ```
/// let q = asyncio::Queue::new(0);
/// q.put_nowait(1).unwrap();
/// q.get_nowait().unwrap();
/// q.task_done().unwrap();
/// assert_eq!(q.task_done(), Err(asyncio::TaskDoneError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("task_done() called too many times")]
pub struct TaskDoneError;

/// A `BoundedSemaphore` was released more times than it was acquired
/// (asyncio raises `ValueError`).
///
/// ```
/// use asyncio::{BoundedSemaphore, ReleaseError};
///
/// let sem = BoundedSemaphore::new(1);
/// assert_eq!(sem.release(), Err(ReleaseError));
/// ```
///
/// ```
/// let sem = asyncio::BoundedSemaphore::new(2);
/// assert_eq!(sem.release(), Err(asyncio::ReleaseError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("BoundedSemaphore released too many times")]
pub struct ReleaseError;

/// `Barrier::new(0)`: a barrier needs at least one party (asyncio raises
/// `ValueError`).
///
/// ```
/// use asyncio::{Barrier, ZeroPartiesError};
///
/// assert_eq!(Barrier::new(0).unwrap_err(), ZeroPartiesError);
/// ```
///
/// ```
/// assert_eq!(asyncio::Barrier::new(0).err(), Some(asyncio::ZeroPartiesError));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[error("a barrier needs at least one party")]
pub struct ZeroPartiesError;

/// The barrier was reset or aborted while (or before) this task waited
/// (asyncio's `BrokenBarrierError`).
///
/// ```
/// use asyncio::{Barrier, BrokenBarrierError};
/// use futures::executor::block_on;
///
/// let barrier = Barrier::new(2).unwrap();
/// barrier.abort();
/// assert_eq!(block_on(barrier.wait()), Err(BrokenBarrierError));
/// ```
///
/// ```
/// use std::rc::Rc;
///
/// let r = asyncio::run(async {
///     let barrier = Rc::new(asyncio::Barrier::new(2).unwrap());
///     let b = barrier.clone();
///     let waiter = asyncio::create_task(async move { b.wait().await });
///     asyncio::yield_now().await;
///     barrier.abort();
///     waiter.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(r, Err(asyncio::BrokenBarrierError));
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
