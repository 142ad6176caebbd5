//! A loop closes when the user's last handle to it goes, also when its own
//! tasks hold handles to it (issue 24, finding 4): keeping
//! `get_running_loop()` across an await, or awaiting a `LoopFuture` (which
//! refers to its loop), is the everyday asyncio idiom, and must not keep a
//! loop nobody else can reach open, with its tasks pending and its memory
//! leaked.
//!
//! Leaks are counted with a global allocator (the blocks this thread has
//! allocated and not freed, before and after a scenario); under Miri the
//! leak checker sees them too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::catch_unwind;

use asyncio_core::{
    EventLoop, ExceptionContext, create_future, create_task, get_running_loop, yield_now,
};

struct Counting;

thread_local! {
    /// Blocks allocated minus blocks freed on this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Set while the panic hook runs: what it allocates (a backtrace's
    /// symbol caches, kept for the next one) is the hook's, not the loop's.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Destructors of the tasks' futures that ran.
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is a const-initialised thread-local without a destructor, which
// never allocates. (`realloc` keeps its default, which calls `alloc` and
// `dealloc`.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !IN_HOOK.try_with(Cell::get).unwrap_or(true) {
            let _ = LIVE.try_with(|n| n.set(n.get() + 1));
        }
        // SAFETY: the caller's contract is the one `System.alloc` needs.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !IN_HOOK.try_with(Cell::get).unwrap_or(true) {
            let _ = LIVE.try_with(|n| n.set(n.get() - 1));
        }
        // SAFETY: `ptr` came from `System.alloc` with `layout` (through `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Counts its drop (a pending task's destructor running at close).
struct CountsDrop;

impl Drop for CountsDrop {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

/// Wraps the panic hook (once per process) so that what it allocates is
/// not counted; it prints as before.
fn uncount_the_panic_hook() {
    static WRAPPED: std::sync::Once = std::sync::Once::new();
    WRAPPED.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let was = IN_HOOK.with(|h| h.replace(true));
            prev(info);
            IN_HOOK.with(|h| h.set(was));
        }));
    });
}

/// Uses once what allocates for good on first use on this thread.
fn warm_up() {
    uncount_the_panic_hook();
    eprintln!("warming up");
    let _ = catch_unwind(|| panic!("warm-up panic"));
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &ExceptionContext| {}));
    lp.run_until_complete(async {
        let fut = create_future::<u32>();
        let t = create_task(fut.clone());
        yield_now().await;
        fut.set_result(1).unwrap();
        let _ = t.await;
        drop(create_task(std::future::pending::<()>()));
        yield_now().await;
    })
    .unwrap();
    lp.close().unwrap();
    drop(lp);
}

/// Runs `scenario` after a warm-up; returns the blocks it left allocated
/// and how many of the tasks' destructors ran.
fn run(scenario: impl FnOnce()) -> (isize, u32) {
    warm_up();
    DROPS.with(|d| d.set(0));
    let before = LIVE.with(Cell::get);
    scenario();
    (LIVE.with(Cell::get) - before, DROPS.with(Cell::get))
}

#[test]
fn a_loop_whose_task_keeps_the_running_loop_across_an_await_closes_when_the_last_user_handle_goes()
{
    let (leaked, drops) = run(|| {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            drop(create_task(async {
                let _guard = CountsDrop;
                let lp = get_running_loop().unwrap();
                std::future::pending::<()>().await;
                drop(lp);
            }));
            yield_now().await;
        })
        .unwrap();
        drop(lp);
    });
    assert_eq!(
        drops, 1,
        "the pending task's destructor did not run: the loop never closed"
    );
    assert_eq!(
        leaked, 0,
        "{leaked} blocks leaked: the loop was never freed"
    );
}

#[test]
fn a_loop_whose_task_awaits_a_loop_future_closes_when_the_last_user_handle_goes() {
    let (leaked, drops) = run(|| {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            let fut = create_future::<u32>();
            drop(create_task(async move {
                let _guard = CountsDrop;
                let _ = fut.await;
            }));
            yield_now().await;
        })
        .unwrap();
        drop(lp);
    });
    assert_eq!(
        drops, 1,
        "the pending task's destructor did not run: the loop never closed"
    );
    assert_eq!(
        leaked, 0,
        "{leaked} blocks leaked: the loop was never freed"
    );
}

#[test]
fn a_loop_whose_main_task_kept_the_running_loop_closes_when_the_last_user_handle_goes() {
    // The main task leaves a child behind that holds the loop, as a server
    // task started with `create_task(serve(get_running_loop()))` would.
    let (leaked, drops) = run(|| {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            let lp = get_running_loop().unwrap();
            drop(create_task(async move {
                let _guard = CountsDrop;
                let _lp = lp;
                std::future::pending::<()>().await;
            }));
            yield_now().await;
        })
        .unwrap();
        drop(lp);
    });
    assert_eq!(
        drops, 1,
        "the pending task's destructor did not run: the loop never closed"
    );
    assert_eq!(
        leaked, 0,
        "{leaked} blocks leaked: the loop was never freed"
    );
}

/// What works today: a loop that no task holds closes with its last handle
/// (the control for the tests above).
#[test]
fn a_loop_whose_tasks_hold_no_handle_closes_when_the_last_user_handle_goes() {
    let (leaked, drops) = run(|| {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            drop(create_task(async {
                let _guard = CountsDrop;
                std::future::pending::<()>().await;
            }));
            yield_now().await;
        })
        .unwrap();
        drop(lp);
    });
    assert_eq!(drops, 1, "the pending task's destructor ran at close");
    assert_eq!(leaked, 0, "{leaked} blocks leaked");
}
