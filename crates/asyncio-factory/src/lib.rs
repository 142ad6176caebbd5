//! asyncio's task factories for Rust: lazy, eager, custom and instrumented.
//!
//! ```
//! use asyncio::{EventLoop, create_task, current_task};
//! use asyncio::eager_task_factory;
//!
//! let lp = EventLoop::new();
//! lp.set_task_factory(eager_task_factory);
//! lp.run_until_complete(async {
//!     let creator = current_task().unwrap();
//!     let task = create_task(async { current_task().unwrap().id() });
//!     // The task ran inside create_task and finished there, as the new current task.
//!     assert!(task.done());
//!     assert_eq!(current_task().unwrap(), creator);
//!     let id = task.id();
//!     assert_eq!(task.await.unwrap(), id);
//! })
//! .unwrap();
//! ```
//!
//! A factory decides, for each new task, whether it is scheduled (lazy, the
//! default) or runs its first step inside `create_task` (eager). The eager start
//! saves a trip through the ready queue for every task that finishes without
//! suspending, which is what makes asyncio's `eager_task_factory` "2x to 5x
//! faster" on such workloads. It also changes the order in which code runs: see
//! `docs/semantics.md`.

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod eager;
mod instrumented;

pub use asyncio_core::{LazyTaskFactory, StartMode, TaskFactory, TaskOptions};
pub use eager::{
    EagerTaskFactory, EagerTaskFactoryWith, create_eager_task_factory, eager_task_factory,
};
pub use instrumented::{FactoryStats, InstrumentedFactory, StatsHandle};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
