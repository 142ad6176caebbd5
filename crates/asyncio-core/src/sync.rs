//! The atomics shared with other threads, swapped for loom's under `cfg(loom)`
//! so the loom models (`ci/loom.sh`) explore their interleavings.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, fence};
