//! `Lock`: mutual exclusion, FIFO hand-over, cancellation safety.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_sync::Lock;
use common::{Rt, counting_waker, poll_once, poll_with, settle, yield_now};

on_both!(waiters_get_the_lock_in_arrival_order, |rt: Rt| async move {
    let lock = Rc::new(Lock::new());
    let order = Rc::new(RefCell::new(Vec::new()));
    let held = lock.lock().await;
    let mut handles = Vec::new();
    for i in 0..5 {
        let (lock, order) = (lock.clone(), order.clone());
        handles.push(rt.spawn(async move {
            let _g = lock.lock().await;
            order.borrow_mut().push(i);
        }));
        settle(2).await; // each waiter is in line before the next arrives
    }
    assert!(order.borrow().is_empty(), "nobody passes a held lock");
    drop(held);
    for h in handles {
        h.await;
    }
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
    assert!(!lock.locked());
});

on_both!(a_newcomer_never_overtakes_a_waiter, |rt: Rt| async move {
    let lock = Rc::new(Lock::new());
    let held = lock.lock().await;
    let l = lock.clone();
    let waiter = rt.spawn(async move {
        let _g = l.lock().await;
        "waiter ran"
    });
    settle(2).await;
    drop(held);
    // Handed to the waiter, which has not run yet: still locked for others.
    assert!(lock.locked());
    assert!(lock.try_lock().is_none());
    assert_eq!(waiter.await, "waiter ran");
    assert!(lock.try_lock().is_some());
});

on_both!(
    holders_exclude_each_other_across_awaits,
    |rt: Rt| async move {
        let lock = Rc::new(Lock::with_value(0u32));
        let inside = Rc::new(Cell::new(0));
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (lock, inside) = (lock.clone(), inside.clone());
                rt.spawn(async move {
                    for _ in 0..10 {
                        let mut g = lock.lock().await;
                        inside.set(inside.get() + 1);
                        assert_eq!(inside.get(), 1, "two holders at once");
                        yield_now().await;
                        *g += 1;
                        inside.set(inside.get() - 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await;
        }
        assert_eq!(*lock.lock().await, 200);
    }
);

#[test]
fn a_waiter_dropped_in_line_leaves_it() {
    let lock = Lock::new();
    let held = lock.try_lock().unwrap();
    let mut first = Box::pin(lock.lock());
    let mut second = Box::pin(lock.lock());
    let (w2, woken2) = counting_waker();
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    drop(first);
    drop(held);
    assert_eq!(woken2.get(), 1, "the lock goes to the next waiter");
    assert!(poll_once(second.as_mut()).is_ready());
}

#[test]
fn a_waiter_dropped_after_the_hand_over_passes_the_lock_on() {
    let lock = Lock::new();
    let held = lock.try_lock().unwrap();
    let mut first = Box::pin(lock.lock());
    let mut second = Box::pin(lock.lock());
    let (w1, woken1) = counting_waker();
    let (w2, woken2) = counting_waker();
    assert!(poll_with(first.as_mut(), &w1).is_pending());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    drop(held);
    assert_eq!((woken1.get(), woken2.get()), (1, 0));
    // Cancelled after it was handed the lock, before it ran.
    drop(first);
    assert_eq!(woken2.get(), 1, "the hand-over is not lost");
    let guard = poll_once(second.as_mut());
    assert!(guard.is_ready());
    drop(guard);
    drop(second);
    assert!(!lock.locked(), "and nothing keeps the lock afterwards");
}

#[test]
fn dropping_the_last_handed_over_waiter_unlocks() {
    let lock = Lock::new();
    let held = lock.try_lock().unwrap();
    let mut waiter = Box::pin(lock.lock());
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(held);
    assert!(lock.locked());
    drop(waiter);
    assert!(!lock.locked());
}

#[test]
fn the_guard_gives_access_to_the_value() {
    let mut lock = Lock::with_value(vec![1]);
    lock.try_lock().unwrap().push(2);
    lock.get_mut().push(3);
    assert_eq!(lock.into_inner(), [1, 2, 3]);
}
