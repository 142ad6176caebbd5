//! Heavy randomized runs (ignored by default; `ci/stress.sh` runs them):
//! many tasks whose waiting futures are dropped at random points, checking
//! that no item, permit or lock hand-over is lost and nothing hangs.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;

use asyncio_sync::{Lock, Queue, Semaphore};
use common::yield_now;
use futures::future::{Either, select};

/// A small deterministic generator (xorshift), one per task.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs `fut` but gives up (dropping it) after `turns` turns of the loop.
async fn within<F: Future>(turns: u64, fut: F) -> Option<F::Output> {
    let deadline = async {
        for _ in 0..turns {
            yield_now().await;
        }
    };
    match select(pin!(fut), pin!(deadline)).await {
        Either::Left((out, _)) => Some(out),
        Either::Right(((), _)) => None,
    }
}

#[test]
#[ignore = "stress: run with ci/stress.sh"]
fn a_million_items_with_getters_and_putters_dropped_at_random() {
    const PRODUCERS: u64 = 50;
    const PER_PRODUCER: u64 = 20_000;
    const CONSUMERS: u64 = 20;
    let lp = asyncio_core::EventLoop::new();
    let seen = Rc::new(RefCell::new(vec![
        false;
        (PRODUCERS * PER_PRODUCER) as usize
    ]));
    let seen2 = seen.clone();
    lp.run_until_complete(async move {
        let q = Rc::new(Queue::new(8));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let q = q.clone();
                asyncio_core::create_task(async move {
                    let mut rng = Rng(p * 7919 + 1);
                    for i in 0..PER_PRODUCER {
                        let item = p * PER_PRODUCER + i;
                        // Keep trying until the item goes in: a dropped put
                        // drops its item, so retry with the same value.
                        while within(rng.below(4), q.put(item)).await.is_none() {}
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|c| {
                let (q, seen) = (q.clone(), seen2.clone());
                asyncio_core::create_task(async move {
                    let mut rng = Rng(c * 104_729 + 3);
                    loop {
                        match within(rng.below(4), q.get()).await {
                            None => {} // gave up waiting; the item stays in the queue
                            Some(Ok(item)) => {
                                let mut seen = seen.borrow_mut();
                                assert!(!seen[item as usize], "item {item} delivered twice");
                                seen[item as usize] = true;
                                drop(seen);
                                q.task_done().unwrap();
                            }
                            Some(Err(_)) => return,
                        }
                    }
                })
            })
            .collect();
        for p in producers {
            p.await.unwrap();
        }
        q.join().await;
        q.shutdown(false);
        for c in consumers {
            c.await.unwrap();
        }
    })
    .unwrap();
    let missing = seen.borrow().iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "items lost");
}

#[test]
#[ignore = "stress: run with ci/stress.sh"]
fn locks_and_permits_survive_random_cancellation() {
    let lp = asyncio_core::EventLoop::new();
    lp.run_until_complete(async {
        let lock = Rc::new(Lock::new());
        let sem = Rc::new(Semaphore::new(3));
        let inside_lock = Rc::new(Cell::new(0));
        let inside_sem = Rc::new(Cell::new(0));
        let done = Rc::new(Cell::new(0u64));
        let tasks: Vec<_> = (0..200u64)
            .map(|t| {
                let (lock, sem) = (lock.clone(), sem.clone());
                let (inside_lock, inside_sem, done) =
                    (inside_lock.clone(), inside_sem.clone(), done.clone());
                asyncio_core::create_task(async move {
                    let mut rng = Rng(t * 31 + 17);
                    for _ in 0..2_000 {
                        if rng.below(2) == 0 {
                            if let Some(_g) = within(rng.below(6), lock.lock()).await {
                                inside_lock.set(inside_lock.get() + 1);
                                assert_eq!(inside_lock.get(), 1);
                                yield_now().await;
                                inside_lock.set(inside_lock.get() - 1);
                                done.set(done.get() + 1);
                            }
                        } else if let Some(_p) =
                            within(rng.below(6), sem.acquire_many(1 + rng.below(2) as usize)).await
                        {
                            inside_sem.set(inside_sem.get() + 1);
                            assert!(inside_sem.get() <= 3);
                            yield_now().await;
                            inside_sem.set(inside_sem.get() - 1);
                            done.set(done.get() + 1);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(!lock.locked(), "a hand-over was lost: the lock is stuck");
        assert_eq!(sem.available_permits(), 3, "permits were lost");
        assert!(done.get() > 0);
    })
    .unwrap();
}
