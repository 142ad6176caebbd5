//! `call_soon` and done callbacks.

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_core::{EventLoop, ExceptionContext, create_task, yield_now};

#[test]
fn call_soon_runs_callbacks_in_fifo_order_and_cancel_skips_one() {
    let lp = EventLoop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..4 {
        let l = log.clone();
        let h = lp.call_soon(move || l.borrow_mut().push(i));
        if i == 2 {
            h.cancel();
            assert!(h.cancelled());
        }
    }
    lp.run_until_complete(yield_now()).unwrap();
    assert_eq!(*log.borrow(), [0, 1, 3]);
}

#[test]
fn done_callbacks_run_soon_after_completion_in_order() {
    let lp = EventLoop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.run_until_complete(async move {
        let t = create_task(async { 1 });
        for i in 0..3 {
            let l = l.clone();
            t.add_done_callback(move |task| {
                assert!(task.done());
                l.borrow_mut().push(i);
            });
        }
        yield_now().await; // t runs and completes; callbacks are scheduled
        yield_now().await; // callbacks run
        assert_eq!(*l.borrow(), [0, 1, 2]);
    })
    .unwrap();
    assert_eq!(log.borrow().len(), 3);
}

#[test]
fn remove_done_callback_stops_it_from_running() {
    let lp = EventLoop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    lp.run_until_complete(async move {
        let t = create_task(async {});
        let l1 = l.clone();
        let id = t.add_done_callback(move |_| l1.borrow_mut().push("removed"));
        let l2 = l.clone();
        t.add_done_callback(move |_| l2.borrow_mut().push("kept"));
        assert!(t.remove_done_callback(id));
        assert!(!t.remove_done_callback(id));
        t.await.unwrap();
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["kept"]);
}

#[test]
fn a_callback_added_to_a_done_task_is_scheduled_at_once() {
    let lp = EventLoop::new();
    let hit = Rc::new(RefCell::new(0));
    let h = hit.clone();
    lp.run_until_complete(async move {
        let t = create_task(async {});
        yield_now().await;
        assert!(t.done());
        t.add_done_callback(move |_| *h.borrow_mut() += 1);
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*hit.borrow(), 1);
}

#[test]
fn a_panicking_done_callback_is_reported_and_the_loop_goes_on() {
    let lp = EventLoop::new();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        s.borrow_mut().push(ctx.to_string())
    }));
    lp.run_until_complete(async {
        let t = create_task(async {});
        t.add_done_callback(|_| panic!("callback broke"));
        t.await.unwrap();
        yield_now().await;
    })
    .unwrap();
    assert_eq!(seen.borrow().len(), 1);
    assert!(seen.borrow()[0].contains("callback broke"));
    assert_eq!(lp.run_until_complete(async { 2 }).unwrap(), 2);
}
