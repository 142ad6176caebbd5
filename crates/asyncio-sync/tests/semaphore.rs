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

// After CPython's test_locks `test_acquire_fifo_order_2`: a task that was
// handed a permit but has not run yet keeps its place, so a task that
// releases and acquires again queues behind it.
on_both!(
    a_woken_waiter_is_not_overtaken_by_a_new_acquire,
    |rt: Rt| async move {
        let sem = Rc::new(Semaphore::new(1));
        let order = Rc::new(RefCell::new(Vec::new()));
        let (s, o) = (sem.clone(), order.clone());
        let t1 = rt.spawn(async move {
            s.acquire().await.forget();
            o.borrow_mut().push(1);
        });
        let (s, o) = (sem.clone(), order.clone());
        let t2 = rt.spawn(async move {
            s.acquire().await.forget();
            o.borrow_mut().push(2);
            s.release();
            s.acquire().await.forget();
            o.borrow_mut().push(4);
        });
        let (s, o) = (sem.clone(), order.clone());
        let t3 = rt.spawn(async move {
            s.acquire().await.forget();
            o.borrow_mut().push(3);
        });
        settle(3).await; // t1 holds the permit, t2 and t3 wait
        assert_eq!(*order.borrow(), [1]);
        sem.release(); // to t2
        sem.release(); // to t3
        t1.await;
        t2.await;
        t3.await;
        assert_eq!(*order.borrow(), [1, 2, 3, 4]);
    }
);

// After CPython's test_locks `test_acquire_fifo_order_4`: while the first
// waiter has been handed a permit but has not run, the semaphore is locked
// and new acquirers queue; when it runs it lets them through as the free
// permits allow, ahead of a task it creates then.
#[test]
fn a_granted_waiter_that_runs_wakes_those_queued_behind_it() {
    common::on_asyncio(|rt: Rt| async move {
        let sem = Rc::new(Semaphore::new(0));
        let order = Rc::new(RefCell::new(Vec::new()));
        // What the tasks saw, checked after the run.
        let seen = Rc::new(RefCell::new(Vec::new()));
        let t4 = Rc::new(RefCell::new(None));
        let (s, o, v, t4_slot, rt1) = (
            sem.clone(),
            order.clone(),
            seen.clone(),
            t4.clone(),
            rt.clone(),
        );
        let t1 = rt.spawn(async move {
            v.borrow_mut()
                .push(("t1 before", s.available_permits(), s.locked()));
            s.acquire().await.forget();
            // Both tasks queued behind t1 got their permits as it ran.
            v.borrow_mut()
                .push(("t1 after", s.available_permits(), s.locked()));
            let o4 = o.clone();
            *t4_slot.borrow_mut() = Some(rt1.spawn(async move { o4.borrow_mut().push(4) }));
            o.borrow_mut().push(1);
        });
        let (s, o, v) = (sem.clone(), order.clone(), seen.clone());
        let t2 = rt.spawn(async move {
            s.release(); // to t1
            s.release();
            s.release();
            // t1 has not run yet: it still counts, so the semaphore is locked.
            v.borrow_mut()
                .push(("t2 released", s.available_permits(), s.locked()));
            s.acquire().await.forget();
            o.borrow_mut().push(2);
        });
        let (s, o, v) = (sem.clone(), order.clone(), seen.clone());
        let t3 = rt.spawn(async move {
            s.acquire().await.forget();
            v.borrow_mut()
                .push(("t3 after", s.available_permits(), s.locked()));
            o.borrow_mut().push(3);
        });
        yield_now().await;
        // t1 was handed a permit; t2 and t3 queued behind it with two free.
        seen.borrow_mut()
            .push(("main", sem.available_permits(), sem.locked()));
        t1.await;
        t2.await;
        t3.await;
        let t4 = t4.borrow_mut().take().expect("t1 created t4");
        t4.await;
        assert_eq!(*order.borrow(), [1, 2, 3, 4]);
        assert_eq!(
            *seen.borrow(),
            [
                ("t1 before", 0, true),
                ("t2 released", 2, true),
                ("main", 2, true),
                ("t1 after", 0, true),
                ("t3 after", 0, true),
            ]
        );
    });
}

#[test]
fn locked_and_try_acquire_count_a_granted_waiter_that_has_not_run() {
    let sem = Semaphore::new(0);
    let (w, woken) = counting_waker();
    let mut first = Box::pin(sem.acquire());
    assert!(poll_with(first.as_mut(), &w).is_pending());
    sem.release(); // handed to `first`
    sem.release(); // free
    assert_eq!(woken.get(), 1);
    assert_eq!(sem.available_permits(), 1);
    assert!(sem.locked(), "the granted waiter has not run yet");
    assert!(
        sem.try_acquire().is_none(),
        "no overtaking the granted waiter"
    );
    let (w2, woken2) = counting_waker();
    let mut second = Box::pin(sem.acquire());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    assert_eq!(woken2.get(), 0, "queued behind the granted waiter");
    let Poll::Ready(p1) = poll_once(first.as_mut()) else {
        panic!("the granted waiter returns its permit")
    };
    assert_eq!(woken2.get(), 1, "running, it lets the next one through");
    assert!(poll_once(second.as_mut()).is_ready()); // its permit is dropped at once
    drop(p1);
    assert_eq!(sem.available_permits(), 2, "both permits are back");
}

#[test]
fn a_granted_waiter_dropped_before_running_lets_the_queued_one_through() {
    let sem = Semaphore::new(0);
    let mut first = Box::pin(sem.acquire());
    assert!(poll_once(first.as_mut()).is_pending());
    sem.release();
    let (w2, woken2) = counting_waker();
    let mut second = Box::pin(sem.acquire());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    drop(first);
    assert_eq!(woken2.get(), 1, "the permit is not lost");
    assert!(poll_once(second.as_mut()).is_ready());
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

#[test]
fn release_past_usize_max_panics_and_leaves_the_count() {
    let sem = Semaphore::new(usize::MAX);
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.release()))
        .expect_err("no room for one more permit");
    assert!(
        panic_message(err).contains("release only permits that were taken"),
        "the message says what to do"
    );
    assert_eq!(sem.available_permits(), usize::MAX);
}

#[test]
fn release_counts_permits_held_by_guards_so_their_return_cannot_overflow() {
    let sem = Semaphore::new(usize::MAX);
    let held = sem.try_acquire().unwrap();
    // One permit is free in count but held: releasing would make MAX + 1.
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.release()))
        .expect_err("the held permit still exists");
    assert!(panic_message(err).contains("usize::MAX"));
    assert_eq!(sem.available_permits(), usize::MAX - 1);
    drop(held);
    assert_eq!(sem.available_permits(), usize::MAX);
    // A forgotten permit no longer exists, so it can be released by hand.
    sem.try_acquire().unwrap().forget();
    sem.release();
    assert_eq!(sem.available_permits(), usize::MAX);
}

#[test]
fn bounded_semaphore_at_usize_max_refuses_release_with_an_error() {
    let sem = BoundedSemaphore::new(usize::MAX);
    assert_eq!(sem.release(), Err(ReleaseError));
    assert_eq!(sem.available_permits(), usize::MAX);
    let p = sem.try_acquire().unwrap();
    assert_eq!(sem.release(), Ok(()));
    drop(p); // already returned by hand: gives back nothing
    assert_eq!(sem.available_permits(), usize::MAX);
}
