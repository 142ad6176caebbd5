//! Timer and cross-thread workloads: asyncio-rs against tokio's
//! current-thread runtime (with its timer driver enabled).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// The `i`-th of a fixed pseudo-random sequence of delays in 0..=100 ms, the
/// same for every runtime.
pub fn delay(i: usize) -> Duration {
    let x = (i as u64)
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    Duration::from_micros((x >> 33) % 100_001)
}

/// A current-thread tokio runtime with timers.
pub fn tokio_rt_timers() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
}

/// `n` tasks, each sleeping [`delay`]`(i)`, all awaited.
pub fn asyncio_sleepers(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let tasks: Vec<_> = (0..n)
            .map(|i| asyncio::create_task(asyncio::sleep(delay(i))))
            .collect();
        for t in tasks {
            t.await.expect("a sleep cannot fail");
        }
    })
    .expect("the loop runs");
}

/// The same on tokio: `tokio::spawn` of `tokio::time::sleep`.
pub fn tokio_sleepers(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let handles: Vec<_> = (0..n)
            .map(|i| tokio::spawn(tokio::time::sleep(delay(i))))
            .collect();
        for h in handles {
            h.await.expect("a sleep cannot fail");
        }
    });
}

/// The deadline of the timeout scenarios: far enough never to be reached.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `n` times `timeout(10 s, ready(i))`, one after the other: each timeout is
/// set up, its future finishes at once, and it is torn down (issue 14's
/// `timeout_set_cancel`). Neither runtime needs to touch its timer structure
/// for a future that is ready when first polled; [`asyncio_timeout_armed`]
/// is the same with a future that suspends once.
pub fn asyncio_timeout_set_cancel(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let mut sum = 0usize;
        for i in 0..n {
            sum += asyncio::timeout(TIMEOUT, std::future::ready(i))
                .await
                .expect("ready before the deadline");
        }
        std::hint::black_box(sum);
    })
    .expect("the loop runs");
}

/// The same on tokio: `tokio::time::timeout`.
pub fn tokio_timeout_set_cancel(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let mut sum = 0usize;
        for i in 0..n {
            sum += tokio::time::timeout(TIMEOUT, std::future::ready(i))
                .await
                .expect("ready before the deadline");
        }
        std::hint::black_box(sum);
    });
}

/// A future that wakes itself and suspends once, then is ready: the same
/// cost on every runtime (no runtime's own `yield_now`).
#[derive(Debug, Default)]
pub struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// `n` times `timeout(10 s, PendingOnce)`: the timer is really armed (the
/// future suspends), then the future finishes and the timer is cancelled.
pub fn asyncio_timeout_armed(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        for _ in 0..n {
            asyncio::timeout(TIMEOUT, PendingOnce::default())
                .await
                .expect("ready before the deadline");
        }
    })
    .expect("the loop runs");
}

/// The same on tokio.
pub fn tokio_timeout_armed(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        for _ in 0..n {
            tokio::time::timeout(TIMEOUT, PendingOnce::default())
                .await
                .expect("ready before the deadline");
        }
    });
}

/// `n` trivial callbacks sent to the loop from another thread with
/// `call_soon_threadsafe`; returns when all have run.
pub fn asyncio_threadsafe(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        let handle = asyncio::get_running_loop()
            .expect("inside the loop")
            .handle();
        let count = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = futures::channel::oneshot::channel();
        let c = count.clone();
        let sender = std::thread::spawn(move || {
            for _ in 0..n {
                let c = c.clone();
                handle
                    .call_soon_threadsafe(move || {
                        c.fetch_add(1, Ordering::Relaxed);
                    })
                    .expect("the loop is open");
            }
            // FIFO: this runs after all of the above.
            handle
                .call_soon_threadsafe(move || tx.send(()).expect("the receiver waits"))
                .expect("the loop is open");
        });
        rx.await.expect("the sender finishes");
        sender.join().expect("the sender does not panic");
        assert_eq!(count.load(Ordering::Relaxed), n);
    })
    .expect("the loop runs");
}

/// The same on tokio: `Handle::spawn` of a trivial future from another thread.
pub fn tokio_threadsafe(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let handle = tokio::runtime::Handle::current();
        let count = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        let (c, d) = (count.clone(), done.clone());
        let sender = std::thread::spawn(move || {
            for _ in 0..n {
                let (c, d) = (c.clone(), d.clone());
                handle.spawn(async move {
                    if c.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        d.notify_one();
                    }
                });
            }
        });
        done.notified().await;
        sender.join().expect("the sender does not panic");
    });
}
