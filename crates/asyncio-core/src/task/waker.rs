//! The `Waker` of a task: a pointer to its header, counted in `Header::wakers`.
//!
//! The waker a task is polled with is borrowed (not counted); each clone counts
//! one. The first counted waker of a task also holds a strong count on the loop's
//! `Shared`, so a waker that outlives its loop can still see that the loop closed
//! and do nothing.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{RawWaker, RawWakerVTable, Waker};

use super::header::{Header, LOCAL, REMOTE, WAKER_COUNT};
use crate::context;
use crate::shared::{Injected, RemoteWake, Shared};

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// The uncounted waker a task is polled with.
///
/// # Safety
/// The header must stay live while the waker is used; the caller must not drop it
/// (it is wrapped in `ManuallyDrop`).
pub(crate) unsafe fn borrowed(ptr: NonNull<Header>) -> std::mem::ManuallyDrop<Waker> {
    // SAFETY: the vtable's functions uphold the `RawWaker` contract for a header pointer.
    std::mem::ManuallyDrop::new(unsafe {
        Waker::from_raw(RawWaker::new(ptr.as_ptr().cast(), &VTABLE))
    })
}

/// Adds one waker count.
///
/// # Safety
/// `ptr` must be a live header.
pub(crate) unsafe fn acquire_waker(ptr: NonNull<Header>) {
    // SAFETY: live header (caller's contract).
    let header = unsafe { ptr.as_ref() };
    let prev = header.wakers.fetch_add(1, Ordering::Relaxed);
    // Half the range: other threads cloning at the same moment cannot carry
    // the count into the flag bits before one of them aborts.
    if prev & WAKER_COUNT >= WAKER_COUNT / 2 {
        std::process::abort();
    }
    if prev & WAKER_COUNT == 0 {
        // SAFETY: a count can only go from zero to one by cloning the borrowed
        // waker, which exists only while the loop polls the task: the loop's own
        // `Arc<Shared>` is alive, so the pointer is valid for this increment.
        unsafe { Arc::increment_strong_count(header.shared.as_ptr().cast_const()) };
    }
}

/// Gives back one waker count; frees the cell if it was the last owner.
///
/// # Safety
/// The caller must own one waker count on a live header; it may not use the
/// pointer afterwards.
pub(crate) unsafe fn release_waker(ptr: NonNull<Header>) {
    // SAFETY: the caller's contract is `release`'s, for one count.
    unsafe { release(ptr, 1) }
}

/// Gives back the `REMOTE` bit and the waker count of an injector entry that
/// is discarded without reaching its loop (the loop closed): frees the cell if
/// that was its last owner. In one atomic step, so that whoever takes the word
/// to zero sees both gone; leaving `REMOTE` set would keep the cell from ever
/// being freed (issue 13, item 14).
///
/// # Safety
/// The caller owns an injector entry for this header (the `REMOTE` bit and one
/// waker count); it may not use the pointer afterwards.
pub(crate) unsafe fn release_remote_wake(ptr: NonNull<Header>) {
    // SAFETY: the caller's contract is `release`'s, for the bit and one count.
    unsafe { release(ptr, REMOTE + 1) }
}

/// Subtracts `amount` (one waker count, plus `REMOTE` if the caller owns it)
/// from the header's word; frees the cell if nothing else owns it.
///
/// # Safety
/// The caller must own what `amount` stands for on a live header; it may not
/// use the pointer afterwards.
unsafe fn release(ptr: NonNull<Header>, amount: u32) {
    // SAFETY: the caller's count keeps the header allocated until the `fetch_sub`;
    // everything needed afterwards is read before it.
    let (shared, vtable, prev) = unsafe {
        let header = ptr.as_ref();
        let shared = header.shared;
        let vtable = header.vtable;
        (
            shared,
            vtable,
            header.wakers.fetch_sub(amount, Ordering::AcqRel),
        )
    };
    debug_assert!(amount == 1 || prev & REMOTE != 0, "REMOTE released twice");
    let now = prev - amount;
    if prev & WAKER_COUNT == 1 {
        if now & (LOCAL | REMOTE) == 0 {
            // SAFETY: no loop-side owner, no injector entry and no other waker:
            // nothing can reach the cell.
            unsafe { (vtable.dealloc)(ptr) };
        }
        // SAFETY: the last waker gives back the strong count the first one took.
        unsafe { Arc::decrement_strong_count(shared.as_ptr().cast_const()) };
    }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` is the header of a waker that is alive, so the header is too.
    unsafe { acquire_waker(NonNull::new_unchecked(data.cast_mut()).cast()) };
    RawWaker::new(data, &VTABLE)
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: a counted waker owns one count.
    unsafe { release_waker(NonNull::new_unchecked(data.cast_mut()).cast()) };
}

unsafe fn wake(data: *const ()) {
    // SAFETY: a waker's data is its header's address, never null.
    let ptr: NonNull<Header> = unsafe { NonNull::new_unchecked(data.cast_mut()).cast() };
    // Woken by reference, then the count given back: the count keeps the
    // loop's `Shared` alive for the whole wake. Handing the count to the
    // injector entry instead would let the loop take the entry, finish the
    // task and free `Shared` while this thread still reads it after the push.
    // SAFETY: a counted waker owns one count, so the header is alive.
    unsafe { wake_inner(ptr) };
    // SAFETY: the count this waker owned, given back once.
    unsafe { release_waker(ptr) };
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker (counted or borrowed) keeps the header alive during the call.
    unsafe { wake_inner(NonNull::new_unchecked(data.cast_mut()).cast()) };
}

/// Schedules the task: directly when called on its loop's thread while the loop
/// runs, through the injector otherwise.
///
/// # Safety
/// `ptr` is a live header, kept alive for the whole call by the caller's
/// waker (a counted one's count, or the loop's poll for the borrowed one).
/// That count also keeps the loop's `Shared` alive until this returns, which
/// `Shared::inject` needs after it publishes the entry.
unsafe fn wake_inner(ptr: NonNull<Header>) {
    // SAFETY: live header.
    let header = unsafe { ptr.as_ref() };
    let running = context::running_loop();
    if std::ptr::eq(running, header.owner().as_ptr()) {
        // On the loop's thread (no other thread can have this loop running). The
        // `LOCAL` bit cannot change under us here: only this thread clears it.
        if header.wakers.load(Ordering::Relaxed) & LOCAL != 0 {
            // SAFETY: `running` is the live loop that owns the task's local side.
            unsafe { (*running).schedule_raw(ptr) };
        }
        return;
    }
    // SAFETY: a counted waker holds a strong count on `Shared`; a borrowed one is
    // only used while its loop polls the task, which keeps `Shared` alive.
    let shared: &Shared = unsafe { header.shared.as_ref() };
    if shared.is_closed() || header.wakers.fetch_or(REMOTE, Ordering::AcqRel) & REMOTE != 0 {
        // The loop is gone, or the task is already queued for it.
        return;
    }
    // SAFETY: live header; the injector entry owns this new count, while the
    // caller's keeps `Shared` alive past the publication.
    unsafe { acquire_waker(ptr) };
    shared.inject(Injected::Wake(RemoteWake(ptr)));
}
