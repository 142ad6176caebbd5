//! asyncio's structured concurrency for Rust: `run` and `Runner`.
//!
//! ```
//! let answer = asyncio_structured::run(async {
//!     let t = asyncio_core::create_task(async { 21 });
//!     t.await.unwrap() * 2
//! })
//! .unwrap();
//! assert_eq!(answer, 42);
//! ```
//!
//! [`run`] creates a loop, runs one future as its main task, cancels whatever
//! tasks are left, and closes the loop. [`Runner`] does the same for several
//! top-level futures that share one loop (asyncio's `Runner`).

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod runner;

pub use runner::{Runner, RunnerBuilder, run};
