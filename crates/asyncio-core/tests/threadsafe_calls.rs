//! `call_soon_threadsafe` on the loop's side: taking the callbacks in costs
//! the loop no allocation, and callbacks and foreign wakes keep the order in
//! which other threads sent them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use asyncio_core::EventLoop;

/// Counts the allocations made on the threads that ask for it.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// bookkeeping is const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: the caller's contract is the one `System.alloc` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING_ALLOC: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> usize {
    ALLOCS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCS.with(Cell::get)
}

/// Sends `n` callbacks from another thread (before the loop runs), then runs
/// the loop until the last has run; the allocations on the loop's thread.
fn loop_allocations_for(lp: &EventLoop, n: usize) -> usize {
    let handle = lp.handle();
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    std::thread::spawn(move || {
        for _ in 0..n {
            let r = Arc::clone(&r);
            handle
                .call_soon_threadsafe(move || {
                    r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
                .unwrap();
        }
    })
    .join()
    .unwrap();
    allocations_in(|| {
        lp.run_until_complete(asyncio_core::yield_now()).unwrap();
    })
}

#[test]
fn taking_in_threadsafe_callbacks_costs_the_loop_no_allocation_per_callback() {
    // Fewer under Miri, which runs them slowly; the queue's own growth stays
    // well under the bound either way.
    let n = if cfg!(miri) { 300 } else { 10_000 };
    let lp = EventLoop::new();
    // Warm: the loop's own queues have grown once.
    loop_allocations_for(&lp, n);
    let none = loop_allocations_for(&lp, 0);
    let many = loop_allocations_for(&lp, n);
    assert!(
        many <= none + 20,
        "{n} callbacks cost the loop's thread {} allocations beyond an empty run's {none}",
        many - none
    );
    lp.close().unwrap();
}

#[test]
fn callbacks_and_wakes_from_another_thread_run_in_the_order_they_were_sent() {
    let lp = EventLoop::new();
    let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let slot: Arc<Mutex<Option<Waker>>> = Arc::default();
    let woken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (l, s, w) = (Arc::clone(&log), Arc::clone(&slot), Arc::clone(&woken));
    // A task that parks, handing out its waker, and logs when it runs again.
    let task = lp.create_task(std::future::poll_fn(move |cx| {
        if w.load(std::sync::atomic::Ordering::SeqCst) {
            l.lock().unwrap().push("task");
            Poll::Ready(())
        } else {
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }));
    lp.run_until_complete(asyncio_core::yield_now()).unwrap();
    let handle = lp.handle();
    let (l1, l2, w) = (Arc::clone(&log), Arc::clone(&log), Arc::clone(&woken));
    std::thread::spawn(move || {
        handle
            .call_soon_threadsafe(move || l1.lock().unwrap().push("first"))
            .unwrap();
        w.store(true, std::sync::atomic::Ordering::SeqCst);
        slot.lock().unwrap().take().expect("the task parked").wake();
        handle
            .call_soon_threadsafe(move || l2.lock().unwrap().push("second"))
            .unwrap();
    })
    .join()
    .unwrap();
    lp.run_until_complete(task).unwrap().unwrap();
    lp.run_until_complete(asyncio_core::yield_now()).unwrap();
    assert_eq!(*log.lock().unwrap(), ["first", "task", "second"]);
    lp.close().unwrap();
}
