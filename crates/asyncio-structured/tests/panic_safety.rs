//! Panic safety of TaskGroup children: a child's poll, its future's destructor
//! (when it is cancelled), its output's destructor and its context's values
//! may panic, under the eager factory's fast path and under the lazy default.
//! Afterwards the body is the current task again, `all_tasks()` lists no
//! finished task, the group reports what failed, and the loop closes,
//! reporting the rest through the exception handler. `ci/miri.sh` runs this
//! file under Miri's leak checker too.

use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use asyncio_core::{
    ContextVar, EventLoop, ExceptionContext, TaskRef, all_tasks, current_task, yield_now,
};
use asyncio_factory::eager_task_factory;
use asyncio_structured::{ChildFailure, TaskGroup};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boom(&'static str);

/// A value whose destructor panics with `"<name> drop"`.
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{} drop", self.0);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The child panics in its poll.
    Poll,
    /// The child waits forever and its destructor panics when a failing
    /// sibling makes the group cancel it.
    DropWhenCancelled,
    /// The child returns a value whose destructor panics when the loop drops
    /// the unawaited outcome.
    OutputDrop,
    /// The child sets a context variable to a value whose destructor panics.
    ContextValueDrop,
}

fn check_invariants(body: &TaskRef, what: &str) {
    assert_eq!(
        current_task().as_ref(),
        Some(body),
        "{what}: the body is current again"
    );
    for t in all_tasks().expect("inside the loop") {
        assert!(!t.done(), "{what}: all_tasks() lists a finished task {t:?}");
    }
}

fn quiet<R>(f: impl FnOnce() -> R) -> R {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(prev);
    match out {
        Ok(v) => v,
        Err(p) => match (p.downcast_ref::<String>(), p.downcast_ref::<&str>()) {
            (Some(m), _) => panic!("{m}"),
            (_, Some(m)) => panic!("{m}"),
            _ => std::panic::resume_unwind(p),
        },
    }
}

/// Runs one case; returns the group's failures (as text) and the reports.
fn run_case(eager: bool, fault: Fault, suspend_first: bool) -> (Vec<String>, Vec<String>) {
    let what = format!("eager={eager} / {fault:?} / suspend_first={suspend_first}");
    let lp = EventLoop::new();
    lp.set_task_cache_limit(0);
    if eager {
        lp.set_task_factory(eager_task_factory);
    }
    let reports = Rc::new(RefCell::new(Vec::new()));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        r.borrow_mut().push(ctx.to_string())
    }));
    let w = what.clone();
    let failures = lp
        .run_until_complete(async move {
            let body = current_task().expect("the body's task");
            let tg = TaskGroup::new();
            let var = ContextVar::<Rc<Bomb>>::new("bomb");
            let child = tg.create_fallible_task(async move {
                if suspend_first {
                    yield_now().await;
                }
                match fault {
                    Fault::Poll => panic!("child poll"),
                    Fault::DropWhenCancelled => {
                        let _bomb = Bomb("cancelled child");
                        std::future::pending::<()>().await;
                        Ok(None)
                    }
                    Fault::OutputDrop => Ok::<_, Boom>(Some(Bomb("output"))),
                    Fault::ContextValueDrop => {
                        var.set(Rc::new(Bomb("context value")));
                        Ok(None)
                    }
                }
            });
            check_invariants(&body, &format!("{w}, after create_task"));
            if fault == Fault::DropWhenCancelled {
                // A sibling fails: the group cancels the waiting child.
                let sibling = tg.create_fallible_task(async {
                    yield_now().await;
                    Err::<(), _>(Boom("sibling"))
                });
                // Already aborting if the child failed inside create_task.
                drop(sibling);
            }
            for _ in 0..3 {
                yield_now().await;
                check_invariants(&body, &format!("{w}, after a turn"));
            }
            drop(child);
            let out = tg.join().await;
            check_invariants(&body, &format!("{w}, after join"));
            match out {
                Ok(()) => Vec::new(),
                Err(group) => group
                    .exceptions()
                    .iter()
                    .map(|f| match f {
                        ChildFailure::Error { error, .. } => error.to_string(),
                        ChildFailure::Panic { panic, .. } => format!("panic: {}", panic.message()),
                        other => other.to_string(),
                    })
                    .collect(),
            }
        })
        .unwrap_or_else(|e| panic!("{what}: run failed: {e}"));
    assert!(current_task().is_none(), "{what}: nothing current outside");
    assert_eq!(lp.close(), Ok(()), "{what}: close completes");
    assert!(lp.handle().is_closed(), "{what}");
    let reports = reports.borrow().clone();
    (failures, reports)
}

#[test]
fn every_child_fault_leaves_the_group_and_the_loop_consistent() {
    quiet(|| {
        for eager in [true, false] {
            for fault in [
                Fault::Poll,
                Fault::DropWhenCancelled,
                Fault::OutputDrop,
                Fault::ContextValueDrop,
            ] {
                for suspend_first in [false, true] {
                    let what = format!("eager={eager} / {fault:?} / suspend_first={suspend_first}");
                    let (failures, reports) = run_case(eager, fault, suspend_first);
                    let reported = |needle: &str| reports.iter().any(|r| r.contains(needle));
                    match fault {
                        Fault::Poll => {
                            assert_eq!(failures, ["panic: child poll"], "{what}")
                        }
                        Fault::DropWhenCancelled => {
                            // The sibling's error first; then the cancelled
                            // child's destructor panic, as a failure of its own.
                            assert_eq!(failures.len(), 2, "{what}: {failures:?}");
                            assert_eq!(failures[0], "sibling", "{what}");
                            assert!(failures[1].starts_with("panic: "), "{what}: {failures:?}");
                        }
                        Fault::OutputDrop => {
                            assert!(failures.is_empty(), "{what}: {failures:?}");
                            assert!(reported("output drop"), "{what}: {reports:?}");
                        }
                        Fault::ContextValueDrop => {
                            assert!(failures.is_empty(), "{what}: {failures:?}");
                            assert!(reported("context value drop"), "{what}: {reports:?}");
                        }
                    }
                }
            }
        }
    });
}
