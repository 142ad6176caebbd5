//! The part of a loop that other threads may touch: the injector and the wake-up.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, AtomicU32, fence};

use crossbeam_queue::SegQueue;

use crate::event_loop::LoopInner;
use crate::reactor::{Notifier, SleepMode};
use crate::task::header::Header;
use crate::task::waker;

/// A wake of a task that came from another thread. It owns one waker count on the
/// task, so the cell stays allocated until the loop (or whoever drains) drops it.
pub(crate) struct RemoteWake(pub(crate) NonNull<Header>);

// SAFETY: the pointer is only used through the header's atomics and immutable
// fields, and dropping it releases a waker count, which any thread may do.
unsafe impl Send for RemoteWake {}

impl RemoteWake {
    /// Drops an entry that will never reach its loop (the loop closed): gives
    /// back the task's `REMOTE` bit with the entry's count. A plain drop gives
    /// back only the count, for the loop's own drain, which clears the bit
    /// itself before it schedules the task.
    fn discard(self) {
        let ptr = std::mem::ManuallyDrop::new(self).0;
        // SAFETY: an entry in (or bound for) the injector owns the task's
        // `REMOTE` bit (only the wake that set it pushes an entry) and one
        // waker count; `ManuallyDrop` keeps `Drop` from giving the count back
        // a second time.
        unsafe { waker::release_remote_wake(ptr) };
    }
}

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
    /// `call_soon_threadsafe`: a callback to run on the loop.
    Call(Box<dyn FnOnce() + Send>),
}

pub(crate) struct Shared {
    pub(crate) injector: SegQueue<Injected>,
    pub(crate) closed: AtomicBool,
    /// Set while the loop is about to wait, or waits, in the kernel (to how it
    /// waits: `PARKED` or `POLLING`), until the first injection clears it
    /// (`AWAKE`): only that one pays for a wake-up system call.
    sleeping: AtomicU32,
    pub(crate) notifier: Notifier,
    /// The thread the loop belongs to (the one that created it).
    pub(crate) thread: crate::sync::ThreadId,
    /// The loop itself, for its tasks (their headers name the loop through
    /// this, see `Header::owner`).
    pub(crate) owner: LoopAddr,
}

/// `Shared::sleeping`: the loop is not waiting in the kernel.
const AWAKE: u32 = 0;
/// `Shared::sleeping`: the loop parks its thread (it has no poller).
const PARKED: u32 = 1;
/// `Shared::sleeping`: the loop waits in its poller.
const POLLING: u32 = 2;

/// The address of a loop's `LoopInner`. Fixed for the loop's life.
pub(crate) struct LoopAddr(NonNull<LoopInner>);

// SAFETY: other threads only copy and compare the address; it is dereferenced
// on the loop's own thread, while the loop lives (see `Header::owner`).
unsafe impl Send for LoopAddr {}
// SAFETY: as above; the address never changes.
unsafe impl Sync for LoopAddr {}

impl LoopAddr {
    #[inline(always)]
    pub(crate) fn get(&self) -> NonNull<LoopInner> {
        self.0
    }
}

impl Shared {
    /// The shared part of the loop at `owner` (which is being built: only
    /// its address is kept).
    pub(crate) fn new(owner: NonNull<LoopInner>) -> Self {
        Shared {
            owner: LoopAddr(owner),
            injector: SegQueue::new(),
            closed: AtomicBool::new(false),
            sleeping: AtomicU32::new(AWAKE),
            notifier: Notifier::new(),
            thread: crate::sync::current_thread().id(),
        }
    }

    /// Hands `item` to the loop and wakes it. After the loop closed the item is
    /// dropped instead (waking a task whose loop is gone does nothing); returns
    /// whether the loop was open.
    pub(crate) fn inject(&self, item: Injected) -> bool {
        if self.closed.load(Ordering::Acquire) {
            item.discard();
            return false;
        }
        self.injector.push(item);
        // Pairs with the fence in `prepare_to_sleep`: either the loop sees our
        // item before it sleeps, or we see that it sleeps and wake it.
        fence(Ordering::SeqCst);
        // Only the first injection after the loop went to sleep pays for the
        // wake-up call; the loop takes in everything queued when it wakes.
        // Acquire: a loop that sleeps in its poller published the poller's
        // wake-up before it said so (see `prepare_to_sleep`).
        if self.sleeping.load(Ordering::Relaxed) != AWAKE {
            match self.sleeping.swap(AWAKE, Ordering::Acquire) {
                // gate-exempt: the loop's own notifier, not user code.
                PARKED => self.notifier.wake(SleepMode::Park),
                // gate-exempt: the loop's own notifier, not user code.
                POLLING => self.notifier.wake(SleepMode::Poll),
                _ => {}
            }
        }
        // Pairs with the fence in `close`: either the closing loop's drain sees our
        // push, or we see `closed` and drain it ourselves; nothing stays behind
        // holding a count on a task of a closed loop.
        if self.closed.load(Ordering::Relaxed) {
            self.drain();
        }
        // The loom model of a wake racing the loop's end checks here that
        // this `Shared` was not freed while the call used it.
        #[cfg(all(test, loom))]
        crate::loom_models::shared_used_by_inject(self);
        true
    }

    /// The loop is about to wait in the kernel, in `mode`: returns false (and
    /// does not sleep) if something was injected meanwhile.
    pub(crate) fn prepare_to_sleep(&self, mode: SleepMode) -> bool {
        // A swap, not a store: it costs nothing next to the `epoll_wait` that
        // follows, and as a read-modify-write it is ordered after an
        // injector's earlier `swap(false)` in loom's model too (loom cannot
        // order a plain store after a concurrent swap it did not read, and
        // reports a lost wake-up that the memory model rules out).
        // Release: pairs with the injector's acquiring swap, so that one
        // that sees `POLLING` also sees the poller's wake-up.
        let state = match mode {
            SleepMode::Park => PARKED,
            SleepMode::Poll => POLLING,
        };
        self.sleeping.swap(state, Ordering::Release);
        fence(Ordering::SeqCst);
        if self.injector.is_empty() {
            true
        } else {
            self.sleeping.store(AWAKE, Ordering::Relaxed);
            false
        }
    }

    /// The loop woke up.
    pub(crate) fn awake(&self) {
        self.sleeping.store(AWAKE, Ordering::Relaxed);
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

    /// Drops what is queued, after the loop closed (no one else will).
    fn drain(&self) {
        while let Some(item) = self.injector.pop() {
            item.discard();
        }
    }
}

impl Injected {
    /// Drops an item its loop will never take (it closed). A wake gives back
    /// the task's `REMOTE` bit too: with the bit left set, the task's cell
    /// would never be freed once its loop side and its wakers were gone.
    fn discard(self) {
        match self {
            Injected::Wake(wake) => wake.discard(),
            // Through the gate, without recursion: its destructor may hand
            // another callback to this closed loop (`dispose_refused`).
            Injected::Call(f) => crate::gate::dispose_refused(f),
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
