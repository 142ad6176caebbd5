//! `Semaphore` and `BoundedSemaphore`: limits, FIFO, no starvation, errors.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_sync::{BoundedSemaphore, ReleaseError, Semaphore};
use common::{Rt, counting_waker, poll_once, poll_with, settle, yield_now};

on_both!(at_most_value_holders_at_once, |rt: Rt| async move {
    let sem = Rc::new(Semaphore::new(3));
    let inside = Rc::new(Cell::new(0));
    let peak = Rc::new(Cell::new(0));
    let handles: Vec<_> = (0..12)
        .map(|_| {
            let (sem, inside, peak) = (sem.clone(), inside.clone(), peak.clone());
            rt.spawn(async move {
                let _permit = sem.acquire().await;
                inside.set(inside.get() + 1);
                peak.set(peak.get().max(inside.get()));
                yield_now().await;
                inside.set(inside.get() - 1);
            })
        })
        .collect();
    for h in handles {
        h.await;
    }
    assert_eq!(peak.get(), 3);
    assert_eq!(sem.available_permits(), 3);
});

on_both!(permits_go_out_in_request_order, |rt: Rt| async move {
    let sem = Rc::new(Semaphore::new(0));
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut handles = Vec::new();
    for i in 0..4 {
        let (sem, order) = (sem.clone(), order.clone());
        handles.push(rt.spawn(async move {
            sem.acquire().await.forget();
            order.borrow_mut().push(i);
        }));
        settle(2).await;
    }
    for _ in 0..4 {
        sem.release();
    }
    for h in handles {
        h.await;
    }
    assert_eq!(*order.borrow(), [0, 1, 2, 3]);
});

#[test]
fn a_large_waiter_is_not_starved_by_small_ones() {
    let sem = Semaphore::new(2);
    let held = sem.try_acquire_many(2).unwrap();
    let (wb, woken_big) = counting_waker();
    let (ws, woken_small) = counting_waker();
    let mut big = Box::pin(sem.acquire_many(2));
    let mut small = Box::pin(sem.acquire());
    assert!(poll_with(big.as_mut(), &wb).is_pending());
    assert!(poll_with(small.as_mut(), &ws).is_pending());
    held.forget();
    sem.release();
    // One permit is free, but the big request is first in line.
    assert_eq!((woken_big.get(), woken_small.get()), (0, 0));
    assert!(
        sem.try_acquire().is_none(),
        "a newcomer does not jump the line"
    );
    sem.release();
    assert_eq!((woken_big.get(), woken_small.get()), (1, 0));
    let Poll::Ready(permit) = poll_once(big.as_mut()) else {
        panic!("the big request was granted")
    };
    assert_eq!(permit.permits(), 2);
    drop(permit);
    assert_eq!(woken_small.get(), 1);
    assert!(poll_once(small.as_mut()).is_ready());
}

use std::task::Poll;

#[test]
fn an_acquire_dropped_after_the_grant_gives_the_permit_to_the_next() {
    let sem = Semaphore::new(1);
    let held = sem.try_acquire().unwrap();
    let mut a = Box::pin(sem.acquire());
    let mut b = Box::pin(sem.acquire());
    let (wb, woken_b) = counting_waker();
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_with(b.as_mut(), &wb).is_pending());
    drop(held);
    assert_eq!(woken_b.get(), 0);
    drop(a); // granted, never ran
    assert_eq!(woken_b.get(), 1, "the permit is not lost");
    assert!(poll_once(b.as_mut()).is_ready());
}

#[test]
fn an_acquire_dropped_in_line_lets_a_smaller_one_behind_it_through() {
    let sem = Semaphore::new(1);
    let mut big = Box::pin(sem.acquire_many(2));
    let mut small = Box::pin(sem.acquire());
    let (ws, woken_small) = counting_waker();
    assert!(poll_once(big.as_mut()).is_pending());
    assert!(poll_with(small.as_mut(), &ws).is_pending());
    drop(big);
    assert_eq!(woken_small.get(), 1);
    assert!(poll_once(small.as_mut()).is_ready());
}

#[test]
fn locked_is_asyncios() {
    let sem = Semaphore::new(1);
    assert!(!sem.locked());
    let p = sem.try_acquire().unwrap();
    assert!(sem.locked());
    drop(p);
    let mut waiter = Box::pin(sem.acquire_many(2));
    assert!(poll_once(waiter.as_mut()).is_pending());
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.locked(), "a permit is free but a task waits");
}

#[test]
fn a_plain_semaphore_may_be_released_past_its_start() {
    let sem = Semaphore::new(0);
    sem.release();
    sem.release();
    assert_eq!(sem.available_permits(), 2);
}

#[test]
fn bounded_semaphore_over_release_is_an_error() {
    let sem = BoundedSemaphore::new(2);
    assert_eq!(sem.release(), Err(ReleaseError));
    sem.try_acquire().unwrap().forget();
    assert_eq!(sem.release(), Ok(()));
    assert_eq!(sem.release(), Err(ReleaseError));
    assert_eq!(sem.available_permits(), 2);
    // A permit returned by hand and then dropped does not overshoot.
    let p = sem.try_acquire().unwrap();
    assert_eq!(sem.release(), Ok(()));
    drop(p);
    assert_eq!(sem.available_permits(), 2);
    assert_eq!(
        ReleaseError.to_string(),
        "BoundedSemaphore released too many times"
    );
}

#[test]
fn bounded_release_counts_permits_in_flight() {
    let sem = BoundedSemaphore::new(1);
    sem.try_acquire().unwrap().forget();
    let mut waiter = Box::pin(sem.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    assert_eq!(sem.release(), Ok(())); // granted to the waiter
    assert_eq!(
        sem.release(),
        Err(ReleaseError),
        "the permit is in flight, not free"
    );
    assert!(poll_once(waiter.as_mut()).is_ready());
}

#[test]
#[should_panic(expected = "can never succeed")]
fn bounded_acquire_many_past_the_bound_panics() {
    let sem = BoundedSemaphore::new(1);
    drop(sem.acquire_many(2));
}
