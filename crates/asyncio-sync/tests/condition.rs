//! `Condition`: notify(n) in FIFO order, notify_all, wait_for, cancellation.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use asyncio_sync::{Condition, Lock};
use common::{Rt, counting_waker, poll_once, poll_with, settle};

fn spawn_waiters(
    rt: &Rt,
    cond: &Rc<Condition>,
    log: &Rc<RefCell<Vec<usize>>>,
    n: usize,
) -> Vec<futures::future::RemoteHandle<()>> {
    (0..n)
        .map(|i| {
            let (cond, log) = (cond.clone(), log.clone());
            rt.spawn(async move {
                let guard = cond.lock().await;
                let _guard = cond.wait(guard).await;
                log.borrow_mut().push(i);
            })
        })
        .collect()
}

on_both!(
    notify_wakes_n_waiters_longest_waiting_first,
    |rt: Rt| async move {
        let cond = Rc::new(Condition::new());
        let log = Rc::new(RefCell::new(Vec::new()));
        let handles = spawn_waiters(&rt, &cond, &log, 4);
        settle(4).await;
        cond.notify(2);
        settle(4).await;
        assert_eq!(*log.borrow(), [0, 1]);
        cond.notify(1);
        settle(4).await;
        assert_eq!(*log.borrow(), [0, 1, 2]);
        cond.notify_all();
        for h in handles {
            h.await;
        }
        assert_eq!(*log.borrow(), [0, 1, 2, 3]);
    }
);

on_both!(
    wait_releases_the_lock_and_takes_it_back,
    |rt: Rt| async move {
        let cond = Rc::new(Condition::with_value(0));
        let c = cond.clone();
        let waiter = rt.spawn(async move {
            let guard = c.lock().await;
            let guard = c.wait_for(guard, |v| *v >= 3).await;
            assert!(c.locked(), "wait_for returns with the lock held");
            *guard
        });
        for _ in 0..3 {
            settle(2).await;
            // The waiter does not hold the lock while it waits.
            let mut g = cond
                .try_lock()
                .expect("the lock is free while the waiter waits");
            *g += 1;
            drop(g);
            cond.notify_all();
        }
        assert_eq!(waiter.await, 3);
        assert!(!cond.locked());
    }
);

#[test]
fn a_notified_waiter_that_is_dropped_passes_the_notification_on() {
    let cond = Condition::new();
    let mut first = Box::pin(cond.wait(cond.try_lock().unwrap()));
    assert!(poll_once(first.as_mut()).is_pending());
    let mut second = Box::pin(cond.wait(cond.try_lock().unwrap()));
    let (w2, woken2) = counting_waker();
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    cond.notify(1);
    assert_eq!(woken2.get(), 0, "notify(1) wakes only the first");
    drop(first);
    assert_eq!(woken2.get(), 1, "the notification moves on");
    assert!(poll_once(second.as_mut()).is_ready());
}

#[test]
fn a_waiter_dropped_while_relocking_passes_the_notification_on() {
    let cond = Condition::new();
    let mut first = Box::pin(cond.wait(cond.try_lock().unwrap()));
    assert!(poll_once(first.as_mut()).is_pending());
    let mut second = Box::pin(cond.wait(cond.try_lock().unwrap()));
    let (w2, woken2) = counting_waker();
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    let blocker = cond.try_lock().unwrap();
    cond.notify(1);
    assert!(poll_once(first.as_mut()).is_pending(), "waits for the lock");
    drop(first);
    assert_eq!(woken2.get(), 1);
    drop(blocker);
    assert!(poll_once(second.as_mut()).is_ready());
}

#[test]
#[should_panic(expected = "guard of the condition's own lock")]
fn wait_with_another_locks_guard_panics() {
    let cond = Condition::new();
    let other = Lock::new();
    // A guard of another lock: the types match but the lock differs.
    drop(cond.wait(other.try_lock().unwrap()));
}

#[test]
fn conditions_can_share_a_lock() {
    let lock = Rc::new(Lock::new());
    let a = Condition::with_lock(lock.clone());
    let b = Condition::with_lock(lock.clone());
    let g = a.try_lock().unwrap();
    assert!(b.locked());
    drop(g);
    assert!(!b.locked());
}
