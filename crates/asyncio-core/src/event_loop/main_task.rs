//! The main task of `run_until_complete`, whose future may borrow from the
//! caller: it lives on the caller's stack, and the task only points at it.
//!
//! A task's future must be `'static` because the loop keeps tasks as long as
//! it likes. The main future is different: `run_until_complete` does not
//! return before it is finished or dropped. So it stays in the caller's frame,
//! pinned there, and the main task's own (`'static`) future, [`MainFuture`],
//! polls it through a pointer. Whatever way `run_until_complete` leaves — its
//! value, an error (the loop stalled, say) or a panic — a guard first drops the
//! borrowed future if it is still there and then marks the pointer dead, so
//! the task, if the loop still holds it, never reaches the caller's frame
//! again: polled, it stays pending; dropped, it does nothing.

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll};

/// The borrowed main future and where its output goes.
pub(super) struct MainSlot<'a, F: Future> {
    fut: Pin<&'a mut Option<F>>,
    out: &'a Cell<Option<F::Output>>,
}

impl<'a, F: Future> MainSlot<'a, F> {
    pub(super) fn new(fut: Pin<&'a mut Option<F>>, out: &'a Cell<Option<F::Output>>) -> Self {
        MainSlot { fut, out }
    }
}

/// What the main task does with the borrowed future, its type erased.
trait PollMain {
    fn poll_main(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    fn drop_main(&mut self);
}

impl<F: Future> PollMain for MainSlot<'_, F> {
    fn poll_main(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(fut) = self.fut.as_mut().as_pin_mut() else {
            return Poll::Ready(());
        };
        match fut.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(value) => {
                self.out.set(Some(value));
                // Dropped as a finished task's future is, inside its step.
                self.fut.set(None);
                Poll::Ready(())
            }
        }
    }

    fn drop_main(&mut self) {
        self.fut.set(None);
    }
}

/// The main task's future: polls the borrowed one while it is alive.
pub(super) struct MainFuture {
    slot: NonNull<dyn PollMain>,
    alive: Rc<Cell<bool>>,
}

/// Clears `alive` when `run_until_complete` leaves, however it leaves, after
/// dropping the borrowed future if the task has not.
pub(super) struct MainGuard<'s> {
    /// The same pointer as the task's (every access goes through it), with
    /// the slot borrowed for as long as the guard lives.
    slot: NonNull<dyn PollMain + 's>,
    alive: Rc<Cell<bool>>,
    _borrow: PhantomData<&'s mut ()>,
}

/// Makes the main task's future for `slot`, and the guard that must outlive
/// every use of the task by the caller.
pub(super) fn main_future<'s, 'a: 's, F: Future + 'a>(
    slot: &'s mut MainSlot<'a, F>,
) -> (MainFuture, MainGuard<'s>) {
    let alive = Rc::new(Cell::new(true));
    let erased: NonNull<dyn PollMain + 's> = NonNull::from(slot as &mut (dyn PollMain + 's));
    // SAFETY: only the lifetime bound of the trait object changes (same
    // pointer, same vtable). The task dereferences it only while `alive` is
    // set, and `MainGuard` — which holds the borrow of `slot` for as long as
    // it lives, so the slot and what it borrows outlive it — clears `alive`
    // when it is dropped, on every way out of `run_until_complete`.
    let slot_ptr: NonNull<dyn PollMain + 'static> = unsafe { std::mem::transmute(erased) };
    let fut = MainFuture {
        slot: slot_ptr,
        alive: Rc::clone(&alive),
    };
    let guard = MainGuard {
        slot: erased,
        alive,
        _borrow: PhantomData,
    };
    (fut, guard)
}

impl Future for MainFuture {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.alive.get() {
            // Left behind by a `run_until_complete` that returned (or
            // unwound) without it: nothing to run any more.
            return Poll::Pending;
        }
        let mut slot = self.slot;
        // SAFETY: `alive` is set, so the slot is alive and borrowed by its
        // guard in the caller's frame, which does not touch it while the loop
        // runs; the loop polls one task at a time, on this thread.
        unsafe { slot.as_mut() }.poll_main(cx)
    }
}

impl Drop for MainFuture {
    fn drop(&mut self) {
        if self.alive.get() {
            // SAFETY: as in `poll`: alive, and not in use by anyone else.
            unsafe { self.slot.as_mut() }.drop_main();
        }
    }
}

impl Drop for MainGuard<'_> {
    fn drop(&mut self) {
        // Cleared first: the future's destructor may reach the task (a
        // `current_task()` kept somewhere), which must then find nothing.
        self.alive.set(false);
        // SAFETY: the slot is borrowed for the guard's lifetime; the task no
        // longer uses the pointer (`alive` is clear) and is not running (the
        // loop is not inside a step when `run_until_complete` leaves).
        unsafe { self.slot.as_mut() }.drop_main();
    }
}
