//! The part of a task cell that does not depend on the future's type.

use crate::sync::AtomicUsize;
use std::cell::{Cell, UnsafeCell};
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
pub(crate) const LOCAL: usize = 1 << (usize::BITS - 1);
/// The bit of `Header::wakers` set while the task sits in the loop's injector, so
/// repeated wakes from other threads push it once.
pub(crate) const REMOTE: usize = 1 << (usize::BITS - 2);
/// The waker-count part of `Header::wakers`.
pub(crate) const WAKER_COUNT: usize = REMOTE - 1;

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
#[repr(C)]
pub(crate) struct Header {
    /// `state::*` bits; loop thread only.
    pub(crate) state: Cell<u32>,
    /// Loop-side references: `TaskRef`s, `Task`s, the ready queue, the registry.
    pub(crate) refs: Cell<u32>,
    /// `LOCAL` while `refs > 0`, `REMOTE` while in the injector, plus one per
    /// live `Waker`. Any thread.
    pub(crate) wakers: AtomicUsize,
    pub(crate) vtable: &'static Vtable,
    /// The loop's cross-thread part. Never changes; kept alive by the loop while the
    /// local side lives, and by a strong count while any waker lives.
    pub(crate) shared: NonNull<Shared>,
    /// The owning loop. Never changes. Holds one strong `Rc` count, which stays
    /// with the cell's memory while the loop's cache keeps it and is given back
    /// otherwise when the local side is released (`LoopInner::free_cell`);
    /// other threads use the address only to compare.
    pub(crate) owner: NonNull<LoopInner>,
    pub(crate) id: u64,
    /// Neighbours in the loop's intrusive list of live tasks while `REGISTERED`.
    pub(crate) prev: Cell<Option<NonNull<Header>>>,
    pub(crate) next: Cell<Option<NonNull<Header>>>,
    /// Who awaits the `Task<T>` handle.
    pub(crate) join_waker: UnsafeCell<Option<Waker>>,
    pub(crate) extra: UnsafeCell<Option<Box<Extra>>>,
}

impl Header {
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
