//! `Event`: set wakes every waiter, clear, wait on a set event.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use asyncio_sync::Event;
use common::{Rt, counting_waker, poll_once, poll_with, settle};

on_both!(set_wakes_every_waiter, |rt: Rt| async move {
    let event = Rc::new(Event::new());
    let woken = Rc::new(Cell::new(0));
    let handles: Vec<_> = (0..10)
        .map(|_| {
            let (event, woken) = (event.clone(), woken.clone());
            rt.spawn(async move {
                event.wait().await;
                woken.set(woken.get() + 1);
            })
        })
        .collect();
    settle(3).await;
    assert_eq!(woken.get(), 0, "nobody passes an unset event");
    event.set();
    for h in handles {
        h.await;
    }
    assert_eq!(woken.get(), 10);
});

on_both!(
    waiters_return_even_if_cleared_before_they_run,
    |rt: Rt| async move {
        let event = Rc::new(Event::new());
        let e = event.clone();
        let waiter = rt.spawn(async move { e.wait().await });
        settle(2).await;
        event.set();
        event.clear();
        waiter.await; // asyncio: a waiter woken by set() returns
        assert!(!event.is_set());
    }
);

#[test]
fn wait_on_a_set_event_returns_at_once_and_clear_blocks_again() {
    let event = Event::new();
    event.set();
    event.set(); // setting twice is harmless
    assert!(poll_once(std::pin::pin!(event.wait())).is_ready());
    event.clear();
    let mut wait = Box::pin(event.wait());
    let (w, woken) = counting_waker();
    assert!(poll_with(wait.as_mut(), &w).is_pending());
    event.set();
    assert_eq!(woken.get(), 1);
    assert!(poll_once(wait.as_mut()).is_ready());
}

#[test]
fn a_dropped_waiter_does_not_disturb_the_others() {
    let event = Event::new();
    let mut a = Box::pin(event.wait());
    let mut b = Box::pin(event.wait());
    let (wb, woken_b) = counting_waker();
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_with(b.as_mut(), &wb).is_pending());
    drop(a);
    event.set();
    assert_eq!(woken_b.get(), 1);
    assert!(poll_once(b.as_mut()).is_ready());
}
