//! The part of a task cell that does not depend on the future's type.

use crate::sync::AtomicU32;
use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::task::{Context, Poll, Waker};

use crate::event_loop::LoopInner;
use crate::shared::Shared;
use crate::task::TaskRef;

/// The bit of `Header::wakers` that stands for the loop-side owners of the cell.
///
/// While it is set the loop thread may still use the cell's future or output; the
/// rest of the word counts `Waker`s, which other threads may hold. The cell's
/// memory is freed when the word reaches zero.
pub(crate) const LOCAL: u32 = 1 << (u32::BITS - 1);
/// The bit of `Header::wakers` set while the task sits in the loop's injector, so
/// repeated wakes from other threads push it once.
pub(crate) const REMOTE: u32 = 1 << (u32::BITS - 2);
/// The waker-count part of `Header::wakers`. More than half of it (about 500
/// million wakers of one task at once) takes leaked clones: the process
/// aborts then, as `Arc` does on an overflowing count.
pub(crate) const WAKER_COUNT: u32 = REMOTE - 1;

/// The functions that know the future's type.
pub(crate) struct Vtable {
    /// The layout the cell was allocated with (for the loop's cell cache).
    pub(crate) layout: std::alloc::Layout,
    /// The cell cache's size class of `layout` (`cell_cache::NO_CLASS` if none).
    pub(crate) class: usize,
    /// Polls the future; on `Ready` (or a panic) stores the outcome and returns `Ready`.
    pub(crate) poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<()>,
    /// Drops the future and stores `Cancelled` (or `Panicked` if its destructor panicked).
    pub(crate) cancel: unsafe fn(NonNull<Header>),
    /// Moves the outcome into `*dst`, a `Poll<Result<T, TaskError>>`.
    pub(crate) read_output: unsafe fn(NonNull<Header>, *mut ()),
    /// A pointer to the task's value (`T`) while the stage holds it
    /// (`HAS_OUTPUT`), else null.
    pub(crate) output_ref: unsafe fn(NonNull<Header>) -> *const (),
    /// Clones the panic the task ended with, if it ended with one.
    pub(crate) peek_panic: unsafe fn(NonNull<Header>) -> Option<crate::error::PanicError>,
    /// Drops whatever the cell still holds (future or outcome) on the loop thread;
    /// returns the payload if a destructor panicked.
    pub(crate) drop_stage: unsafe fn(NonNull<Header>) -> Option<Box<dyn std::any::Any + Send>>,
    /// Frees the cell's memory without running any destructor. Any thread.
    pub(crate) dealloc: unsafe fn(NonNull<Header>),
}

/// A callback added with `add_done_callback`.
pub(crate) type DoneCallback = Box<dyn FnOnce(&TaskRef)>;

/// Rarely used per-task data, allocated on first use so the common task stays small.
#[derive(Default)]
pub(crate) struct Extra {
    pub(crate) name: Option<String>,
    pub(crate) callbacks: Vec<(u64, DoneCallback)>,
    pub(crate) next_callback: u64,
    /// Callbacks with an id up to this were added before the `Task` handle
    /// first waited (its join waker): they run before the awaiter resumes,
    /// as asyncio orders an awaiter among the done callbacks.
    pub(crate) callbacks_before_join: u64,
    pub(crate) cancelling: u32,
    /// The message of the first `cancel_with` still pending, handed to the
    /// awaiter inside its `CancelledError`.
    pub(crate) cancel_message: Option<String>,
    /// Where the task was created, recorded in debug mode.
    pub(crate) created_at: Option<&'static std::panic::Location<'static>>,
    /// The task's context, if contexts are in use (see `contextvars`).
    pub(crate) context: Option<crate::contextvars::Context>,
    /// For a task that ended failed, its number among the failures of its
    /// thread (see `TaskRef::failure_number`); 0 otherwise.
    pub(crate) failure_number: u64,
}

/// The first field of every task cell (`#[repr(C)]`, so a `NonNull<Header>` is
/// also a pointer to the cell).
///
/// 64 bytes, so that a trivial task's cell fits the allocator's 80-byte chunk:
/// the owning loop is found through `shared` rather than stored, the registry
/// keeps its list outside the header (a slot number here), and the join waker's
/// room holds the eager-step chain while no one can await the task yet.
#[repr(C)]
pub(crate) struct Header {
    /// `state::*` bits; loop thread only.
    pub(crate) state: Cell<u32>,
    /// Loop-side references: `TaskRef`s, `Task`s, the ready queue, the registry.
    pub(crate) refs: Cell<u32>,
    /// `LOCAL` while `refs > 0`, `REMOTE` while in the injector, plus one per
    /// live `Waker`. Any thread.
    pub(crate) wakers: AtomicU32,
    /// The task's index in the loop's registry while `REGISTERED`. Loop thread only.
    pub(crate) slot: Cell<u32>,
    pub(crate) vtable: &'static Vtable,
    /// The loop's cross-thread part. Never changes; kept alive by the loop while the
    /// local side lives, and by a strong count while any waker lives. It also
    /// names the owning loop (`Shared::owner`), which holds one strong `Rc`
    /// count for the cell: the count stays with the cell's memory while the
    /// loop's cache keeps it and is given back otherwise when the local side
    /// is released (`LoopInner::free_cell`).
    pub(crate) shared: NonNull<Shared>,
    pub(crate) id: u64,
    /// Who awaits the `Task<T>` handle while `HAS_JOIN_WAKER`; during the eager
    /// step (`EAGER_STEP`), the task that was current when it began.
    join: UnsafeCell<Join>,
    pub(crate) extra: UnsafeCell<Option<Box<Extra>>>,
}

// Every task pays for each byte here: keep it at 64 on 64-bit targets (loom's
// atomics, under the loom models, are larger).
#[cfg(all(target_pointer_width = "64", not(loom)))]
const _: () = assert!(std::mem::size_of::<Header>() == 64);

/// The room of [`Header::join`]: its state bits say which field is there, if any.
union Join {
    waker: ManuallyDrop<Waker>,
    creator: *const Header,
}

impl Header {
    /// A header of a new task: one loop-side reference, no waker, no join waker.
    #[inline(always)]
    pub(crate) fn new(
        state: u32,
        vtable: &'static Vtable,
        shared: NonNull<Shared>,
        id: u64,
    ) -> Header {
        Header {
            state: Cell::new(state),
            refs: Cell::new(1),
            wakers: AtomicU32::new(LOCAL),
            slot: Cell::new(0),
            vtable,
            shared,
            id,
            join: UnsafeCell::new(Join {
                creator: std::ptr::null(),
            }),
            extra: UnsafeCell::new(None),
        }
    }

    /// The loop that owns the task.
    ///
    /// Dereferencing it is for the loop thread while the task's local side
    /// lives (whose strong count keeps the loop alive); other threads may only
    /// compare it.
    #[inline(always)]
    pub(crate) fn owner(&self) -> NonNull<LoopInner> {
        // SAFETY: `shared` is alive while the header is reachable (see the field).
        unsafe { self.shared.as_ref() }.owner.get()
    }

    /// The join waker, if one is stored. Loop thread only; the borrow must end
    /// before anything stores or takes the join waker.
    #[inline]
    pub(crate) fn join_waker(&self) -> Option<&Waker> {
        if self.has(crate::task::state::HAS_JOIN_WAKER) {
            // SAFETY: the flag says the waker is there.
            Some(unsafe { &(*self.join.get()).waker })
        } else {
            None
        }
    }

    /// Moves the join waker out, if one is stored. Loop thread only.
    #[inline]
    pub(crate) fn take_join_waker(&self) -> Option<Waker> {
        if self.has(crate::task::state::HAS_JOIN_WAKER) {
            self.clear(crate::task::state::HAS_JOIN_WAKER);
            // SAFETY: the flag said the waker was there; it is moved out once
            // (the flag is clear now).
            Some(unsafe { ManuallyDrop::take(&mut (*self.join.get()).waker) })
        } else {
            None
        }
    }

    /// Stores `waker` as the join waker; returns the one it replaces. Loop
    /// thread only, never during the eager step (no one can await the task yet).
    #[inline]
    pub(crate) fn replace_join_waker(&self, waker: Waker) -> Option<Waker> {
        debug_assert!(!self.has(crate::task::state::EAGER_STEP));
        let old = self.take_join_waker();
        // SAFETY: the room is free (taken above, or never used for a waker, and
        // not the eager chain's outside the eager step); nothing else borrows it.
        unsafe { (*self.join.get()).waker = ManuallyDrop::new(waker) };
        self.set(crate::task::state::HAS_JOIN_WAKER);
        old
    }

    /// Links the task, entering its eager step, to the task current then.
    #[inline(always)]
    pub(crate) fn set_creator(&self, creator: *const Header) {
        // SAFETY: loop thread; in its eager step the task has no join waker (no
        // `Task` handle exists yet), so the room is free.
        unsafe { (*self.join.get()).creator = creator };
    }

    /// The task that was current when this one's eager step began. Only
    /// meaningful during the eager step.
    #[inline]
    pub(crate) fn creator(&self) -> *const Header {
        debug_assert!(self.has(crate::task::state::EAGER_STEP));
        // SAFETY: set by `set_creator` when the eager step began (or null, as
        // created); plain data.
        unsafe { (*self.join.get()).creator }
    }

    #[inline]
    pub(crate) fn has(&self, bits: u32) -> bool {
        self.state.get() & bits != 0
    }

    #[inline]
    pub(crate) fn set(&self, bits: u32) {
        self.state.set(self.state.get() | bits);
    }

    #[inline]
    pub(crate) fn clear(&self, bits: u32) {
        self.state.set(self.state.get() & !bits);
    }

    /// Runs `f` on the extra data, created on first use. Loop thread only; `f` must
    /// not run user code (callbacks are moved out, and dropped, after it returns).
    pub(crate) fn with_extra<R>(&self, f: impl FnOnce(&mut Extra) -> R) -> R {
        // SAFETY: `extra` is only touched on the loop thread, through this method and
        // `extra_ref`, whose borrows never overlap: `f` runs no user code that could
        // reach this task's `extra` again.
        let slot = unsafe { &mut *self.extra.get() };
        self.set(crate::task::state::HAS_EXTRA);
        f(slot.get_or_insert_with(Default::default))
    }

    /// The extra data if it was ever created.
    pub(crate) fn extra_ref(&self) -> Option<&Extra> {
        // SAFETY: as in `extra_mut`; shared borrows end before any mutation.
        unsafe { (*self.extra.get()).as_deref() }
    }
}
