//! What `Channel` shares between threads, swapped for loom's under
//! `cfg(loom)` so the loom models (`ci/loom.sh`, `src/loom_models.rs`)
//! explore its interleavings: the atomics, the fence and the mutex around
//! the lines of waiters. The items' `SegQueue` stays crossbeam's (each push
//! or pop is one step to loom).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};
