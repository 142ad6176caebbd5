//! Review of issue 24's change (branch review24), suspicion (6): TaskGroup's
//! unsafe `Rc` counting now relies on `in_eager_step()` alone.
//!
//! Each test says whether it FAILS or PASSES as of ad7a131.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

use asyncio_core::{
    EventLoop, ExceptionContext, StartMode, TaskFactory, TaskOptions, TaskRef, create_task_with,
    yield_now,
};
use asyncio_structured::TaskGroup;

thread_local! {
    static DROPS: Cell<u32> = const { Cell::new(0) };
    static GROUP: RefCell<Option<TaskGroup>> = const { RefCell::new(None) };
    static OTHER: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

struct CountsDrop;

impl Drop for CountsDrop {
    fn drop(&mut self) {
        DROPS.with(|d| d.set(d.get() + 1));
    }
}

/// A create hook that, when armed, closes the loop kept in `OTHER`.
struct ClosesOtherLoop;

impl TaskFactory for ClosesOtherLoop {
    fn create(&self, _task: &TaskRef) -> StartMode {
        if ARMED.with(|a| a.replace(false)) {
            let other = OTHER.with(|o| o.borrow_mut().take()).unwrap();
            other.close().unwrap();
            drop(other);
        }
        StartMode::Eager
    }
}

/// PASSES (natively and under Miri). Loop A holds a counted, never-run
/// TaskGroup child; loop B's create hook closes A while one of B's tasks is
/// in its eager step (so `in_eager_step()` is true for the thread's current
/// task when `close()` starts). `close()` steps the child, which makes the
/// child current: it reports as counted, and the group is freed once.
#[test]
fn closing_a_loop_with_a_counted_child_from_another_loops_eager_step() {
    DROPS.with(|d| d.set(0));
    let a = EventLoop::new();
    a.set_exception_handler(Some(|_: &ExceptionContext| {}));
    a.run_until_complete(async {
        let tg = TaskGroup::new();
        drop(tg.create_task(async {
            let _c = CountsDrop;
            std::future::pending::<()>().await;
        }));
        GROUP.with(|g| *g.borrow_mut() = Some(tg));
    })
    .unwrap();
    OTHER.with(|o| *o.borrow_mut() = Some(a.clone()));
    drop(a);
    let b = EventLoop::new();
    b.set_exception_handler(Some(|_: &ExceptionContext| {}));
    b.set_task_factory(ClosesOtherLoop);
    b.run_until_complete(async {
        let t = create_task_with(
            async {
                // In this task's eager step: the next create_task's hook
                // closes loop A.
                ARMED.with(|a| a.set(true));
                drop(create_task_with(async {}, TaskOptions::new()));
                yield_now().await;
            },
            TaskOptions::new().eager_start(true),
        );
        let _ = t.await;
    })
    .unwrap();
    assert!(!ARMED.with(Cell::get), "the hook ran");
    // Never polled: the child's `_c` never existed.
    assert_eq!(DROPS.with(Cell::get), 0);
    let tg = GROUP.with(|g| g.borrow_mut().take()).unwrap();
    let s = format!("{tg:?}");
    drop(tg);
    assert!(
        s.contains("children: 0"),
        "the closed child was counted out: {s}"
    );
    b.close().unwrap();
}

/// A create hook that panics when armed.
struct PanicsWhenArmed;

impl TaskFactory for PanicsWhenArmed {
    fn create(&self, _task: &TaskRef) -> StartMode {
        if ARMED.with(|a| a.replace(false)) {
            panic!("create hook");
        }
        StartMode::Eager
    }
}

/// PASSES (natively and under Miri). A TaskGroup child whose create hook
/// panics, created from inside another child's eager step: the abandoned
/// child is not counted, the group joins, nothing leaks.
#[test]
fn a_child_abandoned_by_a_panicking_hook_inside_a_siblings_eager_step() {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &ExceptionContext| {}));
    lp.set_task_factory(PanicsWhenArmed);
    let out = lp
        .run_until_complete(async {
            let tg = TaskGroup::new();
            let tg2 = tg.handle();
            let first = tg.create_task(async move {
                ARMED.with(|a| a.set(true));
                let r = catch_unwind(AssertUnwindSafe(|| {
                    tg2.create_task(async {
                        let _c = CountsDrop;
                    })
                }));
                assert!(r.is_err());
                yield_now().await;
                1
            });
            let second = tg.create_task(async { 2 });
            let joined = tg.join().await.is_ok();
            let (f, s) = (first.await, second.await);
            (joined, f.ok(), s.ok())
        })
        .unwrap();
    assert!(out.0, "the group joined without failure");
    assert_eq!(out.1, Some(1));
    assert_eq!(out.2, Some(2));
    lp.close().unwrap();
}
