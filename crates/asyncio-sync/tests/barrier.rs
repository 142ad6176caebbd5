//! `Barrier`: indices, draining, reset, abort, parties, n_waiting, broken.

mod common;

use std::rc::Rc;
use std::task::Poll;

use asyncio_sync::{Barrier, BrokenBarrierError, ZeroPartiesError};
use common::{Rt, counting_waker, poll_once, poll_with, settle};

on_both!(each_cycle_hands_out_distinct_indices, |rt: Rt| async move {
    let parties = 5;
    let barrier = Rc::new(Barrier::new(parties).unwrap());
    let handles: Vec<_> = (0..parties)
        .map(|_| {
            let b = barrier.clone();
            rt.spawn(async move {
                let mut got = Vec::new();
                for _ in 0..3 {
                    got.push(b.wait().await.unwrap());
                }
                got
            })
        })
        .collect();
    let mut per_round = vec![Vec::new(); 3];
    for h in handles {
        for (round, index) in h.await.into_iter().enumerate() {
            per_round[round].push(index);
        }
    }
    for mut indices in per_round {
        indices.sort();
        assert_eq!(indices, (0..parties).collect::<Vec<_>>());
    }
    assert_eq!(barrier.n_waiting(), 0);
    assert!(!barrier.broken());
});

on_both!(
    nobody_passes_before_all_parties_arrive,
    |rt: Rt| async move {
        let barrier = Rc::new(Barrier::new(3).unwrap());
        let (b1, b2) = (barrier.clone(), barrier.clone());
        let first = rt.spawn(async move { b1.wait().await });
        let second = rt.spawn(async move { b2.wait().await });
        settle(3).await;
        assert_eq!(barrier.n_waiting(), 2);
        // The last to arrive gets parties - 1, as in asyncio.
        assert_eq!(barrier.wait().await, Ok(2));
        let mut got = [first.await.unwrap(), second.await.unwrap()];
        got.sort();
        assert_eq!(got, [0, 1]);
    }
);

#[test]
fn tasks_arriving_while_it_drains_wait_for_the_next_cycle() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    let mut b = Box::pin(barrier.wait());
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Ok(1))); // trips the barrier
    // `a` has been released but has not returned yet: the barrier drains.
    assert_eq!(barrier.n_waiting(), 0);
    let (wc, woken_c) = counting_waker();
    let (wd, woken_d) = counting_waker();
    let mut c = Box::pin(barrier.wait());
    let mut d = Box::pin(barrier.wait());
    assert!(poll_with(c.as_mut(), &wc).is_pending());
    assert!(
        poll_with(d.as_mut(), &wd).is_pending(),
        "d alone would have tripped a filling barrier"
    );
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(0)));
    // The last of the old cycle left: c and d are admitted to form the next
    // one, and count once they run (asyncio's `_block` returns then). Woken
    // together they would run one after the other: c, the first, is woken,
    // and when it runs both arrive in order, so d trips the barrier.
    assert_eq!(woken_c.get(), 1);
    assert_eq!(barrier.n_waiting(), 0);
    assert_eq!(woken_d.get(), 0, "d has not run: c goes first");
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(woken_d.get(), 1, "the batch arrived: d, the last, tripped");
    assert_eq!(barrier.n_waiting(), 0, "tripped: draining");
    assert_eq!(poll_once(d.as_mut()), Poll::Ready(Ok(1)));
    assert_eq!(poll_once(c.as_mut()), Poll::Ready(Ok(0)));
}

#[test]
fn a_task_arriving_before_the_admitted_batch_has_run_comes_first() {
    let barrier = Barrier::new(3).unwrap();
    let mut a = Box::pin(barrier.wait());
    let mut b = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(
        poll_once(Box::pin(barrier.wait()).as_mut()),
        Poll::Ready(Ok(2))
    );
    // Draining: d and e wait for the next cycle.
    let (wd, woken_d) = counting_waker();
    let (we, woken_e) = counting_waker();
    let mut d = Box::pin(barrier.wait());
    let mut e = Box::pin(barrier.wait());
    assert!(poll_with(d.as_mut(), &wd).is_pending());
    assert!(poll_with(e.as_mut(), &we).is_pending());
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(0)));
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Ok(1)));
    // The last one left: d and e are admitted, and have not run yet.
    assert_eq!(woken_d.get(), 1);
    // f arrives before them (as the task that left last, waiting again,
    // would): it is the first of the new cycle.
    let mut f = Box::pin(barrier.wait());
    assert!(poll_once(f.as_mut()).is_pending());
    assert_eq!(barrier.n_waiting(), 1);
    // d runs: d, then e, arrive; e completes the cycle and trips it.
    assert!(poll_with(d.as_mut(), &wd).is_pending());
    assert_eq!(woken_e.get(), 1);
    assert_eq!(poll_with(e.as_mut(), &we), Poll::Ready(Ok(2)));
    assert_eq!(poll_once(f.as_mut()), Poll::Ready(Ok(0)));
    assert_eq!(poll_with(d.as_mut(), &wd), Poll::Ready(Ok(1)));
    assert_eq!(barrier.n_waiting(), 0);
}

#[test]
fn the_admitted_batch_still_arrives_when_its_first_task_is_dropped_before_it_ran() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(
        poll_once(Box::pin(barrier.wait()).as_mut()),
        Poll::Ready(Ok(1))
    );
    let (wc, woken_c) = counting_waker();
    let (wd, woken_d) = counting_waker();
    let mut c = Box::pin(barrier.wait());
    let mut d = Box::pin(barrier.wait());
    assert!(poll_with(c.as_mut(), &wc).is_pending());
    assert!(poll_with(d.as_mut(), &wd).is_pending());
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(0)));
    assert_eq!(
        (woken_c.get(), woken_d.get()),
        (1, 0),
        "only the first was woken"
    );
    // c is cancelled before it ran: d is woken, and arrives when it runs.
    drop(c);
    assert_eq!(woken_d.get(), 1, "d is not stranded");
    assert!(poll_with(d.as_mut(), &wd).is_pending());
    assert_eq!(barrier.n_waiting(), 1);
    assert_eq!(
        poll_once(Box::pin(barrier.wait()).as_mut()),
        Poll::Ready(Ok(1))
    );
    assert_eq!(poll_with(d.as_mut(), &wd), Poll::Ready(Ok(0)));
}

// After CPython's test_locks `test_reset_barrier_while_tasks_draining`: the
// last task to leave a tripped barrier resets it while the others already
// wait again; they were not counted yet, so nobody is broken, and every task
// passes the next two cycles.
on_both!(
    a_reset_by_the_last_task_to_leave_breaks_nobody_waiting_for_the_next_cycle,
    |rt: Rt| async move {
        const N: usize = 5;
        let barrier = Rc::new(Barrier::new(N).unwrap());
        let left = Rc::new(std::cell::Cell::new(0));
        // Each task's outcomes, recorded when it ends (before the fix one
        // task stayed stuck: the run is bounded, and checked afterwards).
        let ended = Rc::new(std::cell::RefCell::new(Vec::new()));
        for _ in 0..N {
            let (b, left, ended) = (barrier.clone(), left.clone(), ended.clone());
            let task = rt.spawn(async move {
                let mut outcomes = Vec::new();
                outcomes.push(b.wait().await.is_ok());
                left.set(left.get() + 1);
                if left.get() == N {
                    // The last one out resets, then waits again.
                    b.reset();
                }
                outcomes.push(b.wait().await.is_ok());
                outcomes.push(b.wait().await.is_ok());
                ended.borrow_mut().push(outcomes);
            });
            task.forget();
        }
        settle(20 * N).await;
        assert_eq!(
            *ended.borrow(),
            vec![vec![true, true, true]; N],
            "every task passed all three waits, none broken"
        );
        assert!(!barrier.broken());
        assert_eq!(barrier.n_waiting(), 0);
    }
);

#[test]
fn a_task_queued_while_draining_that_has_not_run_is_not_broken_by_reset_nor_counted() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    let mut c = Box::pin(barrier.wait());
    assert!(poll_once(c.as_mut()).is_pending(), "queued while draining");
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(0))); // the last one leaves
    barrier.reset();
    assert!(!barrier.broken());
    assert!(poll_once(c.as_mut()).is_pending(), "joined, not broken");
    assert_eq!(barrier.n_waiting(), 1);
    // A reset now breaks it: it had joined the cycle.
    barrier.reset();
    assert_eq!(poll_once(c.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
    // Dropping a queued task after it was admitted loses nothing either.
    let mut d = Box::pin(barrier.wait());
    assert!(poll_once(d.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    let mut e = Box::pin(barrier.wait());
    assert!(poll_once(e.as_mut()).is_pending());
    assert_eq!(poll_once(d.as_mut()), Poll::Ready(Ok(0)));
    drop(e); // admitted, never ran
    assert_eq!(barrier.n_waiting(), 0);
    let mut f = Box::pin(barrier.wait());
    assert!(poll_once(f.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    assert_eq!(poll_once(f.as_mut()), Poll::Ready(Ok(0)));
}

#[test]
fn abort_reaches_a_task_admitted_after_draining() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    let mut c = Box::pin(barrier.wait());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Ok(0)));
    barrier.abort();
    assert_eq!(poll_once(c.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
}

#[test]
fn reset_breaks_the_waiters_and_starts_over() {
    let barrier = Barrier::new(3).unwrap();
    let mut a = Box::pin(barrier.wait());
    let mut b = Box::pin(barrier.wait());
    let (wa, woken_a) = counting_waker();
    assert!(poll_with(a.as_mut(), &wa).is_pending());
    assert!(poll_once(b.as_mut()).is_pending());
    barrier.reset();
    assert_eq!(woken_a.get(), 1);
    assert!(!barrier.broken(), "reset is not abort");
    // Until the broken waiters leave, newcomers wait.
    let mut c = Box::pin(barrier.wait());
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
    // The barrier is usable again: c, woken, joins when it runs, and two
    // more trip it.
    assert_eq!(barrier.n_waiting(), 0);
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(barrier.n_waiting(), 1);
    let mut d = Box::pin(barrier.wait());
    assert!(poll_once(d.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(2))
    );
    assert_eq!(poll_once(c.as_mut()), Poll::Ready(Ok(0)));
    assert_eq!(poll_once(d.as_mut()), Poll::Ready(Ok(1)));
}

#[test]
fn abort_breaks_current_and_later_waits_until_reset() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    barrier.abort();
    assert!(barrier.broken());
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Err(BrokenBarrierError))
    );
    assert_eq!(barrier.n_waiting(), 0);
    barrier.reset();
    assert!(!barrier.broken());
    let mut b = Box::pin(barrier.wait());
    assert!(poll_once(b.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Ok(0)));
}

#[test]
fn abort_reaches_released_tasks_that_have_not_returned() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    barrier.abort();
    assert_eq!(poll_once(a.as_mut()), Poll::Ready(Err(BrokenBarrierError)));
}

#[test]
fn a_dropped_waiter_leaves_the_cycle() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(barrier.n_waiting(), 1);
    drop(a);
    assert_eq!(barrier.n_waiting(), 0);
    let mut b = Box::pin(barrier.wait());
    assert!(
        poll_once(b.as_mut()).is_pending(),
        "the dropped waiter does not count"
    );
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    assert_eq!(poll_once(b.as_mut()), Poll::Ready(Ok(0)));
}

#[test]
fn a_released_waiter_dropped_before_returning_still_lets_the_next_cycle_fill() {
    let barrier = Barrier::new(2).unwrap();
    let mut a = Box::pin(barrier.wait());
    assert!(poll_once(a.as_mut()).is_pending());
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    let mut c = Box::pin(barrier.wait());
    assert!(poll_once(c.as_mut()).is_pending());
    drop(a); // released but cancelled before it returned
    assert!(poll_once(c.as_mut()).is_pending());
    assert_eq!(barrier.n_waiting(), 1, "c now fills the new cycle");
    assert_eq!(
        poll_once(std::pin::pin!(barrier.wait())),
        Poll::Ready(Ok(1))
    );
    assert_eq!(poll_once(c.as_mut()), Poll::Ready(Ok(0)));
}

#[test]
fn zero_parties_is_an_error_and_one_party_never_waits() {
    assert_eq!(Barrier::new(0).unwrap_err(), ZeroPartiesError);
    let barrier = Barrier::new(1).unwrap();
    assert_eq!(barrier.parties(), 1);
    for _ in 0..3 {
        assert_eq!(
            poll_once(std::pin::pin!(barrier.wait())),
            Poll::Ready(Ok(0))
        );
    }
}
