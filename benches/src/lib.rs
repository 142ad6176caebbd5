//! Benchmarks of asyncio-rs against its peers.
//!
//! Each workload is a plain function over one runtime, so the criterion benches
//! and the `showdown` binary run exactly the same code for every runtime.

#![warn(missing_docs)]

pub mod eco;
pub mod net;
pub mod pool;
pub mod process;
pub mod sync;
pub mod timers;
#[cfg(feature = "tls")]
pub mod tls;
pub mod workloads;
