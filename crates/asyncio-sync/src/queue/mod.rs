//! `Queue`, `LifoQueue` and `PriorityQueue`: asyncio's queues, with
//! `shutdown`.
//!
//! The three types share one implementation ([`core`]) over a different item
//! store ([`store`]); the public methods are generated once for all three.

mod core;
mod store;

use std::future::Future;

use futures_core::Stream;

use self::core::{Core, Get, Join, Put};
use self::store::{Fifo, Lifo, Priority};
use crate::error::{GetError, PutError, QueueShutDown, TaskDoneError};

macro_rules! queue_methods {
    ($Queue:ident, $Store:ident, [$($bound:tt)*]) => {
        impl<T $($bound)*> $Queue<T> {
            #[doc = concat!("Creates an empty queue holding at most `maxsize` items; `0` means unbounded, as in asyncio (`", stringify!($Queue), "(maxsize=0)`).")]
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::<u32>::new(10);")]
            /// assert_eq!(q.maxsize(), 10);
            /// assert!(q.empty());
            /// ```
            pub fn new(maxsize: usize) -> Self {
                Self { core: Core::new(maxsize) }
            }

            /// The bound given to `new` (0: unbounded).
            ///
            /// ```
            #[doc = concat!("assert_eq!(asyncio::", stringify!($Queue), "::<u8>::new(0).maxsize(), 0);")]
            /// ```
            pub fn maxsize(&self) -> usize {
                self.core.maxsize()
            }

            /// How many items the queue holds (asyncio's `qsize()`).
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait(1).unwrap();
            /// assert_eq!(q.qsize(), 1);
            /// ```
            pub fn qsize(&self) -> usize {
                self.core.qsize()
            }

            /// Whether the queue holds no item (asyncio's `empty()`).
            ///
            /// ```
            #[doc = concat!("assert!(asyncio::", stringify!($Queue), "::<u8>::new(1).empty());")]
            /// ```
            pub fn empty(&self) -> bool {
                self.core.qsize() == 0
            }

            /// Whether the queue holds `maxsize` items; never true for an
            /// unbounded queue (asyncio's `full()`).
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(1);")]
            /// q.put_nowait(1).unwrap();
            /// assert!(q.full());
            /// ```
            pub fn full(&self) -> bool {
                self.core.full()
            }

            /// Whether [`shutdown`](Self::shutdown) was called.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::<u8>::new(0);")]
            /// q.shutdown(false);
            /// assert!(q.is_shutdown());
            /// ```
            pub fn is_shutdown(&self) -> bool {
                self.core.is_shut_down()
            }

            /// Puts an item, waiting while the queue is full (asyncio's
            /// `put()`). Putters blocked on a full queue go in the order they
            /// came.
            ///
            /// # Errors
            ///
            /// [`QueueShutDown`] carrying the item back, if the queue is shut
            /// down before the item could go in.
            ///
            /// Dropping the future before it completes drops the item and
            /// gives up its place; a free slot it was woken for goes to the
            /// next putter.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(1);")]
            /// asyncio::run(q.put(5)).unwrap().unwrap();
            /// assert_eq!(q.get_nowait(), Ok(5));
            /// ```
            pub fn put(&self, item: T) -> impl Future<Output = Result<(), QueueShutDown<T>>> + '_ {
                Put { core: &self.core, item: Some(item), key: None }
            }

            /// Removes and returns an item, waiting while the queue is empty
            /// (asyncio's `get()`). Getters blocked on an empty queue are served
            /// in the order they came.
            ///
            /// # Errors
            ///
            /// [`QueueShutDown`] once the queue is shut down *and* empty: after
            /// `shutdown(false)` the remaining items are still handed out first.
            ///
            /// Dropping the future never loses an item: items leave the queue
            /// only when a getter returns them, and a wake-up for a dropped
            /// getter passes to the next one.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait("job").unwrap();
            /// assert_eq!(asyncio::run(q.get()).unwrap(), Ok("job"));
            /// ```
            pub fn get(&self) -> impl Future<Output = Result<T, QueueShutDown>> + '_ {
                Get { core: &self.core, key: None }
            }

            /// Puts an item without waiting (asyncio's `put_nowait()`).
            ///
            /// # Errors
            ///
            /// [`PutError::Full`] if the queue holds `maxsize` items,
            /// [`PutError::ShutDown`] if it is shut down; either carries the
            /// item back.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(1);")]
            /// assert!(q.put_nowait(1).is_ok());
            /// assert_eq!(q.put_nowait(2).unwrap_err().into_inner(), 2);
            /// ```
            pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put_nowait(item)
            }

            /// Removes and returns an item without waiting (asyncio's
            /// `get_nowait()`).
            ///
            /// # Errors
            ///
            /// [`GetError::Empty`] if the queue is empty, [`GetError::ShutDown`]
            /// if it is empty and shut down.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// assert!(q.get_nowait().is_err());
            /// q.put_nowait(9).unwrap();
            /// assert_eq!(q.get_nowait(), Ok(9));
            /// ```
            pub fn get_nowait(&self) -> Result<T, GetError> {
                self.core.get_nowait()
            }

            /// Marks one item taken with `get` as processed (asyncio's
            /// `task_done()`); when every item put has been marked, `join()`
            /// returns.
            ///
            /// # Errors
            ///
            /// [`TaskDoneError`] if called more times than items were put
            /// (asyncio raises `ValueError`).
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait(1).unwrap();
            /// q.get_nowait().unwrap();
            /// assert!(q.task_done().is_ok());
            /// assert!(q.task_done().is_err());
            /// ```
            pub fn task_done(&self) -> Result<(), TaskDoneError> {
                self.core.task_done()
            }

            /// Waits until every item put has been marked with `task_done`
            /// (asyncio's `join()`); returns at once if none is unfinished.
            /// Never fails.
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait(1).unwrap();
            /// q.get_nowait().unwrap();
            /// q.task_done().unwrap();
            /// asyncio::run(q.join()).unwrap();
            /// ```
            pub fn join(&self) -> impl Future<Output = ()> + '_ {
                Join { core: &self.core, key: None }
            }

            /// Shuts the queue down (asyncio's `shutdown(immediate)`).
            ///
            /// Afterwards `put` and `put_nowait` fail with [`QueueShutDown`]
            /// and blocked putters are woken to fail. With `immediate = false`
            /// getters still receive the items left, then fail; with
            /// `immediate = true` the items left are discarded (dropped) and
            /// each counts as done, so `join()` returns, and every blocked
            /// getter fails. Calling it again is allowed (a later immediate
            /// shutdown still discards).
            ///
            /// ```
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait(1).unwrap();
            /// q.shutdown(false);
            /// assert_eq!(q.get_nowait(), Ok(1));
            /// assert!(q.get_nowait().is_err());
            /// ```
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }

            /// The queue as a [`Stream`] of items: each item is what `get()`
            /// would return, and the stream ends once the queue is shut down
            /// and empty. Items still need `task_done`.
            ///
            /// ```
            /// use futures::StreamExt;
            #[doc = concat!("let q = asyncio::", stringify!($Queue), "::new(0);")]
            /// q.put_nowait(7).unwrap();
            /// q.shutdown(false);
            /// assert_eq!(asyncio::run(q.stream().collect::<Vec<_>>()).unwrap(), [7]);
            /// ```
            pub fn stream(&self) -> impl Stream<Item = T> + '_ {
                Get { core: &self.core, key: None }
            }
        }

        impl<T $($bound)*> std::fmt::Debug for $Queue<T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.core.fmt(f)
            }
        }
    };
}

/// asyncio's `Queue`: first in, first out, optionally bounded, and able to
/// shut down.
///
/// Methods take `&self`; share the queue between tasks of one thread with
/// `Rc<Queue<T>>`. Every waiting future (`put`, `get`, `join`) is
/// cancellation-safe: dropping it loses no item and no wake-up.
///
/// ```
/// use std::rc::Rc;
///
/// let total = asyncio::run(async {
///     let queue = Rc::new(asyncio::Queue::new(2));
///     let q = queue.clone();
///     let consumer = asyncio::create_task(async move {
///         let mut total = 0;
///         while let Ok(item) = q.get().await {
///             total += item;
///             q.task_done().unwrap();
///         }
///         total
///     });
///     for i in 1..=4 {
///         queue.put(i).await.unwrap();
///     }
///     queue.join().await; // every item processed
///     queue.shutdown(false);
///     consumer.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(total, 10);
/// ```
pub struct Queue<T> {
    core: Core<Fifo<T>>,
}

/// asyncio's `LifoQueue`: a [`Queue`] that hands out the most recently put
/// item first.
///
/// ```
/// let q = asyncio::LifoQueue::new(0);
/// for n in [1, 2, 3] {
///     q.put_nowait(n).unwrap();
/// }
/// assert_eq!(q.get_nowait(), Ok(3));
/// ```
///
/// ```
/// let q = asyncio::LifoQueue::new(0);
/// for i in 1..=3 {
///     q.put_nowait(i).unwrap();
/// }
/// assert_eq!(q.get_nowait().unwrap(), 3, "last in, first out");
/// ```
pub struct LifoQueue<T> {
    core: Core<Lifo<T>>,
}

/// asyncio's `PriorityQueue`: a [`Queue`] that hands out the smallest item
/// first (by `Ord`, as Python's `heapq`); put `(priority, data)` tuples to
/// order by priority.
///
/// ```
/// let q = asyncio::PriorityQueue::new(0);
/// for job in [(3, "low"), (1, "urgent"), (2, "normal")] {
///     q.put_nowait(job).unwrap();
/// }
/// assert_eq!(q.get_nowait(), Ok((1, "urgent")));
/// ```
///
/// ```
/// let q = asyncio::PriorityQueue::new(0);
/// for job in [(3, "low"), (1, "urgent"), (2, "normal")] {
///     q.put_nowait(job).unwrap();
/// }
/// assert_eq!(q.get_nowait().unwrap(), (1, "urgent"), "smallest first");
/// ```
pub struct PriorityQueue<T> {
    core: Core<Priority<T>>,
}

queue_methods!(Queue, Fifo, []);
queue_methods!(LifoQueue, Lifo, []);
queue_methods!(PriorityQueue, Priority, [: Ord]);
