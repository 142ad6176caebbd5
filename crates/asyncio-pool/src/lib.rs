//! A pool of asyncio-rs event loops, one per core: thread-per-core, with
//! explicit hand-off between loops instead of work stealing.
//!
//! ```
//! use asyncio_pool::LoopPool;
//!
//! // Two loops; each worker hands a job to the other one and awaits it.
//! let got = LoopPool::new()
//!     .workers(2)
//!     .run(|worker| async move {
//!         let other = (worker.index() + 1) % worker.workers();
//!         let me = worker.index();
//!         let job = worker.pool().spawn_on(other, async move { me * 100 }).expect("open");
//!         Ok::<_, asyncio_core::TaskError>(job.await?)
//!     })
//!     .unwrap();
//! assert_eq!(got, [0, 100]);
//! ```
//!
//! - [`LoopPool`]: starts N threads, each with its own loop, runs the future
//!   a factory (`Fn + Sync`, shared by the threads) builds on each (the
//!   future itself may be `!Send`), and waits for all with `TaskGroup`
//!   semantics: the first failure cancels the rest, failures are
//!   aggregated, Ctrl-C is handled once for the pool.
//! - [`Worker`] / [`PoolHandle`]: each worker's index and the pool's loops:
//!   [`LoopHandle`](asyncio_core::LoopHandle)s, `spawn_on(i, fut)`, and
//!   `spawn(fut)` on the least-loaded loop.
//! - [`PoolListener`] / [`PoolServer`]: a TCP server accepting on every loop,
//!   through `SO_REUSEPORT` sockets or one acceptor handing sockets round.
//! - Cross-loop queues are [`asyncio_sync::Channel`].

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod affinity;
mod error;
mod handle;
mod pool;
mod server;

pub use error::{HandoffError, PoolError, WorkerError, WorkerErrors, WorkerFailure, WorkerOutput};
pub use handle::{PoolHandle, PoolTask, Worker};
pub use pool::LoopPool;
pub use server::{AcceptMode, PoolListener, PoolServer};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
