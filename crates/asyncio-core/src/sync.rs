//! The atomics shared with other threads, swapped for loom's under `cfg(loom)`
//! so the loom models (`ci/loom.sh`) explore their interleavings.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicUsize, fence};

/// Locks `m`, ignoring poisoning: every mutex here guards state that user code
/// never runs under (jobs and callbacks run outside the lock, their panics are
/// caught), so a poisoned one still holds consistent state.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
