//! What the loop shares with other threads, swapped for loom's under
//! `cfg(loom)` so the loom models (`ci/loom.sh`) explore its interleavings:
//! the atomics (of `Shared` and of the task header), the mutexes and condition
//! variables of the blocking pool and of `run_coroutine_threadsafe`, the
//! pool's threads, and thread identities (loom runs its threads one at a time
//! on one OS thread, so a real thread or a real mutex would escape, or block,
//! the model, and every model thread would have the same std `ThreadId`).

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::{
    Builder as ThreadBuilder, Thread, ThreadId, current as current_thread,
};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::{
    Builder as ThreadBuilder, Thread, ThreadId, current as current_thread,
};

/// Locks `m`, ignoring poisoning: every mutex here guards state that user code
/// never runs under (jobs and callbacks run outside the lock, their panics are
/// caught), so a poisoned one still holds consistent state.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
