//! A global allocator that tells whether a given allocation was freed: the
//! leak tests watch a task's cell (its address is the data pointer of the
//! task's waker) and assert that closing the loop gave it back. Plain
//! `cargo test` sees the leak this way; Miri's leak checker and LeakSanitizer
//! (`ci/miri.sh`, `ci/sanitizers.sh`) see it too, without the allocator's help.
//!
//! Include with `#[path = ".../common/freed.rs"] mod freed;` in a test binary
//! that has no other global allocator.
#![allow(dead_code, unreachable_pub)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Addresses being watched, one slot per test (tests run in parallel).
const SLOTS: usize = 8;
static WATCHED: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static FREED: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];

struct Watching;

// SAFETY: every call is passed on to the system allocator unchanged; the
// bookkeeping is a few atomic operations on statics, which never allocate.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the one `System.alloc` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let addr = ptr as usize;
        for (watched, freed) in WATCHED.iter().zip(&FREED) {
            if watched.load(Ordering::SeqCst) == addr
                && watched
                    .compare_exchange(addr, 0, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
            {
                freed.store(true, Ordering::SeqCst);
            }
        }
        // SAFETY: `ptr` came from `System.alloc` with `layout` (through `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static WATCHING: Watching = Watching;

/// One watched allocation. `slot` must be unique to the test.
pub struct Watch {
    slot: usize,
}

impl Watch {
    /// Starts watching the live allocation at `addr`.
    pub fn new(slot: usize, addr: usize) -> Self {
        assert!(addr != 0, "nothing to watch");
        FREED[slot].store(false, Ordering::SeqCst);
        WATCHED[slot].store(addr, Ordering::SeqCst);
        Watch { slot }
    }

    /// Whether the watched allocation was freed since `new`.
    pub fn freed(&self) -> bool {
        FREED[self.slot].load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        WATCHED[self.slot].store(0, Ordering::SeqCst);
    }
}
