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
///
/// asyncio::run(async {
///     let q = Queue::new(0);
///     q.shutdown(false);
///     assert_eq!(q.put(7).await, Err(QueueShutDown(7)));
///     assert_eq!(q.get().await, Err(QueueShutDown(())));
/// })
/// .unwrap();
/// ```
///
/// The item makes the error as `Send` as the item is: to take a refused
/// `Rc` through `?` into `anyhow::Error` or a task group's body, drop it with
/// [`drop_item`](Self::drop_item), or let `?` convert to the item-less
/// [`QueueError`]:
///
/// ```
/// use std::rc::Rc;
///
/// async fn produce(q: &asyncio::Queue<Rc<String>>) -> anyhow::Result<()> {
///     q.put(Rc::new("job".to_owned())).await.map_err(asyncio::QueueShutDown::drop_item)?;
///     Ok(())
/// }
///
/// async fn produce_more(q: &asyncio::Queue<Rc<String>>) -> Result<(), asyncio::QueueError> {
///     q.put(Rc::new("job".to_owned())).await?;
///     Ok(())
/// }
///
/// asyncio::run(async {
///     let q = asyncio::Queue::new(0);
///     q.shutdown(false);
///     let err = produce(&q).await.unwrap_err();
///     assert!(err.is::<asyncio::QueueShutDown>());
///     assert_eq!(produce_more(&q).await, Err(asyncio::QueueError::ShutDown));
/// })
/// .unwrap();
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
///
/// let barrier = Barrier::new(2).unwrap();
/// barrier.abort();
/// assert_eq!(asyncio::run(barrier.wait()).unwrap(), Err(BrokenBarrierError));
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

impl<T> QueueFull<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// The same error without its item (which is dropped), `Send` and
    /// `Sync` whatever the item was: `.map_err(QueueFull::drop_item)?`.
    pub fn drop_item(self) -> QueueFull<()> {
        QueueFull(())
    }
}

impl<T> QueueShutDown<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// The same error without its item (which is dropped), `Send` and
    /// `Sync` whatever the item was: `.map_err(QueueShutDown::drop_item)?`
    /// takes a refused `Rc` through `?` into `anyhow::Error`.
    ///
    /// ```
    /// let q = asyncio::Queue::new(0);
    /// q.shutdown(false);
    /// let err = q.put_nowait(std::rc::Rc::new(1)).unwrap_err();
    /// let asyncio::PutError::ShutDown(refused) = err else { panic!() };
    /// assert_eq!(refused.drop_item(), asyncio::QueueShutDown(()));
    /// ```
    pub fn drop_item(self) -> QueueShutDown {
        QueueShutDown(())
    }
}

impl<T> PutError<T> {
    /// The same error without its item (which is dropped), `Send` and
    /// `Sync` whatever the item was: `.map_err(PutError::drop_item)?`.
    pub fn drop_item(self) -> PutError<()> {
        match self {
            PutError::Full(_) => PutError::Full(QueueFull(())),
            PutError::ShutDown(_) => PutError::ShutDown(QueueShutDown(())),
        }
    }
}

/// Any queue error without an item: what `?` turns [`QueueFull<T>`],
/// [`QueueShutDown<T>`], [`PutError<T>`], [`QueueEmpty`] and [`GetError`]
/// into, dropping the item, so a function returning `Result<_, QueueError>`
/// can use `?` on every queue call whatever the item type (an `Rc` too).
///
/// ```
/// use std::rc::Rc;
///
/// fn pass_on(from: &asyncio::Queue<Rc<u8>>, to: &asyncio::Queue<Rc<u8>>) -> Result<(), asyncio::QueueError> {
///     let item = from.get_nowait()?;
///     to.put_nowait(item)?;
///     Ok(())
/// }
///
/// let (a, b) = (asyncio::Queue::new(0), asyncio::Queue::new(0));
/// assert_eq!(pass_on(&a, &b), Err(asyncio::QueueError::Empty));
/// a.put_nowait(Rc::new(1)).unwrap();
/// b.shutdown(false);
/// assert_eq!(pass_on(&a, &b), Err(asyncio::QueueError::ShutDown));
/// ```
#[derive(Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueueError {
    /// The queue was full (`QueueFull`).
    #[error("the queue is full")]
    Full,
    /// The queue was empty (`QueueEmpty`).
    #[error("the queue is empty")]
    Empty,
    /// The queue was shut down (`QueueShutDown`).
    #[error("the queue is shut down")]
    ShutDown,
}

impl<T> From<QueueFull<T>> for QueueError {
    fn from(_: QueueFull<T>) -> Self {
        QueueError::Full
    }
}

impl<T> From<QueueShutDown<T>> for QueueError {
    fn from(_: QueueShutDown<T>) -> Self {
        QueueError::ShutDown
    }
}

impl From<QueueEmpty> for QueueError {
    fn from(_: QueueEmpty) -> Self {
        QueueError::Empty
    }
}

impl<T> From<PutError<T>> for QueueError {
    fn from(e: PutError<T>) -> Self {
        match e {
            PutError::Full(_) => QueueError::Full,
            PutError::ShutDown(_) => QueueError::ShutDown,
        }
    }
}

impl From<GetError> for QueueError {
    fn from(e: GetError) -> Self {
        match e {
            GetError::Empty(_) => QueueError::Empty,
            GetError::ShutDown(_) => QueueError::ShutDown,
        }
    }
}

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
