//! The loop reuses the memory of finished task cells; that must never change
//! what tasks see.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use asyncio_core::{EventLoop, create_task, yield_now};

/// Counts the allocations and the freed bytes of each thread, so that the
/// tests can see what the loop does with cell memory (nothing else in the
/// public API shows it).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static FREED_BYTES: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are const-initialised thread-locals without destructors, which
// never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is the one `System.alloc` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = FREED_BYTES.try_with(|n| n.set(n.get() + layout.size()));
        // SAFETY: `ptr` came from `System.alloc` with `layout` (through `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// How many allocations this thread made while `f` ran.
fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

/// How many bytes this thread freed while `f` ran.
fn bytes_freed_during(f: impl FnOnce()) -> usize {
    let before = FREED_BYTES.with(Cell::get);
    f();
    FREED_BYTES.with(Cell::get) - before
}

/// Futures of several sizes, so cells of different classes interleave.
async fn sized<const N: usize>(seed: u8) -> u64 {
    let buf = [seed; N];
    yield_now().await;
    buf.iter().map(|&b| u64::from(b)).sum()
}

// Miri runs this a few hundred times slower.
const ROUNDS: u8 = if cfg!(miri) { 3 } else { 20 };
const PER: usize = if cfg!(miri) { 5 } else { 50 };

fn churn(lp: &EventLoop) {
    let out = lp
        .run_until_complete(async {
            let mut total = 0;
            for round in 0..ROUNDS {
                let a: Vec<_> = (0..PER).map(|_| create_task(sized::<8>(round))).collect();
                let b: Vec<_> = (0..PER).map(|_| create_task(sized::<200>(round))).collect();
                for t in a.into_iter().chain(b) {
                    total += t.await.unwrap();
                }
            }
            total
        })
        .unwrap();
    let per = PER as u64;
    let expected: u64 = (0..u64::from(ROUNDS))
        .map(|r| per * (8 * r) + per * (200 * r))
        .sum();
    assert_eq!(out, expected);
}

#[test]
fn reused_cells_give_every_task_its_own_state() {
    let lp = EventLoop::new();
    churn(&lp);
    let reusing = allocations_during(|| churn(&lp));
    // The same work on a loop that keeps no cells.
    let off = EventLoop::new();
    off.set_task_cache_limit(0);
    churn(&off);
    let not_reusing = allocations_during(|| churn(&off));
    // Everything else allocates alike; the second churn's tasks found their
    // cells in the cache, one allocation fewer per task.
    let tasks = 2 * usize::from(ROUNDS) * PER;
    assert!(
        not_reusing >= reusing + tasks,
        "{tasks} tasks: {reusing} allocations with the cache, {not_reusing} without"
    );
}

#[test]
fn a_zero_cache_limit_turns_reuse_off_and_tasks_still_run() {
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    churn(&lp);
    // Each task of a churn allocates its cell: the cache gives none.
    let tasks = 2 * usize::from(ROUNDS) * PER;
    let allocations = allocations_during(|| churn(&lp));
    assert!(allocations >= tasks, "{allocations} for {tasks} tasks");
}

#[test]
fn lowering_the_limit_after_use_frees_cached_cells() {
    let lp = EventLoop::new();
    churn(&lp);
    // `churn` leaves PER cells of futures over 200 bytes and PER of futures
    // over 8 bytes in the cache; at most 1024 bytes of them may stay.
    let freed = bytes_freed_during(|| lp.set_task_cache_limit(1024));
    let at_least = (PER * (200 + 8)).saturating_sub(1024);
    assert!(
        freed >= at_least.max(1),
        "freed {freed} bytes, expected {at_least} or more"
    );
    churn(&lp);
    lp.close().unwrap();
}

/// Each live or cached cell holds the loop: these end with no cell anywhere,
/// which Miri's leak checker (ci/miri.sh) verifies down to the last count.
#[test]
fn cached_cells_and_tasks_outliving_their_loop_let_it_go() {
    let lp = EventLoop::new();
    let (finished, pending) = lp
        .run_until_complete(async {
            let finished: Vec<_> = (0..PER).map(|i| create_task(async move { i })).collect();
            yield_now().await;
            // Finished and freed: their cells go to the cache.
            for t in (0..PER).map(|_| create_task(sized::<8>(1))) {
                t.await.unwrap();
            }
            let pending: Vec<_> = (0..PER).map(|_| create_task(sized::<200>(2))).collect();
            (finished, pending)
        })
        .unwrap();
    lp.set_task_cache_limit(64);
    let handle = lp.clone();
    drop(lp);
    handle.close().unwrap(); // the pending tasks are cancelled
    assert!(pending.iter().all(|t| t.cancelled()));
    // A closed loop caches nothing, whatever the limit says.
    handle.set_task_cache_limit(1 << 20);
    drop(pending);
    drop(handle);
    for (i, mut t) in finished.into_iter().enumerate() {
        assert_eq!(t.try_result().unwrap(), Ok(i));
    }
}

/// `close` shuts the cache before it drops anything users gave the loop, and
/// a destructor panicking there is reported, not unwound: no cached cell is
/// left holding the loop alive (Miri's leak checker verifies it).
#[test]
fn a_destructor_panicking_in_close_still_lets_the_loop_go() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("a timer callback's capture panics when dropped");
        }
    }
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        for t in (0..PER).map(|_| create_task(sized::<8>(1))) {
            t.await.unwrap();
        }
    })
    .unwrap();
    let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        r.borrow_mut().push(ctx.to_string())
    }));
    let capture = PanicOnDrop;
    drop(lp.call_later(std::time::Duration::from_secs(3600), move || drop(capture)));
    // The destructor's panic goes to the exception handler; close completes.
    assert_eq!(lp.close(), Ok(()));
    assert!(lp.is_closed());
    assert!(
        reports
            .borrow()
            .iter()
            .any(|r| r.contains("a timer callback's capture panics when dropped")),
        "{:?}",
        reports.borrow()
    );
    drop(lp);
}

/// A loop that goes idle after a burst trims its cache in steps (a bounded
/// number of cells each, looking at I/O in between), and goes on stepping
/// until it keeps no more than an idle loop keeps (1 MiB) before it sleeps:
/// the steps must not stop after the first.
#[test]
#[cfg_attr(miri, ignore = "needs megabytes of task cells")]
fn an_idle_loop_trims_a_large_cache_in_steps_down_to_what_it_keeps() {
    const N: usize = 10_000;
    let lp = EventLoop::new();
    lp.set_task_cache_limit(64 << 20);
    let freed = std::rc::Rc::new(Cell::new(0));
    let f = freed.clone();
    lp.run_until_complete(async move {
        // All alive at once, then all finished: N cells in the cache.
        let tasks: Vec<_> = (0..N).map(|_| create_task(sized::<200>(1))).collect();
        for t in tasks {
            t.await.unwrap();
        }
        let before = FREED_BYTES.with(Cell::get);
        asyncio_core::sleep(std::time::Duration::from_millis(20)).await;
        f.set(FREED_BYTES.with(Cell::get) - before);
    })
    .unwrap();
    // Each cell holds a future of over 200 bytes; all but 1 MiB (and a few
    // cells the hot slots keep) must have gone while the loop was idle.
    let at_least = N * 200 - (1 << 20) - (64 << 10);
    assert!(
        freed.get() >= at_least,
        "freed {} bytes while idle, expected {at_least} or more",
        freed.get()
    );
    lp.close().unwrap();
}
