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
/// type, in its vtable), or [`NO_CLASS`] if the cache does not take it.
pub(crate) const fn class_of(layout: Layout) -> usize {
    if layout.align() != GRANULE || !layout.size().is_multiple_of(GRANULE) {
        return NO_CLASS;
    }
    let class = layout.size() / GRANULE - 1;
    if class < CLASSES { class } else { NO_CLASS }
}

/// The class of cells the cache does not keep (too large, or too aligned).
pub(crate) const NO_CLASS: usize = CLASSES;

pub(crate) struct CellCache {
    /// Per class, the most recently freed cell; each free cell's first word
    /// holds the next one (null ends the list). Loop thread only.
    heads: [Cell<*mut u8>; CLASSES],
    /// How many more bytes may be kept: `limit` minus the cached bytes. (One
    /// counter, so that keeping a cell is a subtraction and a sign test.)
    room: Cell<usize>,
    limit: Cell<usize>,
}

impl CellCache {
    pub(crate) fn new() -> Self {
        CellCache {
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            room: Cell::new(DEFAULT_LIMIT),
            limit: Cell::new(DEFAULT_LIMIT),
        }
    }

    /// Bytes held by the cache.
    fn bytes(&self) -> usize {
        self.limit.get() - self.room.get()
    }

    /// Memory for a cell of `layout`, whose class is `class` (from [`class_of`]).
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout, class: usize) -> NonNull<u8> {
        if let Some(head_slot) = self.heads.get(class) {
            let head = head_slot.get();
            if !head.is_null() {
                // SAFETY: `head` is a free cell of this class (at least 16 bytes,
                // 16-aligned) whose first word `free` set to the next free cell.
                head_slot.set(unsafe { head.cast::<*mut u8>().read() });
                self.room.set(self.room.get() + layout.size());
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
    pub(crate) fn free(&self, ptr: NonNull<u8>, layout: Layout, class: usize) {
        if let Some(head_slot) = self.heads.get(class)
            && let Some(room) = self.room.get().checked_sub(layout.size())
        {
            // SAFETY: the cell is dead and its memory ours: at least 16 bytes,
            // 16-aligned (class layouts), so its first word can link the list.
            unsafe { ptr.cast::<*mut u8>().write(head_slot.get()) };
            head_slot.set(ptr.as_ptr());
            self.room.set(room);
            return;
        }
        // SAFETY: `ptr` came from `alloc` (here or in the allocator) with `layout`.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
    }

    /// Frees cached cells until at most `keep` bytes remain.
    pub(crate) fn trim(&self, keep: usize) {
        for (class, head) in self.heads.iter().enumerate() {
            if self.bytes() <= keep {
                return;
            }
            let size = (class + 1) * GRANULE;
            let layout = Layout::from_size_align(size, GRANULE).expect("class layouts are valid");
            while self.bytes() > keep {
                let cell = head.get();
                if cell.is_null() {
                    break;
                }
                // SAFETY: a free cell of this class; its first word links the list.
                head.set(unsafe { cell.cast::<*mut u8>().read() });
                // SAFETY: cached cells were allocated with their class layout.
                unsafe { std::alloc::dealloc(cell, layout) };
                self.room.set(self.room.get() + size);
            }
        }
    }

    pub(crate) fn set_limit(&self, limit: usize) {
        self.trim(limit);
        // At most `limit` bytes are cached now.
        let bytes = self.bytes();
        self.limit.set(limit);
        self.room.set(limit - bytes);
    }
}

impl Drop for CellCache {
    fn drop(&mut self) {
        self.trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_layout_of(size: usize) -> (Layout, usize) {
        let layout = class_layout(Layout::from_size_align(size, 8).unwrap()).unwrap();
        (layout, class_of(layout))
    }

    #[test]
    fn keeps_at_most_its_limit_and_hands_cells_back_last_in_first_out() {
        let cache = CellCache::new();
        cache.set_limit(64);
        let (layout, class) = class_layout_of(20);
        assert_eq!(layout.size(), 32);
        let cells: Vec<_> = (0..3).map(|_| cache.alloc(layout, class)).collect();
        for &cell in &cells {
            cache.free(cell, layout, class);
        }
        // Two fit; the third went back to the allocator.
        assert_eq!(cache.bytes(), 64);
        assert_eq!(cache.alloc(layout, class), cells[1]);
        assert_eq!(cache.bytes(), 32);
        assert_eq!(cache.alloc(layout, class), cells[0]);
        assert_eq!(cache.bytes(), 0);
        // Nothing cached: fresh memory.
        let fresh = cache.alloc(layout, class);
        for cell in [cells[0], cells[1], fresh] {
            cache.free(cell, layout, class);
        }
        assert_eq!(cache.bytes(), 64);
    }

    #[test]
    fn lowering_the_limit_trims_and_raising_it_makes_room() {
        let cache = CellCache::new();
        let (layout, class) = class_layout_of(100);
        let cells: Vec<_> = (0..4).map(|_| cache.alloc(layout, class)).collect();
        for &cell in &cells {
            cache.free(cell, layout, class);
        }
        assert_eq!(cache.bytes(), 4 * layout.size());
        cache.set_limit(layout.size());
        assert_eq!(cache.bytes(), layout.size());
        assert_eq!(cache.room.get(), 0);
        let a = cache.alloc(layout, class);
        let b = cache.alloc(layout, class);
        cache.free(a, layout, class);
        cache.free(b, layout, class); // no room: deallocated
        assert_eq!(cache.bytes(), layout.size());
        cache.set_limit(10 * layout.size());
        assert_eq!(cache.room.get(), 9 * layout.size());
        assert_eq!(cache.bytes(), layout.size());
    }

    #[test]
    fn cells_without_a_class_are_never_kept() {
        let too_big = Layout::from_size_align(CLASSES * GRANULE + 16, 16).unwrap();
        let too_aligned = Layout::from_size_align(64, 64).unwrap();
        assert_eq!(class_layout(too_big), None);
        assert_eq!(class_layout(too_aligned), None);
        assert_eq!(class_of(too_big), NO_CLASS);
        assert_eq!(class_of(too_aligned), NO_CLASS);
        let cache = CellCache::new();
        for layout in [too_big, too_aligned] {
            let cell = cache.alloc(layout, NO_CLASS);
            cache.free(cell, layout, NO_CLASS);
            assert_eq!(cache.bytes(), 0);
        }
    }
}
