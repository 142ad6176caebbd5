//! The task cell: one allocation holding the header, then the future or its outcome.

use crate::sync::AtomicUsize;
use std::alloc::Layout;
use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::rc::Rc;
use std::task::{Context, Poll};

use super::header::{Header, LOCAL, Vtable};
use super::state::{CANCEL_REQUESTED, CANCELLED, FAILED, STAGE_TRIVIAL};
use crate::error::{CancelledError, PanicError, TaskError};
use crate::event_loop::LoopInner;

/// What the cell holds after the header.
/// How a task ended without a value, as its cell keeps it: one pointer wide
/// (a cancellation is no pointer at all), so the stage of a small task stays
/// small. A `cancel_with` message waits in the task's extra data and joins the
/// [`TaskError`] when the outcome is taken ([`read_output`]).
pub(crate) enum Failure {
    Cancelled,
    Panicked(PanicError),
}

enum Stage<F: Future> {
    Running(F),
    Finished(Result<F::Output, Failure>),
    Consumed,
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
        unsafe { ptr::addr_of_mut!((*cell).stage).write(UnsafeCell::new(Stage::Running(make()))) };
        std::mem::forget(unwind);
        // `Arc::as_ptr` keeps the provenance of the whole allocation, which the
        // wakers need to reach the strong count.
        let shared = NonNull::new(std::sync::Arc::as_ptr(&owner.shared).cast_mut())
            .expect("Arc::as_ptr never returns null");
        let header = Header {
            state: Cell::new(state),
            refs: Cell::new(1),
            wakers: AtomicUsize::new(LOCAL),
            vtable: &Self::VTABLE,
            shared,
            owner: owner_ptr,
            id,
            prev: Cell::new(None),
            next: Cell::new(None),
            join_waker: UnsafeCell::new(None),
            extra: UnsafeCell::new(None),
        };
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

/// Replaces the stage, dropping the old one in place under `catch_unwind`;
/// returns the panic of the old value's destructor, if it had one.
///
/// The old stage is dropped where it lies, never moved out: a `Running` future
/// is pinned, and pinning promises it is dropped in place (a finished async block
/// may also hold stale, already-freed captures that must not be copied).
///
/// # Safety
/// As for [`stage`].
unsafe fn replace_stage<F: Future>(
    ptr: NonNull<Header>,
    new: Stage<F>,
) -> Option<Box<dyn std::any::Any + Send>> {
    // SAFETY: caller's contract: the stage is live and ours.
    let place = unsafe { stage::<F>(ptr) };
    let panic = if std::mem::needs_drop::<Stage<F>>() {
        // SAFETY: the stage holds a valid value, dropped exactly once here; if its
        // destructor unwinds, the place is overwritten below without another drop.
        catch_unwind(AssertUnwindSafe(|| unsafe { ptr::drop_in_place(place) })).err()
    } else {
        None
    };
    // SAFETY: the old value is gone (dropped, or had nothing to drop).
    unsafe { ptr::write(place, new) };
    panic
}

/// Polls the future; on `Ready` (or a panic) stores the outcome and returns the
/// state bits the outcome calls for (`FAILED`, `STAGE_TRIVIAL`), for the caller
/// to set together with `COMPLETE`.
///
/// # Safety
/// `ptr` is a live, unfinished cell of type `F` on its loop's thread, not being
/// polled already.
#[inline(always)]
pub(crate) unsafe fn poll_step<F: Future>(
    ptr: NonNull<Header>,
    cx: &mut Context<'_>,
) -> Option<u32> {
    // SAFETY: caller's contract; the future is pinned because the cell never moves.
    let result = catch_unwind(AssertUnwindSafe(|| unsafe {
        match &mut *stage::<F>(ptr) {
            Stage::Running(future) => Pin::new_unchecked(future).poll(cx),
            _ => unreachable!("a finished task is never polled"),
        }
    }));
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
unsafe fn cancelled_as_it_returned<F: Future>(ptr: NonNull<Header>, value: F::Output) -> u32 {
    // SAFETY: live header, loop thread.
    let header = unsafe { ptr.as_ref() };
    header.clear(CANCEL_REQUESTED);
    // SAFETY: caller's contract: the future is done being polled.
    let bits = unsafe { finish::<F>(ptr, Err(Failure::Cancelled)) };
    // SAFETY: the task holds a strong count of its owner, so the loop is alive.
    unsafe { header.owner.as_ref() }.drop_reporting(value);
    bits
}

/// The vtable's poll: [`poll_step`], setting the outcome's bits.
unsafe fn poll<F: Future>(ptr: NonNull<Header>, cx: &mut Context<'_>) -> Poll<()> {
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
/// outcome calls for.
///
/// Never unwinds: every user destructor it runs (the future's, and that of the
/// outcome a destructor's panic replaced) runs under `catch_unwind`, so the
/// caller's state transition always completes. What a replaced outcome's
/// destructor does, or the panic it replaced, goes to the exception handler
/// once the stage is whole again.
///
/// # Safety
/// As for [`stage`], and the stage must be `Running`.
#[inline(always)]
unsafe fn finish<F: Future>(ptr: NonNull<Header>, outcome: Result<F::Output, Failure>) -> u32 {
    // SAFETY: caller's contract.
    let place = unsafe { stage::<F>(ptr) };
    // A future without drop glue is simply overwritten below.
    let drop_panic = if !std::mem::needs_drop::<F>() {
        None
    } else {
        // SAFETY: the stage is `Running` (caller's contract); the future is
        // dropped where it lies, exactly once: if its destructor unwinds, the
        // stage is overwritten below without another drop.
        catch_unwind(AssertUnwindSafe(|| unsafe {
            match &mut *place {
                Stage::Running(future) => ptr::drop_in_place(future),
                _ => unreachable!("finish is only called on a running task"),
            }
        }))
        .err()
    };
    let bits = match &outcome {
        Err(Failure::Panicked(_)) => FAILED,
        Err(Failure::Cancelled) => CANCELLED,
        Ok(_) if !std::mem::needs_drop::<F::Output>() => STAGE_TRIVIAL,
        Ok(_) => 0,
    };
    // SAFETY: caller's contract; the future was dropped in place (or has nothing
    // to drop), so overwriting the stage leaks nothing.
    unsafe { ptr::write(place, Stage::Finished(outcome)) };
    match drop_panic {
        None => bits,
        // SAFETY: caller's contract; the stage was just written.
        Some(payload) => unsafe { replace_with_drop_panic::<F>(ptr, payload) },
    }
}

/// The end of [`finish`] when the future's destructor panicked: that panic
/// replaces the outcome just stored (as an exception raised in a `finally`
/// replaces the result or the exception in flight), and the replaced outcome
/// is disposed of once the stage is whole again — a value whose destructor
/// panics, or the panic the future's poll raised, is reported to the loop's
/// exception handler rather than lost. Returns `FAILED`.
///
/// (The outcome is stored first and swapped here, rather than passed here,
/// so the common path keeps it in registers.)
///
/// # Safety
/// As for [`stage`]; the stage is `Finished`.
#[cold]
#[inline(never)]
unsafe fn replace_with_drop_panic<F: Future>(
    ptr: NonNull<Header>,
    payload: crate::unwind::Payload,
) -> u32 {
    let outcome = Err(Failure::Panicked(PanicError::new(payload)));
    // SAFETY: caller's contract; `replace` moves the old outcome out.
    let replaced = match unsafe { ptr::replace(stage::<F>(ptr), Stage::Finished(outcome)) } {
        Stage::Finished(replaced) => replaced,
        _ => unreachable!("the outcome was just stored"),
    };
    // SAFETY: the task holds a strong count of its owner, so the loop is alive.
    let owner = unsafe { ptr.as_ref().owner.as_ref() };
    match replaced {
        Err(Failure::Panicked(first)) => owner.report_replaced_panic(ptr, first),
        other => owner.drop_reporting(other),
    }
    FAILED
}

unsafe fn cancel<F: Future>(ptr: NonNull<Header>) {
    // SAFETY: the loop cancels only live, unfinished cells of this type, on its thread.
    let bits = unsafe { finish::<F>(ptr, Err(Failure::Cancelled)) };
    // SAFETY: live header, loop thread.
    unsafe { ptr.as_ref() }.set(bits);
}

unsafe fn read_output<F: Future>(ptr: NonNull<Header>, dst: *mut ()) {
    // SAFETY: `Task<F::Output>` passes a `Poll<Result<F::Output, TaskError>>`; the
    // cell is live and finished (checked by the caller through `COMPLETE`).
    unsafe {
        match ptr::replace(stage::<F>(ptr), Stage::Consumed) {
            Stage::Finished(out) => {
                let out = match out {
                    Ok(value) => Ok(value),
                    Err(failure) => Err(task_error(ptr, failure)),
                };
                *dst.cast::<Poll<Result<F::Output, TaskError>>>() = Poll::Ready(out);
            }
            _ => panic!("a task's output was read twice"),
        }
    }
}

/// The error a task that ended without a value hands its awaiter: a
/// cancellation carries the message of `cancel_with`, if it had one.
#[cold]
#[inline(never)]
fn task_error(ptr: NonNull<Header>, failure: Failure) -> TaskError {
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
    // SAFETY: live cell, loop thread; a shared borrow that ends here.
    match unsafe { &*stage::<F>(ptr) } {
        Stage::Finished(Err(Failure::Panicked(p))) => Some(p.clone()),
        _ => None,
    }
}

unsafe fn drop_stage<F: Future>(ptr: NonNull<Header>) -> Option<Box<dyn std::any::Any + Send>> {
    // SAFETY: live cell, loop thread; the shared borrow ends in this block.
    match unsafe { &*stage::<F>(ptr) } {
        Stage::Consumed => return None,
        Stage::Finished(Ok(_)) if !std::mem::needs_drop::<F::Output>() => return None,
        _ => {}
    }
    // SAFETY: called once, when the last loop-side reference goes, on the loop thread.
    unsafe { replace_stage::<F>(ptr, Stage::Consumed) }
}

unsafe fn dealloc<F: Future + 'static>(ptr: NonNull<Header>) {
    // SAFETY: the cell was allocated with `TaskCell::<F>::LAYOUT` and nothing
    // references it any more. No destructor runs: the stage is `Consumed` and every
    // owning header field was emptied on the loop thread.
    unsafe { std::alloc::dealloc(ptr.cast::<u8>().as_ptr(), TaskCell::<F>::LAYOUT) };
}
