//! The task cell: one allocation holding the header, then the future or its outcome.

use std::alloc::Layout;
use std::cell::UnsafeCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::header::{Header, Vtable};
use super::state::{
    CANCEL_REQUESTED, CANCELLED, DEFERRED, FAILED, FUTURE_GONE, HAS_OUTPUT, HAS_PANIC,
    STAGE_TRIVIAL,
};
use crate::error::{CancelledError, PanicError, TaskError};
use crate::event_loop::{Deferred, LoopInner};
use crate::gate::{self, Site};

/// How a task ended without a value, as [`finish`] is told. A `cancel_with`
/// message waits in the task's extra data and joins the [`TaskError`] when the
/// outcome is taken ([`read_output`]).
pub(crate) enum Failure {
    Cancelled,
    Panicked(PanicError),
}

/// What the cell holds after the header: the future, then its value or the
/// panic it ended with (a cancellation leaves nothing). Which one is there the
/// header's state says (`FUTURE_GONE`, `HAS_OUTPUT`, `HAS_PANIC`), so the
/// stage is no larger than its largest field: a trivial task's is one word.
union Stage<F: Future> {
    /// While `FUTURE_GONE` is clear. Pinned: dropped where it lies, never moved.
    future: std::mem::ManuallyDrop<F>,
    /// While `HAS_OUTPUT`.
    output: std::mem::ManuallyDrop<F::Output>,
    /// While `HAS_PANIC`.
    panic: std::mem::ManuallyDrop<PanicError>,
}

#[repr(C)]
pub(crate) struct TaskCell<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
}

impl<F: Future + 'static> TaskCell<F> {
    /// The layout cells of this type are allocated with: rounded up to their
    /// size class when they fit one, so the loop's cell cache can reuse them
    /// for any future of the same class.
    const LAYOUT: Layout = match crate::cell_cache::class_layout(Layout::new::<TaskCell<F>>()) {
        Some(layout) => layout,
        None => Layout::new::<TaskCell<F>>(),
    };

    const VTABLE: Vtable = Vtable {
        layout: Self::LAYOUT,
        class: crate::cell_cache::class_of(Self::LAYOUT),
        poll: poll::<F>,
        cancel: cancel::<F>,
        read_output: read_output::<F>,
        output_ref: output_ref::<F>,
        peek_panic: peek_panic::<F>,
        drop_stage: drop_stage::<F>,
        dealloc: dealloc::<F>,
    };

    /// Allocates a cell owned by one loop-side reference (`refs == 1`), with
    /// the future returned by `make` written straight into it.
    ///
    /// A future passed by value through several calls gets copied on the way,
    /// and a small future with padding (a pointer and a byte, say) is copied
    /// field by field and then read back whole, which the CPU cannot forward
    /// from its store buffer: a stall of a dozen cycles per task. Built by
    /// `make` inside the cell, it is written once.
    #[inline(always)]
    pub(crate) fn allocate_with(
        make: impl FnOnce() -> F,
        owner: &Rc<LoopInner>,
        id: u64,
        state: u32,
    ) -> NonNull<Header> {
        let mem = owner.alloc_cell(Self::LAYOUT, Self::VTABLE.class);
        let cell = mem.cast::<TaskCell<F>>().as_ptr();
        // `Rc::as_ptr` keeps the provenance of the whole allocation, which
        // giving the cell's count back needs.
        let owner_ptr =
            NonNull::new(Rc::as_ptr(owner).cast_mut()).expect("Rc::as_ptr never returns null");
        // Gives the memory (and its count of the loop) back if `make` panics.
        struct Unwind(NonNull<LoopInner>, NonNull<u8>, &'static Vtable);
        impl Drop for Unwind {
            fn drop(&mut self) {
                // SAFETY: memory from `alloc_cell` of this loop, never used.
                unsafe { LoopInner::free_cell(self.0, self.1, self.2.layout, self.2.class) };
            }
        }
        let unwind = Unwind(owner_ptr, mem, &Self::VTABLE);
        // SAFETY: `mem` is fresh memory of `LAYOUT`, which is at least as large
        // and as aligned as `TaskCell<F>`; the stage is written once, in place.
        unsafe {
            ptr::addr_of_mut!((*cell).stage).write(UnsafeCell::new(Stage {
                future: std::mem::ManuallyDrop::new(make()),
            }))
        };
        std::mem::forget(unwind);
        // `Arc::as_ptr` keeps the provenance of the whole allocation, which the
        // wakers need to reach the strong count.
        let shared = NonNull::new(std::sync::Arc::as_ptr(&owner.shared).cast_mut())
            .expect("Arc::as_ptr never returns null");
        debug_assert_eq!(
            owner.shared.owner.get().as_ptr().cast_const(),
            Rc::as_ptr(owner)
        );
        let header = Header::new(state, &Self::VTABLE, shared, id);
        // SAFETY: as above, for the header.
        unsafe { ptr::addr_of_mut!((*cell).header).write(header) };
        mem.cast()
    }
}

/// The stage of the cell behind `ptr`.
///
/// # Safety
/// `ptr` must point to a live `TaskCell<F>`, and the caller must be on the loop
/// thread with no other reference to the stage alive.
unsafe fn stage<F: Future>(ptr: NonNull<Header>) -> *mut Stage<F> {
    let cell = ptr.cast::<TaskCell<F>>().as_ptr();
    // SAFETY: `cell` is live (caller's contract); `addr_of!` avoids making a
    // reference to the whole cell, whose header other threads may be reading.
    unsafe { UnsafeCell::raw_get(ptr::addr_of!((*cell).stage)) }
}

/// Polls the future; on `Ready` (or a panic) stores the outcome and returns the
/// state bits the outcome calls for (`FAILED`, `STAGE_TRIVIAL`), for the caller
/// to set together with `COMPLETE`.
///
/// # Safety
/// `ptr` is a live, unfinished cell of type `F` on its loop's thread, not being
/// polled already.
#[inline(always)]
pub(crate) unsafe fn poll_step<F: Future + 'static>(
    ptr: NonNull<Header>,
    cx: &mut Context<'_>,
) -> Option<u32> {
    // SAFETY: caller's contract; the future is pinned because the cell never moves.
    let result = gate::call(Site::Poll, || unsafe {
        debug_assert!(
            !ptr.as_ref().has(FUTURE_GONE),
            "a finished task is never polled"
        );
        Pin::new_unchecked(&mut *(*stage::<F>(ptr)).future).poll(cx)
    });
    // One `finish` per arm, so each inlined copy knows its outcome's variant.
    match result {
        Ok(Poll::Pending) => None,
        Ok(Poll::Ready(value)) => {
            // SAFETY: live header, loop thread.
            if unsafe { ptr.as_ref() }.has(CANCEL_REQUESTED) {
                // SAFETY: as below.
                return Some(unsafe { cancelled_as_it_returned::<F>(ptr, value) });
            }
            // SAFETY: as above; the poll has returned so no borrow of the
            // future remains.
            Some(unsafe { finish::<F>(ptr, Ok(value)) })
        }
        Err(payload) => {
            let outcome = Err(Failure::Panicked(PanicError::new(payload)));
            // SAFETY: as in the other arm.
            Some(unsafe { finish::<F>(ptr, outcome) })
        }
    }
}

/// The task was cancelled during the poll that returned `value` (it cancelled
/// itself, or something it called did): as asyncio's "cancelled right before
/// the coroutine stops", it ends cancelled and the value is dropped.
///
/// # Safety
/// As for [`poll_step`], after the poll returned.
#[cold]
#[inline(never)]
unsafe fn cancelled_as_it_returned<F: Future + 'static>(
    ptr: NonNull<Header>,
    value: F::Output,
) -> u32 {
    // SAFETY: live header, loop thread.
    let header = unsafe { ptr.as_ref() };
    header.clear(CANCEL_REQUESTED);
    // SAFETY: caller's contract: the future is done being polled.
    let bits = unsafe { finish::<F>(ptr, Err(Failure::Cancelled)) };
    // The value's destructor is user code: it runs once the task is complete
    // (the step's end disposes of what was deferred), not in the middle of
    // this transition.
    if std::mem::needs_drop::<F::Output>() {
        // SAFETY: the task holds a strong count of its owner, so the loop is alive.
        unsafe { header.owner().as_ref() }.defer(Deferred::Drop(Box::new(value)));
        return bits | DEFERRED;
    }
    bits
}

/// The vtable's poll: [`poll_step`], setting the outcome's bits.
unsafe fn poll<F: Future + 'static>(ptr: NonNull<Header>, cx: &mut Context<'_>) -> Poll<()> {
    // SAFETY: the loop polls only live, unfinished cells of this type, on its thread.
    match unsafe { poll_step::<F>(ptr, cx) } {
        None => Poll::Pending,
        Some(bits) => {
            // SAFETY: live header, loop thread.
            unsafe { ptr.as_ref() }.set(bits);
            Poll::Ready(())
        }
    }
}

/// Stores the outcome after dropping the future; a panic in the future's
/// destructor turns the outcome into that panic (as an exception raised in a
/// `finally` block replaces the one in flight). Returns the state bits the
/// outcome calls for, the stage's among them (`FUTURE_GONE` and what is
/// stored), for the caller to set together with `COMPLETE` before anything
/// looks at the stage.
///
/// Never unwinds: every user destructor it runs (the future's, and that of the
/// outcome a destructor's panic replaced) runs under `catch_unwind`, so the
/// caller's state transition always completes. What a replaced outcome's
/// destructor does, or the panic it replaced, goes to the exception handler
/// once the stage and its bits agree again.
///
/// # Safety
/// As for [`stage`], and the stage must hold the future.
#[inline(always)]
unsafe fn finish<F: Future + 'static>(
    ptr: NonNull<Header>,
    outcome: Result<F::Output, Failure>,
) -> u32 {
    // SAFETY: caller's contract.
    let place = unsafe { stage::<F>(ptr) };
    // SAFETY: the stage holds the future (caller's contract); if its
    // destructor unwinds, the stage is overwritten below without another drop.
    let drop_panic = unsafe { drop_future::<F>(place) };
    // SAFETY: caller's contract; the future was dropped in place (or has nothing
    // to drop), so overwriting the stage leaks nothing.
    let bits = unsafe { store_outcome::<F>(place, outcome) };
    match drop_panic {
        None => bits,
        // SAFETY: caller's contract; the outcome of `bits` was just stored.
        Some(payload) => unsafe { replace_with_drop_panic::<F>(ptr, bits, payload) },
    }
}

/// Drops the future where it lies (it is pinned), catching a panic of its
/// destructor; a future without drop glue is left to be overwritten.
///
/// # Safety
/// `place` is the stage of a live cell of type `F` holding the future, on the
/// loop thread; the caller treats the future as gone afterwards, also if its
/// destructor panicked.
#[inline(always)]
unsafe fn drop_future<F: Future>(place: *mut Stage<F>) -> Option<crate::gate::Payload> {
    if !std::mem::needs_drop::<F>() {
        return None;
    }
    // SAFETY: caller's contract: the future is there and dropped exactly once.
    gate::call(Site::DropFuture, || unsafe {
        std::mem::ManuallyDrop::drop(&mut (*place).future)
    })
    .err()
}

/// Writes the outcome into a stage that holds nothing; returns its bits.
///
/// # Safety
/// `place` is the stage of a live cell of type `F`, holding nothing (or a
/// future that was dropped), on the loop thread.
#[inline(always)]
unsafe fn store_outcome<F: Future>(
    place: *mut Stage<F>,
    outcome: Result<F::Output, Failure>,
) -> u32 {
    match outcome {
        Ok(value) => {
            // SAFETY: caller's contract: the stage holds nothing to drop; the
            // write goes through the raw pointer to one field of the union.
            unsafe { ptr::addr_of_mut!((*place).output).write(std::mem::ManuallyDrop::new(value)) };
            let trivial = if std::mem::needs_drop::<F::Output>() {
                0
            } else {
                STAGE_TRIVIAL
            };
            FUTURE_GONE | HAS_OUTPUT | trivial
        }
        Err(Failure::Panicked(p)) => {
            // SAFETY: as above.
            unsafe { ptr::addr_of_mut!((*place).panic).write(std::mem::ManuallyDrop::new(p)) };
            FUTURE_GONE | HAS_PANIC | FAILED
        }
        Err(Failure::Cancelled) => FUTURE_GONE | CANCELLED,
    }
}

/// Moves the outcome out of the stage, as its bits `bits` say, leaving it
/// empty; `None` if it holds none (a cancellation, or already taken).
///
/// # Safety
/// `place` is the stage of a live cell of type `F` whose stored outcome
/// `bits` describe, on the loop thread; the caller clears `HAS_OUTPUT` and
/// `HAS_PANIC` before anything else looks at the stage.
unsafe fn take_outcome<F: Future>(
    place: *mut Stage<F>,
    bits: u32,
) -> Option<Result<F::Output, PanicError>> {
    if bits & HAS_OUTPUT != 0 {
        // SAFETY: caller's contract: the value is there, and is moved out once.
        Some(Ok(unsafe {
            std::mem::ManuallyDrop::take(&mut (*place).output)
        }))
    } else if bits & HAS_PANIC != 0 {
        // SAFETY: as above, for the panic.
        Some(Err(unsafe {
            std::mem::ManuallyDrop::take(&mut (*place).panic)
        }))
    } else {
        None
    }
}

/// The end of [`finish`] when the future's destructor panicked: that panic
/// replaces the outcome just stored (as an exception raised in a `finally`
/// replaces the result or the exception in flight), and the replaced outcome
/// is disposed of once the stage is whole again — a value whose destructor
/// panics, or the panic the future's poll raised, is reported to the loop's
/// exception handler rather than lost. Returns the new outcome's bits.
///
/// (The outcome is stored first and swapped here, rather than passed here,
/// so the common path keeps it in registers.)
///
/// # Safety
/// As for [`stage`]; the stage holds the outcome `bits` describe.
#[cold]
#[inline(never)]
unsafe fn replace_with_drop_panic<F: Future + 'static>(
    ptr: NonNull<Header>,
    bits: u32,
    payload: crate::gate::Payload,
) -> u32 {
    // SAFETY: caller's contract.
    let place = unsafe { stage::<F>(ptr) };
    // SAFETY: caller's contract: `bits` describe what is stored.
    let replaced = unsafe { take_outcome::<F>(place, bits) };
    let new = Err(Failure::Panicked(PanicError::new(payload)));
    // SAFETY: the stage is empty again.
    let bits = unsafe { store_outcome::<F>(place, new) };
    // No user code runs here: the replaced value (or panic) waits in the
    // loop's deferred list until the step's end, when the task is complete.
    // SAFETY: live header, loop thread.
    let header = unsafe { ptr.as_ref() };
    // SAFETY: the task holds a strong count of its owner, so the loop is alive.
    let owner = unsafe { header.owner().as_ref() };
    match replaced {
        Some(Err(first)) => {
            // SAFETY: called during the task's step, which holds a reference.
            let task = unsafe { crate::task::TaskRef::clone_raw(ptr) };
            owner.defer(Deferred::ReplacedPanic(task, first));
            bits | DEFERRED
        }
        Some(Ok(value)) => {
            owner.defer(Deferred::Drop(Box::new(value)));
            bits | DEFERRED
        }
        None => bits,
    }
}

unsafe fn cancel<F: Future + 'static>(ptr: NonNull<Header>) {
    // SAFETY: the loop cancels only live, unfinished cells of this type, on its thread.
    let bits = unsafe { finish::<F>(ptr, Err(Failure::Cancelled)) };
    // SAFETY: live header, loop thread.
    unsafe { ptr.as_ref() }.set(bits);
}

unsafe fn read_output<F: Future>(ptr: NonNull<Header>, dst: *mut ()) {
    // SAFETY: live header, loop thread.
    let header = unsafe { ptr.as_ref() };
    let bits = header.state.get();
    // SAFETY: the cell is live and finished (checked by the caller through
    // `COMPLETE`); the bits are cleared right after, before any user code.
    let out = unsafe { take_outcome::<F>(stage::<F>(ptr), bits) };
    header.clear(HAS_OUTPUT | HAS_PANIC);
    let out = match out {
        Some(Ok(value)) => Ok(value),
        Some(Err(p)) => Err(task_error(ptr, Failure::Panicked(p))),
        None if bits & CANCELLED != 0 => Err(task_error(ptr, Failure::Cancelled)),
        None => panic!("a task's output was read twice"),
    };
    // SAFETY: `Task<F::Output>` passes a `Poll<Result<F::Output, TaskError>>`.
    unsafe { *dst.cast::<Poll<Result<F::Output, TaskError>>>() = Poll::Ready(out) };
}

unsafe fn output_ref<F: Future>(ptr: NonNull<Header>) -> *const () {
    // SAFETY: live header, loop thread.
    if !unsafe { ptr.as_ref() }.has(HAS_OUTPUT) {
        return ptr::null();
    }
    // SAFETY: live cell, loop thread; the flag says the value is there. Only
    // a pointer is made: the caller decides how long it may be read.
    unsafe { ptr::addr_of!((*stage::<F>(ptr)).output).cast() }
}

/// The error a task that ended without a value hands its awaiter: a
/// cancellation carries the message of `cancel_with`, if it had one.
#[cold]
#[inline(never)]
pub(crate) fn task_error(ptr: NonNull<Header>, failure: Failure) -> TaskError {
    match failure {
        Failure::Panicked(p) => TaskError::Panicked(p),
        Failure::Cancelled => {
            // SAFETY: live header, loop thread (the caller reads the outcome).
            let header = unsafe { ptr.as_ref() };
            match header.extra_ref().and_then(|e| e.cancel_message.clone()) {
                Some(msg) => TaskError::Cancelled(CancelledError::with_message(msg)),
                None => TaskError::Cancelled(CancelledError::new()),
            }
        }
    }
}

unsafe fn peek_panic<F: Future>(ptr: NonNull<Header>) -> Option<PanicError> {
    // SAFETY: live header, loop thread.
    if !unsafe { ptr.as_ref() }.has(HAS_PANIC) {
        return None;
    }
    // SAFETY: live cell, loop thread; the flag says the panic is there; a
    // shared borrow that ends here.
    Some(PanicError::clone(unsafe { &(*stage::<F>(ptr)).panic }))
}

unsafe fn drop_stage<F: Future>(ptr: NonNull<Header>) -> Option<Box<dyn std::any::Any + Send>> {
    // SAFETY: live header, loop thread.
    let header = unsafe { ptr.as_ref() };
    let bits = header.state.get();
    // SAFETY: called once, when the last loop-side reference goes, on the loop
    // thread; the stage holds what the bits say.
    let place = unsafe { stage::<F>(ptr) };
    if bits & FUTURE_GONE == 0 {
        header.set(FUTURE_GONE);
        // SAFETY: the future is there (the flag was clear), and is gone for
        // good now (the flag is set).
        return unsafe { drop_future::<F>(place) };
    }
    if bits & HAS_OUTPUT != 0 && !std::mem::needs_drop::<F::Output>() {
        return None;
    }
    header.clear(HAS_OUTPUT | HAS_PANIC);
    // SAFETY: the outcome the bits describe, moved out once (the bits are clear).
    let out = unsafe { take_outcome::<F>(place, bits) };
    match out {
        None => None,
        Some(out) => gate::call(Site::DropValue, move || drop(out)).err(),
    }
}

unsafe fn dealloc<F: Future + 'static>(ptr: NonNull<Header>) {
    // SAFETY: the cell was allocated with `TaskCell::<F>::LAYOUT` and nothing
    // references it any more. No destructor runs: the stage holds nothing to
    // drop and every owning header field was emptied on the loop thread.
    unsafe { std::alloc::dealloc(ptr.cast::<u8>().as_ptr(), TaskCell::<F>::LAYOUT) };
}
