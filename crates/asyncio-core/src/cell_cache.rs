//! Reuse of task-cell memory within one loop.
//!
//! Spawning is dominated by `malloc`/`free` once a loop has many tasks alive:
//! glibc's per-thread cache holds only a few chunks per size, so a burst of
//! tasks goes through its slow paths twice. The loop keeps the memory of
//! finished cells instead, sorted by size class (one per 16 bytes, up to
//! 1 KiB), and hands it to new tasks of any future type of that class.
//!
//! A class's size is 8 bytes short of a multiple of 16: glibc's `malloc`
//! (like most allocators derived from it) puts an 8-byte header before each
//! chunk and rounds chunks to 16 bytes, so a 104-byte request takes a
//! 112-byte chunk where a 112-byte one would take 128. A million tasks alive
//! at once keep 16 MB less that way.
//!
//! Each class has a *hot slot* for one cell besides its list. A loop that
//! creates and finishes tasks one after the other (the eager factory's common
//! case) passes one cell back and forth through the slot: taking it is a load
//! and a store of a constant, so nothing read from memory feeds the next
//! task's bookkeeping (a list pop, which reads the next link, and a byte
//! counter both do, and such chains through memory, not instruction counts,
//! bound how fast eager tasks go).
//!
//! Bounds: at most `limit` bytes are kept, the slots included (they take
//! [`HOT_RESERVE`] of it, or stay unused under a smaller limit); when the loop
//! goes idle it trims the cache to `IDLE_KEEP` bytes, and closing the loop
//! frees it all and keeps nothing more. A cell freed off the loop's thread (its
//! last waker dropped elsewhere) bypasses the cache.
//!
//! The cache only holds memory: the loop's strong count that each cached cell
//! keeps (see `LoopInner::alloc_cell`) is the caller's business, which is why
//! `alloc`, `free` and `trim` say whether they used the cache.

use std::alloc::Layout;
use std::cell::Cell;
use std::ptr::{self, NonNull};

const GRANULE: usize = 16;
/// What a class's size falls short of a multiple of [`GRANULE`] (see the
/// module's documentation).
const SLACK: usize = 8;
const CLASSES: usize = 64; // up to 1 KiB
/// Default bound on cached bytes per loop.
pub(crate) const DEFAULT_LIMIT: usize = 256 << 20;
/// What an idle loop keeps.
pub(crate) const IDLE_KEEP: usize = 1 << 20;
/// The most cells the loop frees in one step of an idle trim (see
/// [`CellCache::trim_some`]): a few tens of microseconds.
pub(crate) const IDLE_TRIM_CELLS: usize = 1024;
/// The most the hot slots hold: one cell of every class.
pub(crate) const HOT_RESERVE: usize = GRANULE * CLASSES * (CLASSES + 1) / 2 - SLACK * CLASSES;

/// The size-class layout for a cell, or `None` if it is too large or too aligned
/// to be cached.
pub(crate) const fn class_layout(layout: Layout) -> Option<Layout> {
    if layout.size() == 0 || layout.size() > CLASSES * GRANULE - SLACK || layout.align() > GRANULE {
        return None;
    }
    let size = (layout.size() + SLACK).div_ceil(GRANULE) * GRANULE - SLACK;
    match Layout::from_size_align(size, GRANULE) {
        Ok(l) => Some(l),
        Err(_) => None,
    }
}

/// The class of a layout made by [`class_layout`] (computed once per future
/// type, in its vtable), or [`NO_CLASS`] if the cache does not take it.
pub(crate) const fn class_of(layout: Layout) -> usize {
    if layout.align() != GRANULE || !(layout.size() + SLACK).is_multiple_of(GRANULE) {
        return NO_CLASS;
    }
    let class = (layout.size() + SLACK) / GRANULE - 1;
    if class < CLASSES { class } else { NO_CLASS }
}

/// The class of cells the cache does not keep (too large, or too aligned).
pub(crate) const NO_CLASS: usize = CLASSES;

fn class_size(class: usize) -> usize {
    (class + 1) * GRANULE - SLACK
}

fn class_layout_of(class: usize) -> Layout {
    Layout::from_size_align(class_size(class), GRANULE).expect("class layouts are valid")
}

pub(crate) struct CellCache {
    /// Per class, at most one free cell (null: none). Loop thread only.
    hot: [Cell<*mut u8>; CLASSES],
    /// Whether the limit leaves room for the hot slots.
    hot_on: Cell<bool>,
    /// Per class, the most recently listed free cell; each listed cell's first
    /// word holds the next one (null ends the list). Loop thread only.
    heads: [Cell<*mut u8>; CLASSES],
    /// How many more bytes the lists may keep: `list_limit` minus the listed
    /// bytes.
    room: Cell<usize>,
    /// The lists' share of the limit (all of it when the slots are off).
    list_limit: Cell<usize>,
}

impl CellCache {
    pub(crate) fn new() -> Self {
        let cache = CellCache {
            hot: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            hot_on: Cell::new(false),
            heads: [const { Cell::new(ptr::null_mut()) }; CLASSES],
            room: Cell::new(0),
            list_limit: Cell::new(0),
        };
        let freed = cache.set_limit(DEFAULT_LIMIT);
        debug_assert_eq!(freed, 0);
        cache
    }

    /// Bytes in the lists.
    fn listed_bytes(&self) -> usize {
        self.list_limit.get() - self.room.get()
    }

    /// Bytes in the hot slots.
    fn hot_bytes(&self) -> usize {
        (self.hot.iter().enumerate())
            .filter(|(_, slot)| !slot.get().is_null())
            .map(|(class, _)| class_size(class))
            .sum()
    }

    /// Bytes held by the cache.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.listed_bytes() + self.hot_bytes()
    }

    /// Memory for a cell of `layout`, whose class is `class` (from
    /// [`class_of`]), and whether it came from the cache.
    #[inline]
    pub(crate) fn alloc(&self, layout: Layout, class: usize) -> (NonNull<u8>, bool) {
        if let Some(slot) = self.hot.get(class) {
            if let Some(cell) = NonNull::new(slot.get()) {
                slot.set(ptr::null_mut());
                return (cell, true);
            }
            let head_slot = &self.heads[class];
            if let Some(head) = NonNull::new(head_slot.get()) {
                // SAFETY: `head` is a listed free cell of this class (at least 16
                // bytes, 16-aligned) whose first word `free` set to the next one.
                head_slot.set(unsafe { head.cast::<*mut u8>().read() });
                self.room.set(self.room.get() + layout.size());
                return (head, true);
            }
        }
        // SAFETY: task cells are never zero-sized.
        let ptr = unsafe { std::alloc::alloc(layout) };
        match NonNull::new(ptr) {
            Some(p) => (p, false),
            None => std::alloc::handle_alloc_error(layout),
        }
    }

    /// Takes back the memory of a dead cell allocated with `layout` (of
    /// `class`); returns whether the cache kept it (else it was deallocated).
    #[inline]
    pub(crate) fn free(&self, ptr: NonNull<u8>, layout: Layout, class: usize) -> bool {
        if let Some(slot) = self.hot.get(class) {
            if self.hot_on.get() && slot.get().is_null() {
                slot.set(ptr.as_ptr());
                return true;
            }
            if let Some(room) = self.room.get().checked_sub(layout.size()) {
                let head_slot = &self.heads[class];
                // SAFETY: the cell is dead and its memory ours: at least 16
                // bytes, 16-aligned (class layouts), so its first word can link
                // the list.
                unsafe { ptr.cast::<*mut u8>().write(head_slot.get()) };
                head_slot.set(ptr.as_ptr());
                self.room.set(room);
                return true;
            }
        }
        // SAFETY: `ptr` came from `alloc` (here or in the allocator) with `layout`.
        unsafe { std::alloc::dealloc(ptr.as_ptr(), layout) };
        false
    }

    /// Frees cached cells until at most `keep` bytes remain (listed cells
    /// first); returns how many it freed.
    pub(crate) fn trim(&self, keep: usize) -> usize {
        self.trim_some(keep, usize::MAX).0
    }

    /// [`trim`](Self::trim), freeing at most about `max` cells (the hot
    /// slots, at most one cell per class, may come on top): how many it
    /// freed, and whether the cache is now within `keep`. The loop trims in
    /// such steps between looks at I/O, so that going idle after a burst of
    /// a million tasks is not one long pause.
    pub(crate) fn trim_some(&self, keep: usize, max: usize) -> (usize, bool) {
        if self.listed_bytes() + HOT_RESERVE <= keep {
            return (0, true);
        }
        let hot = self.hot_bytes();
        let mut freed = self.trim_lists(keep.saturating_sub(hot), max);
        if freed >= max && self.listed_bytes() + hot > keep {
            return (freed, false);
        }
        if self.listed_bytes() + hot > keep {
            freed += self.free_hot();
        }
        (freed, true)
    }

    /// Frees listed cells until the lists hold at most `keep` bytes or `max`
    /// cells were freed; returns how many it freed.
    fn trim_lists(&self, keep: usize, max: usize) -> usize {
        let mut freed = 0;
        for (class, head) in self.heads.iter().enumerate() {
            let layout = class_layout_of(class);
            while self.listed_bytes() > keep && freed < max {
                let Some(cell) = NonNull::new(head.get()) else {
                    break;
                };
                // SAFETY: a listed cell of this class; its first word links the list.
                head.set(unsafe { cell.cast::<*mut u8>().read() });
                // SAFETY: cached cells were allocated with their class layout.
                unsafe { std::alloc::dealloc(cell.as_ptr(), layout) };
                self.room.set(self.room.get() + layout.size());
                freed += 1;
            }
        }
        freed
    }

    /// Frees the cells of the hot slots; returns how many.
    fn free_hot(&self) -> usize {
        let mut freed = 0;
        for (class, slot) in self.hot.iter().enumerate() {
            if let Some(cell) = NonNull::new(slot.replace(ptr::null_mut())) {
                // SAFETY: cached cells were allocated with their class layout.
                unsafe { std::alloc::dealloc(cell.as_ptr(), class_layout_of(class)) };
                freed += 1;
            }
        }
        freed
    }

    /// Sets the bound on cached bytes, trimming to it; returns how many cells
    /// it freed.
    pub(crate) fn set_limit(&self, limit: usize) -> usize {
        let hot_on = limit >= HOT_RESERVE;
        let list_limit = if hot_on { limit - HOT_RESERVE } else { limit };
        let mut freed = if hot_on { 0 } else { self.free_hot() };
        freed += self.trim_lists(list_limit, usize::MAX);
        let listed = self.listed_bytes();
        self.hot_on.set(hot_on);
        self.list_limit.set(list_limit);
        self.room.set(list_limit - listed);
        freed
    }
}

impl Drop for CellCache {
    fn drop(&mut self) {
        // Nothing is left here in practice: each cached cell keeps the loop
        // alive. Free whatever is, all the same.
        self.trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_layout_of_size(size: usize) -> (Layout, usize) {
        let layout = class_layout(Layout::from_size_align(size, 8).unwrap()).unwrap();
        (layout, class_of(layout))
    }

    fn alloc_n(cache: &CellCache, layout: Layout, class: usize, n: usize) -> Vec<NonNull<u8>> {
        (0..n)
            .map(|_| {
                let (cell, cached) = cache.alloc(layout, class);
                assert!(!cached, "the cache starts empty");
                cell
            })
            .collect()
    }

    #[test]
    fn the_hot_slot_fills_first_then_the_list_up_to_its_share_of_the_limit() {
        let cache = CellCache::new();
        assert_eq!(cache.set_limit(HOT_RESERVE + 64), 0);
        let (layout, class) = class_layout_of_size(20);
        assert_eq!(layout.size(), 24);
        let cells = alloc_n(&cache, layout, class, 4);
        let kept: Vec<bool> = cells
            .iter()
            .map(|&c| cache.free(c, layout, class))
            .collect();
        // The slot, then two listed; the fourth went back to the allocator.
        assert_eq!(kept, [true, true, true, false]);
        assert_eq!(cache.bytes(), 24 + 48);
        // The slot first, then the list, last in first out, then fresh memory.
        assert_eq!(cache.alloc(layout, class), (cells[0], true));
        assert_eq!(cache.alloc(layout, class), (cells[2], true));
        assert_eq!(cache.alloc(layout, class), (cells[1], true));
        assert_eq!(cache.bytes(), 0);
        let (fresh, cached) = cache.alloc(layout, class);
        assert!(!cached);
        for cell in [cells[0], cells[1], cells[2], fresh] {
            cache.free(cell, layout, class);
        }
    }

    #[test]
    fn lowering_the_limit_frees_and_counts_cells_and_raising_it_makes_room() {
        let cache = CellCache::new();
        let (layout, class) = class_layout_of_size(100);
        let size = layout.size();
        for cell in alloc_n(&cache, layout, class, 4) {
            assert!(cache.free(cell, layout, class));
        }
        assert_eq!(cache.bytes(), 4 * size);
        // The lists' share shrinks to one cell: two listed cells go.
        assert_eq!(cache.set_limit(HOT_RESERVE + size), 2);
        assert_eq!(cache.bytes(), 2 * size);
        // Too small for the slots: the slot's cell goes, and the slots stay unused.
        assert_eq!(cache.set_limit(size), 1);
        assert_eq!(cache.bytes(), size);
        assert_eq!(cache.room.get(), 0);
        let (a, cached) = cache.alloc(layout, class);
        assert!(cached);
        let (b, cached) = cache.alloc(layout, class);
        assert!(!cached);
        assert!(cache.free(a, layout, class));
        assert!(!cache.free(b, layout, class), "no room, and no slot");
        assert_eq!(cache.set_limit(10 * size), 0);
        assert_eq!(cache.room.get(), 9 * size);
        assert_eq!(cache.trim(0), 1);
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn trimming_keeps_at_most_the_bytes_asked_listed_cells_going_first() {
        let cache = CellCache::new();
        let (layout, class) = class_layout_of_size(32);
        let size = layout.size();
        for cell in alloc_n(&cache, layout, class, 4) {
            cache.free(cell, layout, class);
        }
        // One in the slot, three listed.
        assert_eq!(cache.trim(4 * size), 0);
        assert_eq!(cache.trim(2 * size), 2);
        assert_eq!(cache.bytes(), 2 * size);
        assert_eq!(cache.trim(16), 2);
        assert_eq!(cache.bytes(), 0);
        assert_eq!(cache.trim(0), 0);
    }

    #[test]
    fn a_trim_in_steps_frees_at_most_the_step_each_time_and_ends_where_one_trim_would() {
        let cache = CellCache::new();
        let (layout, class) = class_layout_of_size(32);
        let size = layout.size();
        for cell in alloc_n(&cache, layout, class, 10) {
            cache.free(cell, layout, class);
        }
        // One in the slot, nine listed; steps of at most 4 down to nothing.
        assert_eq!(cache.trim_some(0, 4), (4, false));
        assert_eq!(cache.bytes(), 6 * size);
        assert_eq!(cache.trim_some(0, 4), (4, false));
        // The last listed cell, then the slot's (on top of the step).
        assert_eq!(cache.trim_some(0, 4), (2, true));
        assert_eq!(cache.bytes(), 0);
        assert_eq!(cache.trim_some(0, 4), (0, true));
        // A cache already within what it may keep frees nothing and is done.
        for cell in alloc_n(&cache, layout, class, 2) {
            cache.free(cell, layout, class);
        }
        assert_eq!(cache.trim_some(2 * size, 1), (0, true));
        assert_eq!(cache.trim(0), 2);
    }

    #[test]
    fn class_sizes_fill_the_allocators_16_byte_chunks_after_its_8_byte_header() {
        assert_eq!(class_layout_of_size(1).0.size(), 8);
        assert_eq!(class_layout_of_size(104).0.size(), 104);
        assert_eq!(class_layout_of_size(105).0.size(), 120);
        assert_eq!(class_layout_of_size(112).0.size(), 120);
        // Every class is its own, and the largest still has one.
        for size in [8, 24, 104, 120, CLASSES * GRANULE - SLACK] {
            let (layout, class) = class_layout_of_size(size);
            assert_eq!(layout.size(), size);
            assert_eq!(class_size(class), size);
            assert_eq!(layout.align(), GRANULE);
        }
        assert_eq!(
            class_layout(Layout::from_size_align(CLASSES * GRANULE - SLACK + 1, 8).unwrap()),
            None
        );
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
            let (cell, cached) = cache.alloc(layout, NO_CLASS);
            assert!(!cached);
            assert!(!cache.free(cell, layout, NO_CLASS));
            assert_eq!(cache.bytes(), 0);
        }
    }
}
