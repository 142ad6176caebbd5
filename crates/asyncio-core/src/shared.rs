//! The part of a loop that other threads may touch: the injector and the wake-up.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::thread::Thread;

use crossbeam_queue::SegQueue;

use crate::task::header::Header;
use crate::task::waker;

/// A wake of a task that came from another thread. It owns one waker count on the
/// task, so the cell stays allocated until the loop (or whoever drains) drops it.
pub(crate) struct RemoteWake(pub(crate) NonNull<Header>);

// SAFETY: the pointer is only used through the header's atomics and immutable
// fields, and dropping it releases a waker count, which any thread may do.
unsafe impl Send for RemoteWake {}

impl Drop for RemoteWake {
    fn drop(&mut self) {
        // SAFETY: the entry owns one waker count on a live header.
        unsafe { waker::release_waker(self.0) };
    }
}

/// Work sent to the loop from another thread.
pub(crate) enum Injected {
    /// A task was woken.
    Wake(RemoteWake),
}

pub(crate) struct Shared {
    pub(crate) injector: SegQueue<Injected>,
    pub(crate) closed: AtomicBool,
    /// The thread the loop belongs to; woken with `unpark` while it idles.
    thread: Thread,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            injector: SegQueue::new(),
            closed: AtomicBool::new(false),
            thread: std::thread::current(),
        }
    }

    /// Hands `item` to the loop and wakes it. After the loop closed the item is
    /// dropped instead (waking a task whose loop is gone does nothing).
    pub(crate) fn inject(&self, item: Injected) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        self.injector.push(item);
        self.thread.unpark();
        // Pairs with the fence in `close`: either the closing loop's drain sees our
        // push, or we see `closed` and drain it ourselves; nothing stays behind
        // holding a count on a task of a closed loop.
        fence(Ordering::SeqCst);
        if self.closed.load(Ordering::Relaxed) {
            self.drain();
        }
    }

    /// Marks the loop closed and drops whatever was injected.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        self.drain();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn drain(&self) {
        while let Some(item) = self.injector.pop() {
            drop(item);
        }
    }

    /// Blocks the loop's thread until `inject` is called (or a spurious wake-up).
    pub(crate) fn park(&self) {
        if self.injector.is_empty() {
            std::thread::park();
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
