//! Panics are caught at the task boundary and reported when nobody looks.

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_core::{EventLoop, ExceptionContext, TaskError, create_task, yield_now};

mod common;

fn capture(lp: &EventLoop) -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        s.borrow_mut().push(ctx.to_string())
    }));
    seen
}

#[test]
fn a_panicking_task_ends_panicked_and_the_loop_goes_on() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            let bad = create_task(async { panic!("kaboom") });
            let good = create_task(async { 2 });
            (bad.await, good.await)
        })
        .unwrap();
    match out.0 {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "kaboom"),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(out.1, Ok(2));
}

#[test]
fn a_detached_task_that_panics_is_reported_to_the_exception_handler() {
    let lp = EventLoop::new();
    let seen = capture(&lp);
    lp.run_until_complete(async {
        drop(create_task(async {
            yield_now().await;
            panic!("nobody listens")
        }));
        yield_now().await;
        yield_now().await;
    })
    .unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].contains("Task exception was never retrieved"),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("nobody listens"), "{}", seen[0]);
}

#[test]
fn dropping_the_handle_of_a_failed_task_unseen_reports_it_once() {
    let lp = EventLoop::new();
    let seen = capture(&lp);
    lp.run_until_complete(async {
        let t = create_task(async { panic!("late") });
        yield_now().await;
        assert!(t.panicked());
        drop(t);
    })
    .unwrap();
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn an_awaited_failure_is_not_reported() {
    let lp = EventLoop::new();
    let seen = capture(&lp);
    lp.run_until_complete(async {
        let t = create_task(async { panic!("seen") });
        assert!(t.await.is_err());
    })
    .unwrap();
    assert!(seen.borrow().is_empty());
}

/// What the default handler prints is checked by the next test, in a child
/// process; this one checks that the loop survives its handler's panic.
#[test]
fn a_panicking_exception_handler_does_not_stop_the_loop() {
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &ExceptionContext| panic!("handler broke")));
    lp.run_until_complete(async {
        drop(create_task(async { panic!("x") }));
        yield_now().await;
    })
    .unwrap();
    assert_eq!(lp.run_until_complete(async { 9 }).unwrap(), 9);
}

/// The default handler prints one line per report on stderr: for a loop with
/// no handler, and as the fallback of a handler that panics (which reports
/// the handler's panic, then the original report). The test binary runs the
/// scenario as a child process (`libtest` would capture the output in-process)
/// and reads the child's stderr.
#[test]
#[cfg_attr(miri, ignore = "Miri cannot start processes")]
fn the_default_exception_handler_reports_on_stderr() {
    const NAME: &str = "the_default_exception_handler_reports_on_stderr";
    if common::child_mode(NAME) {
        let lp = EventLoop::new();
        lp.run_until_complete(async {
            drop(create_task(async { panic!("no handler installed") }));
            yield_now().await;
        })
        .unwrap();
        let lp = EventLoop::new();
        lp.set_exception_handler(Some(|_: &ExceptionContext| panic!("handler broke")));
        lp.run_until_complete(async {
            drop(create_task(async { panic!("the handler panics") }));
            yield_now().await;
        })
        .unwrap();
        return;
    }
    let (status, _, stderr) = common::run_child(NAME);
    assert!(status.success(), "{status}\n{stderr}");
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("asyncio: "))
        .collect();
    let expected = [
        "asyncio: Task exception was never retrieved (task 2 'Task-2'): panicked: no handler installed",
        "asyncio: Unhandled error in exception handler: panicked: handler broke",
        "asyncio: Task exception was never retrieved (task 2 'Task-2'): panicked: the handler panics",
    ];
    assert_eq!(reports, expected, "stderr:\n{stderr}");
}

#[test]
fn a_panic_in_the_main_future_is_resumed_by_run_until_complete() {
    let lp = EventLoop::new();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lp.run_until_complete(async { panic!("main failed") })
    }))
    .unwrap_err();
    assert_eq!(*err.downcast_ref::<&str>().unwrap(), "main failed");
    assert!(!lp.is_running());
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn a_panic_with_a_non_string_payload_has_a_placeholder_message() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async { create_task(async { std::panic::panic_any(42u8) }).await })
        .unwrap();
    let TaskError::Panicked(p) = out.unwrap_err() else {
        panic!()
    };
    assert_eq!(p.message(), "Box<dyn Any>");
    assert_eq!(*p.into_panic().downcast::<u8>().unwrap(), 42);
}
