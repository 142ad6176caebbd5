//! asyncio's synchronization primitives and queues, for any executor.
//!
//! ```
//! use std::rc::Rc;
//! use asyncio::{Barrier, Queue};
//! use futures::executor::LocalPool;
//! use futures::task::LocalSpawnExt;
//!
//! let queue = Rc::new(Queue::new(8));
//! let barrier = Rc::new(Barrier::new(3).unwrap());
//! let mut pool = LocalPool::new();
//! for worker in 0..2 {
//!     let (queue, barrier) = (queue.clone(), barrier.clone());
//!     pool.spawner().spawn_local(async move {
//!         barrier.wait().await.unwrap(); // start together
//!         while let Ok(job) = queue.get().await {
//!             println!("worker {worker} took job {job}");
//!             queue.task_done().unwrap();
//!         }
//!     }).unwrap();
//! }
//! pool.run_until(async {
//!     barrier.wait().await.unwrap();
//!     for job in 0..20 {
//!         queue.put(job).await.unwrap();
//!     }
//!     queue.join().await; // every job processed
//!     queue.shutdown(false); // the workers' get() now fails
//! });
//! pool.run();
//! assert!(queue.empty());
//! ```
//!
//! The primitives are those of Python's `asyncio`, with its names and
//! semantics (CPython 3.13):
//!
//! - [`Lock`]: mutual exclusion, FIFO, released by dropping its [`LockGuard`].
//! - [`Event`]: a flag tasks wait for.
//! - [`Condition`]: wait for a notification with a [`Lock`] released.
//! - [`Semaphore`], [`BoundedSemaphore`]: counted permits, FIFO.
//! - [`Barrier`]: wait until `parties` tasks arrive; `reset`, `abort`.
//! - [`Queue`], [`LifoQueue`], [`PriorityQueue`]: bounded or unbounded queues
//!   with `task_done`/`join` and `shutdown(immediate)`.
//! - [`Channel`]: the same queue shared between threads (`Send + Sync`,
//!   `Clone`), for tasks on different loops of a pool.
//!
//! Like asyncio's, all but `Channel` belong to one thread: they are `!Sync`,
//! methods take `&self`, and tasks share them through `Rc`. They depend on no runtime (only
//! [`std::task::Waker`]), so they work on asyncio-rs's loop, on tokio's
//! current-thread runtime, or on `futures`' `LocalPool`.
//!
//! Cancellation is dropping a future. Every waiting future here is
//! cancellation-safe: dropped while waiting, it leaves the line; dropped after
//! it was handed a lock, permits, a notification or a queue slot, it passes
//! them to the next waiter. An item is never lost: it leaves a queue only when
//! a getter returns it.
//!
//! Errors are asyncio's exceptions as types: [`QueueFull`], [`QueueEmpty`],
//! [`QueueShutDown`], [`BrokenBarrierError`], and for asyncio's `ValueError`s
//! [`TaskDoneError`], [`ReleaseError`] and [`ZeroPartiesError`].

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod barrier;
mod channel;
mod condition;
mod error;
mod event;
mod lock;
#[cfg(all(test, loom))]
mod loom_models;
mod queue;
mod semaphore;
mod sync;
mod waiters;

pub use barrier::Barrier;
pub use channel::Channel;
pub use condition::Condition;
pub use error::{
    BrokenBarrierError, GetError, PutError, QueueEmpty, QueueError, QueueFull, QueueShutDown,
    ReleaseError, TaskDoneError, ZeroPartiesError,
};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub use queue::{LifoQueue, PriorityQueue, Queue};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
