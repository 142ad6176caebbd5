//! Issue 24, finding 6: a `TaskGroup` child counts in its group from the
//! moment its `create_task` returned, so a child dropped before it ever ran
//! is told to the group (it was cancelled), whatever else happens on the
//! thread at that moment — in particular while an unrelated task is being
//! started (`in_task_start()`), as when another loop's `close()` runs from
//! inside a task factory's hook.
//!
//! The group's count of live children is what its `Debug` shows; leaks are
//! counted with a global allocator (the blocks this thread has allocated and
//! not freed, before and after a scenario).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::panic::catch_unwind;

use asyncio_core::{
    EventLoop, ExceptionContext, StartMode, TaskFactory, TaskRef, create_task, yield_now,
};
use asyncio_structured::TaskGroup;

struct Counting;

thread_local! {
    /// Blocks allocated minus blocks freed on this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// Set while the panic hook runs (what it allocates is its own).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Destructors of the children's futures that ran.
    static DROPS: Cell<u32> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are const-initialised thread-locals without destructors, which
// never allocate. (`realloc` keeps its default, which calls `alloc` and
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
    let tg = lp
        .run_until_complete(async {
            let tg = TaskGroup::new();
            drop(tg.create_task(std::future::pending::<()>()));
            drop(create_task(async {}));
            yield_now().await;
            tg
        })
        .unwrap();
    lp.close().unwrap();
    drop(tg);
    drop(lp);
}

/// Counts its drop.
struct CountsDrop;

impl Drop for CountsDrop {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

/// A factory whose `create` hook closes another loop (once).
struct ClosesAnotherLoop(RefCell<Option<EventLoop>>);

impl TaskFactory for ClosesAnotherLoop {
    fn create(&self, _task: &TaskRef) -> StartMode {
        let other = self.0.borrow_mut().take();
        if let Some(other) = other {
            other.close().unwrap();
        }
        StartMode::Lazy
    }
}

/// Creates a group on a loop with one child that never runs, closes the
/// loop (`close_from_a_factory_hook`: from inside another loop's
/// `create_task`), and returns the group's count of live children after the
/// close (as its `Debug` shows it), how many children's futures were
/// dropped, and the blocks leaked.
fn never_run_child_dropped_at_close(close_from_a_factory_hook: bool) -> (u32, u32, isize) {
    warm_up();
    DROPS.with(|d| d.set(0));
    let before = LIVE.with(Cell::get);
    let lp = EventLoop::new();
    let tg = lp
        .run_until_complete(async {
            let tg = TaskGroup::new();
            let guard = CountsDrop;
            drop(tg.create_task(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            }));
            // The main task ends before the child ever runs.
            tg
        })
        .unwrap();
    if close_from_a_factory_hook {
        let other = EventLoop::new();
        other.set_task_factory(ClosesAnotherLoop(RefCell::new(Some(lp.clone()))));
        other
            .run_until_complete(async {
                drop(create_task(async {}));
            })
            .unwrap();
        assert!(lp.is_closed(), "the hook closed the loop");
        other.close().unwrap();
        drop(other);
    } else {
        lp.close().unwrap();
    }
    let shown = format!("{tg:?}");
    let children: u32 = shown
        .split("children: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("the group's Debug shows its children");
    drop(shown);
    drop(tg);
    drop(lp);
    let leaked = LIVE.with(Cell::get) - before;
    (children, DROPS.with(Cell::get), leaked)
}

/// The control: closed from outside any task start, the never-run child is
/// told to its group and nothing leaks.
#[test]
fn a_never_run_child_dropped_at_close_is_no_longer_counted_by_its_group() {
    let (children, drops, leaked) = never_run_child_dropped_at_close(false);
    assert_eq!(drops, 1, "the child's future is dropped once");
    assert_eq!(children, 0, "the group still counts the dropped child");
    assert_eq!(leaked, 0, "{leaked} blocks leaked");
}

#[test]
fn a_never_run_child_dropped_while_another_loop_starts_a_task_is_no_longer_counted_by_its_group() {
    let (children, drops, leaked) = never_run_child_dropped_at_close(true);
    let mut problems = Vec::new();
    if drops != 1 {
        problems.push(format!(
            "the child's future was dropped {drops} times, not once"
        ));
    }
    if children != 0 {
        problems.push(format!(
            "the group still counts {children} child(ren): the dropped child was taken for \
             one dropped inside its own create_task, because another loop was starting a task"
        ));
    }
    if leaked != 0 {
        problems.push(format!(
            "{leaked} blocks leaked (the child's count of its group was never given back)"
        ));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
