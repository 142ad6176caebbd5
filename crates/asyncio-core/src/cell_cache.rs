//! Reuse of task-cell memory within one loop.
//!
//! Spawning is dominated by `malloc`/`free` once a loop has many tasks alive:
//! glibc's per-thread cache holds only a few chunks per size, so a burst of
//! tasks goes through its slow paths twice. The loop keeps the memory of
//! finished cells instead, sorted by size class (multiples of 16 bytes, up to
//! 1 KiB), and hands it to new tasks of any future type of that class.
//!
//! Bounds: at most `limit` bytes are kept; when the loop goes idle it trims the
//! cache to `IDLE_KEEP` bytes, and closing the loop frees it all. A cell freed
//! off the loop's thread (its last waker dropped elsewhere) bypasses the cache.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::{self, NonNull};

const GRANULE: usize = 16;
const CLASSES: usize = 64; // up to 1 KiB
/// Default bound on cached bytes per loop.
pub(crate) const DEFAULT_LIMIT: usize = 256 << 20;
/// What an idle loop keeps.
pub(crate) const IDLE_KEEP: usize = 1 << 20;

/// The size-class layout for a cell, or `None` if it is too large or too aligned
/// to be cached.
pub(crate) const fn class_layout(layout: Layout) -> Option<Layout> {
    if layout.size() == 0 || layout.size() > CLASSES * GRANULE || layout.align() > GRANULE {
        return None;
    }
    let size = layout.size().div_ceil(GRANULE) * GRANULE;
    match Layout::from_size_align(size, GRANULE) {
        Ok(l) => Some(l),
        Err(_) => None,
    }
}

/// The class of a layout made by [`class_layout`] (computed once per future
/// type, in its vtable).
pub(crate) const fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() != GRANULE || !layout.size().is_multiple_of(GRANULE) {
        return None;
    }
    let class = layout.size() / GRANULE - 1;
    if class < CLASSES { Some(class) } else { None }
}

pub(crate) struct CellCache {
    /// Per class, the most recently freed cell; each free cell's first word
    /// holds the next one (null ends the list). Loop thread only.
    heads: [Cell<*mut u8>; CLASSES],
    bytes: Cell<usize>,
    limit: Cell<usize>,
}

impl CellCache {
    pub(crate) fn new() -> Self {
        CellCache {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            bytes: Cell::new(0),
            limit: Cell::new(DEFAULT_LIMIT),
        }
    }

    /// Memory for a cell of `layout`, whose class is `class`.
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout, class: Option<usize>) -> NonNull<u8> {
        if let Some(class) = class {
            let head = self.heads[class].get();
            if !head.is_null() {
                // SAFETY: `head` is a free cell of this class (at least 16 bytes,
                // 16-aligned) whose first word `free` set to the next free cell.
                self.heads[class].set(unsafe { head.cast::<*mut u8>().read() });
                self.bytes.set(self.bytes.get() - layout.size());
                // SAFETY: checked non-null above.
                return unsafe { NonNull::new_unchecked(head) };
            }
        }
        // SAFETY: task cells are never zero-sized.
        let ptr = unsafe { std::alloc::alloc(layout) };
        match NonNull::new(ptr) {
            Some(p) => p,
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    /// Takes back the memory of a dead cell allocated with `layout` (of `class`).
    #[inline]
    pub(crate) fn free(&self, ptr: NonNull<u8>, layout: Layout, class: Option<usize>) {
        if let Some(class) = class
            && self.bytes.get() + layout.size() <= self.limit.get()
        {
            // SAFETY: the cell is dead and its memory ours: at least 16 bytes,
            // 16-aligned (class layouts), so its first word can link the list.
            unsafe { ptr.cast::<*mut u8>().write(self.heads[class].get()) };
            self.heads[class].set(ptr.as_ptr());
            self.bytes.set(self.bytes.get() + layout.size());
            return;
        }
        // SAFETY: `ptr` came from `alloc` (here or in the allocator) with `layout`.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
    }

    /// Frees cached cells until at most `keep` bytes remain.
    pub(crate) fn trim(&self, keep: usize) {
        for (class, head) in self.heads.iter().enumerate() {
            if self.bytes.get() <= keep {
                return;
            }
            let size = (class + 1) * GRANULE;
            let layout = Layout::from_size_align(size, GRANULE).expect("class layouts are valid");
            while self.bytes.get() > keep {
                let cell = head.get();
                if cell.is_null() {
                    break;
                }
                // SAFETY: a free cell of this class; its first word links the list.
                head.set(unsafe { cell.cast::<*mut u8>().read() });
                // SAFETY: cached cells were allocated with their class layout.
                unsafe { std::alloc::dealloc(cell, layout) };
                self.bytes.set(self.bytes.get() - size);
            }
        }
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.limit.set(limit);
        self.trim(limit);
    }
}

impl Drop for CellCache {
    fn drop(&mut self) {
        self.trim(0);
    }
}
