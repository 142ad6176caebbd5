//! asyncio's structured concurrency for Rust: `run`, `Runner`, `TaskGroup`,
//! `gather` and `shield`.
//!
//! ```
//! let total = asyncio::run(async {
//!     asyncio::task_group(|tg| async move {
//!         let tasks: Vec<_> = (1..=3u32).map(|i| tg.create_task(async move { i * 10 })).collect();
//!         let mut total = 0;
//!         for t in tasks {
//!             total += t.await?;
//!         }
//!         Ok::<_, asyncio::TaskError>(total)
//!     })
//!     .await
//! })
//! .unwrap();
//! assert_eq!(total.unwrap(), 60);
//! ```
//!
//! [`run`] creates a loop, runs one future as its main task, cancels whatever
//! tasks are left, and closes the loop. [`Runner`] does the same for several
//! top-level futures that share one loop. [`TaskGroup`] and [`task_group`] keep
//! children from outliving their scope and gather their failures in an
//! [`ExceptionGroup`].

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod catch;
mod error;
mod gather;
mod gather_tuple;
mod index_waker;
mod runner;
mod shield;
mod sigint;
mod taskgroup;
mod wait;

pub use asyncio_core::{Context, ContextError, ContextVar, Token, copy_context};
pub use error::{BoxError, ChildFailure, ExceptionGroup, TaskGroupError};
pub use gather::{Gather, GatherAll, gather, gather_tasks};
#[doc(hidden)]
pub use gather_tuple::GatherSlot;
pub use gather_tuple::{GatherTuple, IntoTasks, TaskTuple, gather_tuple};
pub use runner::{EXECUTOR_SHUTDOWN_TIMEOUT, Runner, RunnerBuilder, run};
pub use shield::{Shield, shield};
pub use sigint::exit_interrupted;
pub use taskgroup::{Join, Scope, TaskGroup, TaskGroupHandle, task_group};
pub use wait::{
    AsCompleted, EmptyWaitError, ReturnWhen, Wait, WaitResult, as_completed, wait, wait_fallible,
};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
