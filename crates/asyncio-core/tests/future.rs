//! `LoopFuture` (asyncio's `Future` object) and `Task::shared`: one result,
//! many awaiters.

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_core::{
    EventLoop, ExceptionContext, FutureError, InvalidStateError, create_future, create_task,
    yield_now,
};

#[derive(Debug, thiserror::Error)]
#[error("broken: {0}")]
struct Broken(&'static str);

#[test]
fn set_result_wakes_every_awaiter_with_its_own_copy() {
    let lp = EventLoop::new();
    let got = lp
        .run_until_complete(async {
            let fut = create_future::<String>();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let f = fut.clone();
                    create_task(async move { f.await.unwrap() })
                })
                .collect();
            yield_now().await;
            assert!(waiters.iter().all(|w| !w.done()), "they wait");
            fut.set_result("v".to_owned()).unwrap();
            let mut got = Vec::new();
            for w in waiters {
                got.push(w.await.unwrap());
            }
            assert_eq!(fut.result().unwrap(), "v");
            got
        })
        .unwrap();
    assert_eq!(got, ["v", "v", "v"]);
}

#[test]
fn a_future_is_set_once() {
    let lp = EventLoop::new();
    let fut = lp.create_future::<u8>();
    assert!(matches!(
        fut.result(),
        Err(FutureError::InvalidState(InvalidStateError::NotDone))
    ));
    fut.set_result(1).unwrap();
    assert_eq!(fut.set_result(2), Err(InvalidStateError::AlreadyDone));
    assert!(fut.set_exception(Broken("late")).is_err());
    assert!(!fut.cancel());
    assert!(fut.done() && !fut.cancelled());
    assert_eq!(fut.result().unwrap(), 1);
}

#[test]
fn set_exception_reaches_every_awaiter() {
    let lp = EventLoop::new();
    let (a, b) = lp
        .run_until_complete(async {
            let fut = create_future::<u8>();
            let f = fut.clone();
            let a = create_task(f);
            yield_now().await;
            fut.set_exception(Broken("disk")).unwrap();
            (a.await.unwrap(), fut.clone().await)
        })
        .unwrap();
    for e in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(e.downcast_ref::<Broken>().unwrap().0, "disk");
    }
}

#[test]
fn cancel_with_gives_awaiters_the_message() {
    let lp = EventLoop::new();
    let e = lp
        .run_until_complete(async {
            let fut = create_future::<u8>();
            let f = fut.clone();
            let a = create_task(f);
            yield_now().await;
            assert!(fut.cancel_with("no longer needed"));
            assert!(fut.cancelled());
            a.await.unwrap()
        })
        .unwrap()
        .unwrap_err();
    match e {
        FutureError::Cancelled(c) => assert_eq!(c.message(), Some("no longer needed")),
        other => panic!("expected a cancellation, got {other:?}"),
    }
}

#[test]
fn done_callbacks_run_soon_after_in_order_and_can_be_removed() {
    let lp = EventLoop::new();
    let log: Rc<RefCell<Vec<String>>> = Rc::default();
    let l = log.clone();
    lp.run_until_complete(async move {
        let fut = create_future::<u8>();
        for name in ["first", "second", "removed"] {
            let l = l.clone();
            let id = fut.add_done_callback(move |f| {
                l.borrow_mut()
                    .push(format!("{name}: {}", f.result().unwrap()));
            });
            if name == "removed" {
                assert!(fut.remove_done_callback(id));
            }
        }
        fut.set_result(7).unwrap();
        assert!(l.borrow().is_empty(), "callbacks are scheduled, not called");
        yield_now().await;
        let l2 = l.clone();
        fut.add_done_callback(move |_| l2.borrow_mut().push("after done".into()));
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["first: 7", "second: 7", "after done"]);
}

#[test]
fn several_tasks_await_one_task_through_shared() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            let shared = create_task(async {
                yield_now().await;
                vec![1, 2, 3]
            })
            .shared();
            let others: Vec<_> = (0..2)
                .map(|_| {
                    let s = shared.clone();
                    create_task(async move { s.await.unwrap().len() })
                })
                .collect();
            let mine = shared.await.unwrap();
            let mut lens = Vec::new();
            for o in others {
                lens.push(o.await.unwrap());
            }
            (mine, lens)
        })
        .unwrap();
    assert_eq!(out, (vec![1, 2, 3], vec![3, 3]));
}

#[test]
fn a_shared_tasks_panic_reaches_every_awaiter_and_is_not_reported() {
    let lp = EventLoop::new();
    let reported = Rc::new(RefCell::new(0));
    let r = reported.clone();
    lp.set_exception_handler(Some(move |_: &ExceptionContext| *r.borrow_mut() += 1));
    let errs = lp
        .run_until_complete(async {
            let shared = create_task(async {
                if true {
                    panic!("shared failure");
                }
                0u8
            })
            .shared();
            let other = {
                let s = shared.clone();
                create_task(s)
            };
            (shared.await.unwrap_err(), other.await.unwrap().unwrap_err())
        })
        .unwrap();
    for e in [errs.0, errs.1] {
        assert_eq!(
            e.downcast_ref::<asyncio_core::PanicError>()
                .unwrap()
                .message(),
            "shared failure"
        );
    }
    assert_eq!(*reported.borrow(), 0);
}
