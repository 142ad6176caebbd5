//! The synchronization workloads: asyncio-sync's primitives on asyncio-rs's
//! loop against tokio's own primitives on its current-thread runtime (in a
//! `LocalSet`, so both sides run `!Send` tasks on one thread).

use std::hint::black_box;
use std::rc::Rc;

/// `n` items from one producer task to one consumer through a `Queue` of
/// `maxsize` 128; the producer shuts the queue down when it is done.
pub fn asyncio_queue(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let q = Rc::new(asyncio::Queue::new(128));
        let producer = {
            let q = q.clone();
            asyncio::create_task(async move {
                for i in 0..n {
                    q.put(i).await.expect("the queue is open");
                }
                q.shutdown(false);
            })
        };
        let mut sum = 0usize;
        while let Ok(v) = q.get().await {
            sum = sum.wrapping_add(v);
        }
        producer.await.expect("the producer cannot fail");
        black_box(sum);
    })
    .expect("the loop runs");
}

/// `n` items through `tokio::sync::mpsc` with capacity 128, one producer and
/// one consumer task.
pub fn tokio_mpsc_bounded(rt: &tokio::runtime::Runtime, n: usize) {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<usize>(128);
        let producer = tokio::task::spawn_local(async move {
            for i in 0..n {
                tx.send(i).await.expect("the consumer is alive");
            }
        });
        let mut sum = 0usize;
        while let Some(v) = rx.recv().await {
            sum = sum.wrapping_add(v);
        }
        producer.await.expect("the producer cannot fail");
        black_box(sum);
    });
}

/// `parties` tasks meeting at an `asyncio::Barrier`, `rounds` times.
pub fn asyncio_barrier(lp: &asyncio::EventLoop, parties: usize, rounds: usize) {
    lp.run_until_complete(async move {
        let barrier = Rc::new(asyncio::Barrier::new(parties).expect("parties > 0"));
        let tasks: Vec<_> = (0..parties)
            .map(|_| {
                let b = barrier.clone();
                asyncio::create_task(async move {
                    for _ in 0..rounds {
                        black_box(b.wait().await.expect("nobody breaks the barrier"));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("no party fails");
        }
    })
    .expect("the loop runs");
}

/// `parties` tasks meeting at a `tokio::sync::Barrier`, `rounds` times.
pub fn tokio_barrier(rt: &tokio::runtime::Runtime, parties: usize, rounds: usize) {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let barrier = Rc::new(tokio::sync::Barrier::new(parties));
        let handles: Vec<_> = (0..parties)
            .map(|_| {
                let b = barrier.clone();
                tokio::task::spawn_local(async move {
                    for _ in 0..rounds {
                        black_box(b.wait().await.is_leader());
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("no party fails");
        }
    });
}

/// [`tokio_barrier`] with `tokio::spawn` on the runtime itself (`Send` tasks,
/// no `LocalSet`).
pub fn tokio_barrier_spawn(rt: &tokio::runtime::Runtime, parties: usize, rounds: usize) {
    rt.block_on(async move {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(parties));
        let handles: Vec<_> = (0..parties)
            .map(|_| {
                let b = barrier.clone();
                tokio::spawn(async move {
                    for _ in 0..rounds {
                        black_box(b.wait().await.is_leader());
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("no party fails");
        }
    });
}

/// `tasks` tasks each taking a contended `asyncio::Lock` `times` times,
/// yielding to the others while they hold it.
pub fn asyncio_lock(lp: &asyncio::EventLoop, tasks: usize, times: usize) {
    lp.run_until_complete(async move {
        let lock = Rc::new(asyncio::Lock::with_value(0u64));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let l = lock.clone();
                asyncio::create_task(async move {
                    for _ in 0..times {
                        let mut g = l.lock().await;
                        *g += 1;
                        asyncio::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("no task fails");
        }
        assert_eq!(*lock.lock().await, (tasks * times) as u64);
    })
    .expect("the loop runs");
}

/// `tasks` tasks each taking a contended `tokio::sync::Mutex` `times` times,
/// yielding to the others while they hold it.
pub fn tokio_mutex(rt: &tokio::runtime::Runtime, tasks: usize, times: usize) {
    let local = tokio::task::LocalSet::new();
    local.block_on(rt, async move {
        let lock = Rc::new(tokio::sync::Mutex::new(0u64));
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let l = lock.clone();
                tokio::task::spawn_local(async move {
                    for _ in 0..times {
                        let mut g = l.lock().await;
                        *g += 1;
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.expect("no task fails");
        }
        assert_eq!(*lock.lock().await, (tasks * times) as u64);
    });
}
