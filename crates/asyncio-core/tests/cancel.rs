//! Cancellation: `cancel()` drops the task's future at its next suspension point.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_core::{EventLoop, TaskError, create_task, current_task, yield_now};

struct OnDrop(Rc<Cell<bool>>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn cancelling_a_waiting_task_runs_its_destructors_and_ends_cancelled() {
    let lp = EventLoop::new();
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let out = lp
        .run_until_complete(async move {
            let t = create_task(async move {
                let _guard = OnDrop(d);
                std::future::pending::<()>().await;
            });
            yield_now().await;
            assert!(t.cancel());
            assert!(
                !t.done(),
                "cancellation takes effect on the task's next turn"
            );
            t.await
        })
        .unwrap();
    assert!(dropped.get());
    assert!(matches!(out, Err(TaskError::Cancelled(_))));
}

#[test]
fn cancel_before_first_run_means_the_future_never_runs() {
    let lp = EventLoop::new();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.run_until_complete(async move {
        let t = create_task(async move { r.set(true) });
        t.cancel();
        assert!(t.await.unwrap_err().is_cancelled());
    })
    .unwrap();
    assert!(!ran.get());
}

#[test]
fn cancel_on_a_done_task_returns_false() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task(async {});
        yield_now().await;
        assert!(t.done());
        assert!(!t.cancel());
        assert!(!t.cancelled());
    })
    .unwrap();
}

#[test]
fn a_task_that_cancels_itself_stops_at_its_next_suspension_point() {
    let lp = EventLoop::new();
    let steps = Rc::new(RefCell::new(Vec::new()));
    let s = steps.clone();
    let t = lp.create_task(async move {
        s.borrow_mut().push(1);
        current_task().unwrap().cancel();
        s.borrow_mut().push(2); // still runs: no suspension yet
        yield_now().await;
        s.borrow_mut().push(3); // never runs
    });
    let r = lp.run_until_complete(t).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(*steps.borrow(), [1, 2]);
}

#[test]
fn a_destructor_that_panics_during_cancel_makes_the_task_fail_with_that_panic() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("boom in drop");
        }
    }
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let out = lp
        .run_until_complete(async {
            let t = create_task(async {
                let _b = Bomb;
                std::future::pending::<()>().await;
            });
            yield_now().await;
            t.cancel();
            t.await
        })
        .unwrap();
    match out {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "boom in drop"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // The loop keeps working.
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn cancelling_counts_requests_and_uncancel_withdraws_them() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task(async { 3 });
        assert_eq!(t.cancelling(), 0);
        t.cancel();
        t.cancel();
        assert_eq!(t.cancelling(), 2);
        assert_eq!(t.uncancel(), 1);
        assert_eq!(t.uncancel(), 0);
        assert_eq!(t.await, Ok(3), "a fully withdrawn cancel does not cancel");
    })
    .unwrap();
}

#[test]
fn cancelling_the_main_task_makes_run_until_complete_fail_cancelled() {
    let lp = EventLoop::new();
    let r = lp.run_until_complete(async {
        current_task().unwrap().cancel();
        yield_now().await;
        unreachable!("cancelled at the suspension point");
    });
    assert!(matches!(r, Err(asyncio_core::RunError::Cancelled(_))));
}

#[test]
fn cancel_with_hands_its_message_to_the_awaiter() {
    let lp = asyncio_core::EventLoop::new();
    let err = lp
        .run_until_complete(async {
            let t = asyncio_core::create_task(std::future::pending::<()>());
            asyncio_core::yield_now().await;
            assert!(t.cancel_with("closing time"));
            t.await.unwrap_err()
        })
        .unwrap();
    assert!(err.is_cancelled());
    assert_eq!(err.cancelled_message(), Some("closing time"));
    assert!(err.to_string().ends_with("closing time"), "{err}");
}

#[test]
fn a_plain_cancel_carries_no_message() {
    let lp = asyncio_core::EventLoop::new();
    let err = lp
        .run_until_complete(async {
            let t = asyncio_core::create_task(std::future::pending::<()>());
            t.cancel();
            t.await.unwrap_err()
        })
        .unwrap();
    assert_eq!(err.cancelled_message(), None);
    assert_eq!(
        err,
        asyncio_core::TaskError::Cancelled(asyncio_core::CancelledError::new())
    );
}

#[test]
fn the_first_cancel_message_is_kept_and_uncancel_forgets_it() {
    let lp = asyncio_core::EventLoop::new();
    let (first, after_uncancel) = lp
        .run_until_complete(async {
            let t = asyncio_core::create_task(std::future::pending::<()>());
            t.cancel_with("first");
            t.cancel_with("second");
            let first = t.await.unwrap_err();

            let u = asyncio_core::create_task(std::future::pending::<()>());
            u.cancel_with("withdrawn");
            assert_eq!(u.uncancel(), 0);
            asyncio_core::yield_now().await;
            assert!(!u.done(), "the withdrawn request was not acted on");
            u.cancel();
            (first, u.await.unwrap_err())
        })
        .unwrap();
    assert_eq!(first.cancelled_message(), Some("first"));
    assert_eq!(after_uncancel.cancelled_message(), None);
}
