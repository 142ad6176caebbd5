//! Wakers that say *which* of many awaited tasks finished.
//!
//! `gather_tasks` awaits a list of tasks that exist already. Each task keeps
//! the waker its awaiter left and wakes it once, when it completes. Giving
//! every task the same waker would leave the gather to look at every task
//! after each wake; a done callback per task costs two boxes and a trip
//! through the ready queue. Here task `i` gets a waker whose data points at
//! slot `i` of one shared [`IndexWakers`]: its wake records `i` and wakes the
//! gather's own awaiter, so collecting an outcome is O(1) and allocates
//! nothing per task.
//!
//! The wakers count references to the shared list with `Rc`'s non-atomic
//! count, which is only sound on the thread that made them. They are handed
//! only to `Task::poll`, which keeps them in the task's header; the loop
//! wakes and drops them on its own thread, and a `Task` cannot leave it.
//! Every entry point still checks the thread and aborts the process if that
//! ever failed to hold, rather than corrupting the count.

use std::cell::{OnceCell, RefCell};
use std::mem::ManuallyDrop;
use std::rc::Rc;
use std::task::{RawWaker, RawWakerVTable, Waker};

/// Slot `index` of the list at `list`: what a waker's data points at.
struct Slot {
    list: *const IndexWakers,
    index: usize,
}

/// The shared side of the wakers of one gather.
pub(crate) struct IndexWakers {
    /// Made on first use: a gather whose tasks are all done by the time it
    /// looks needs no waker.
    slots: OnceCell<Box<[Slot]>>,
    len: usize,
    /// Indices woken since the gather last looked, in the order of the wakes.
    woken: RefCell<Vec<usize>>,
    /// The waker of whoever awaits the gather, taken by the first wake.
    waiter: RefCell<Option<Waker>>,
    /// The thread that made the list (see the module's documentation).
    thread: *const u8,
}

thread_local! {
    /// Its address tells threads apart for the price of one thread-local access.
    static THREAD_MARK: u8 = const { 0 };
}

fn this_thread() -> *const u8 {
    THREAD_MARK.with(|m| m as *const u8)
}

#[cold]
#[inline(never)]
fn wrong_thread() -> ! {
    eprintln!(
        "asyncio: a gather's waker was used on a thread other than its loop's; \
         aborting instead of corrupting its reference count"
    );
    std::process::abort()
}

impl IndexWakers {
    /// A list of `n` slots, made on (and bound to) the current thread.
    pub(crate) fn new(n: usize) -> Rc<Self> {
        Rc::new(IndexWakers {
            slots: OnceCell::new(),
            len: n,
            woken: RefCell::new(Vec::new()),
            waiter: RefCell::new(None),
            thread: this_thread(),
        })
    }

    /// Calls `f` with the waker of slot `index`, borrowed: `f` may clone it
    /// (each clone holds a count of the list), but the value given to `f` is
    /// not dropped.
    pub(crate) fn with_waker<R>(self: &Rc<Self>, index: usize, f: impl FnOnce(&Waker) -> R) -> R {
        let slots = self.slots.get_or_init(|| {
            // The pointer keeps the provenance of the whole `Rc` allocation,
            // which the wakers' counts need.
            let list = Rc::as_ptr(self);
            (0..self.len).map(|index| Slot { list, index }).collect()
        });
        let slot: *const Slot = &slots[index];
        // SAFETY: the vtable's contract holds for `slot`: it points into the
        // slots of a live `Rc<IndexWakers>` (`self` keeps it alive while `f`
        // runs, and the slots are never moved or replaced once made), made
        // on this thread. The waker is never dropped, so it takes
        // no count of its own.
        let waker =
            ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(slot.cast(), &VTABLE)) });
        f(&waker)
    }

    /// Makes `waker` the one the next wake wakes (if it is not already).
    pub(crate) fn register(&self, waker: &Waker) {
        let mut slot = self.waiter.borrow_mut();
        match &*slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// The indices woken since the last call, oldest first.
    pub(crate) fn take_woken(&self) -> Vec<usize> {
        std::mem::take(&mut *self.woken.borrow_mut())
    }

    fn wake_index(&self, index: usize) {
        self.woken.borrow_mut().push(index);
        // Taken out of its cell before the wake, which may run anything.
        let waiter = self.waiter.borrow_mut().take();
        if let Some(w) = waiter {
            w.wake();
        }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

/// The slot behind a waker's data, after checking the thread.
///
/// # Safety
/// `data` is the data of a waker made by `IndexWakers::with_waker` (or a
/// clone of one) whose list is alive.
unsafe fn slot<'a>(data: *const ()) -> &'a Slot {
    // SAFETY: caller's contract: `data` points at a slot of a live list.
    let slot = unsafe { &*data.cast::<Slot>() };
    // SAFETY: as above; `list` is the slot's own list.
    if unsafe { (*slot.list).thread } != this_thread() {
        wrong_thread();
    }
    slot
}

/// # Safety
/// As [`slot`]: every function of the vtable is called by `Waker` with the
/// data of a live waker of ours.
unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: vtable contract (see above).
    let slot = unsafe { slot(data) };
    // SAFETY: `slot.list` came from the list's `Rc` (`Rc::as_ptr`), which is
    // alive; the new waker owns the count taken here; on the list's thread.
    unsafe { Rc::increment_strong_count(slot.list) };
    RawWaker::new(data, &VTABLE)
}

/// # Safety
/// As [`clone`]; the waker owns one count of its list.
unsafe fn wake(data: *const ()) {
    // SAFETY: vtable contract.
    unsafe { wake_by_ref(data) };
    // SAFETY: as above; the waker is consumed.
    unsafe { drop_waker(data) };
}

/// # Safety
/// As [`clone`].
unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: vtable contract.
    let slot = unsafe { slot(data) };
    // SAFETY: the waker keeps the list alive during this call.
    unsafe { &*slot.list }.wake_index(slot.index);
}

/// # Safety
/// As [`clone`]; the waker owns one count of its list, given back here.
unsafe fn drop_waker(data: *const ()) {
    // SAFETY: vtable contract.
    let list = unsafe { slot(data) }.list;
    // SAFETY: the count this waker owned, given back once; the slot is not
    // touched afterwards (the list may be freed here).
    unsafe { Rc::decrement_strong_count(list) };
}
