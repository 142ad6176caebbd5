//! The loop makes its poller, its wake-up fd and its signal wake-up only
//! when it first needs them, and everything that wakes a loop keeps working
//! whichever way it sleeps: parked (no poller yet) or in the poller.
#![cfg(all(target_os = "linux", not(miri)))]

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use asyncio_core::{EventLoop, IoRegistration, sleep, to_thread};

mod common;
use common::{LoopThread, PATIENCE, child_mode, run_child};

/// The open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("Linux /proc")
        .count()
}

/// Runs `f` on a thread of its own and waits for it at most [`PATIENCE`]: a
/// lost wake-up fails the test instead of hanging it.
fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PATIENCE)
        .expect("the loop was never woken (a lost wake-up), or its thread panicked")
}

/// Sends `signum` to this process.
fn kill_self(signum: i32) {
    // SAFETY: kill(2) with this process's id and a valid signal number has no
    // memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(libc::getpid(), signum) }, 0);
}

/// A future that completes once `count` reaches `total`; the callbacks that
/// count wake it through `waiter`.
fn until_count(
    count: Arc<AtomicUsize>,
    waiter: Arc<Mutex<Option<Waker>>>,
    total: usize,
) -> impl Future<Output = ()> {
    std::future::poll_fn(move |cx| {
        *waiter.lock().unwrap() = Some(cx.waker().clone());
        if count.load(Ordering::SeqCst) >= total {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
}

#[test]
fn a_loop_that_does_no_io_and_handles_no_signal_makes_no_file_descriptor() {
    const NAME: &str = "a_loop_that_does_no_io_and_handles_no_signal_makes_no_file_descriptor";
    if !child_mode(NAME) {
        // A child of its own: other tests' loops open descriptors meanwhile.
        let (status, out, err) = run_child(NAME);
        assert!(status.success(), "child failed: {out}\n{err}");
        assert!(out.contains("fds unchanged"), "child said: {out}\n{err}");
        return;
    }
    let before = open_fds();
    let lp = EventLoop::new();
    let handle = lp.handle();
    let during = lp
        .run_until_complete(async move {
            // A timer wait, a cross-thread call and a to_thread job: the loop
            // sleeps, parked, and is woken from other threads.
            sleep(Duration::from_millis(5)).await;
            let (tx, rx) = futures::channel::oneshot::channel();
            let t = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                handle.call_soon_threadsafe(move || tx.send(()).unwrap())
            });
            rx.await.unwrap();
            t.join().unwrap().unwrap();
            to_thread(|| 3).await.unwrap();
            open_fds()
        })
        .unwrap();
    lp.close().unwrap();
    drop(lp);
    assert_eq!(
        during, before,
        "the loop opened descriptors it never needed"
    );
    println!("fds unchanged: {before}");
}

#[test]
fn io_registered_after_the_loop_slept_parked_works_and_other_threads_still_wake_it() {
    let got = bounded(|| {
        let lp = EventLoop::new();
        let handle = lp.handle();
        let loop_thread = LoopThread::current();
        let got = lp
            .run_until_complete(async move {
                // First sleeps parked: no poller yet.
                sleep(Duration::from_millis(2)).await;
                let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                b.set_nonblocking(true).unwrap();
                // The first registration makes the poller.
                let reg = IoRegistration::new(b.as_raw_fd()).unwrap();
                // Now asleep in the poller: a cross-thread call wakes it.
                let (tx, rx) = futures::channel::oneshot::channel();
                let lt = loop_thread;
                let t = std::thread::spawn(move || {
                    lt.wait_until_parked();
                    handle.call_soon_threadsafe(move || tx.send(7).unwrap())
                });
                let seven = rx.await.unwrap();
                t.join().unwrap().unwrap();
                // And readiness wakes it too.
                let writer = std::thread::spawn(move || {
                    loop_thread.wait_until_parked();
                    std::io::Write::write_all(&mut a, b"x").unwrap();
                    a
                });
                reg.readable().await.unwrap();
                let _a = writer.join().unwrap();
                seven
            })
            .unwrap();
        lp.close().unwrap();
        got
    });
    assert_eq!(got, 7);
}

#[test]
fn a_signal_raised_before_the_loop_first_sleeps_is_not_lost() {
    bounded(|| {
        let lp = EventLoop::new();
        let waiter: Arc<Mutex<Option<Waker>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let (w, c) = (Arc::clone(&waiter), Arc::clone(&count));
        lp.add_signal_handler(libc::SIGWINCH, move || {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(w) = w.lock().unwrap().take() {
                w.wake();
            }
        })
        .unwrap();
        lp.run_until_complete(async move {
            // Handled on this thread at once, before the loop ever waited:
            // there is no wake-up fd to write to yet. No timer runs after:
            // only the signal can end the wait.
            // SAFETY: raise(3) has no memory-safety preconditions.
            unsafe { libc::raise(libc::SIGWINCH) };
            until_count(count, waiter, 1).await;
        })
        .unwrap();
        lp.close().unwrap();
    });
}

#[test]
fn a_signal_wakes_a_loop_asleep_with_no_io_and_no_timer() {
    bounded(|| {
        let lp = EventLoop::new();
        let waiter: Arc<Mutex<Option<Waker>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let (w, c) = (Arc::clone(&waiter), Arc::clone(&count));
        lp.add_signal_handler(libc::SIGURG, move || {
            c.fetch_add(1, Ordering::SeqCst);
            if let Some(w) = w.lock().unwrap().take() {
                w.wake();
            }
        })
        .unwrap();
        let loop_thread = LoopThread::current();
        let raiser = std::thread::spawn(move || {
            // Raised only once the loop sleeps.
            loop_thread.wait_until_parked();
            kill_self(libc::SIGURG);
        });
        lp.run_until_complete(until_count(count, waiter, 1))
            .unwrap();
        raiser.join().unwrap();
        lp.close().unwrap();
    });
}

/// Threads send calls in bursts with pauses, so the loop keeps running out
/// of work and going to sleep while calls arrive: every call runs.
fn storm(with_poller: bool) {
    const THREADS: usize = 4;
    const CALLS: usize = 20_000;
    let total = THREADS * CALLS;
    let ran = bounded(move || {
        let lp = EventLoop::new();
        let count = Arc::new(AtomicUsize::new(0));
        let waiter: Arc<Mutex<Option<Waker>>> = Arc::default();
        let senders: Vec<_> = (0..THREADS)
            .map(|i| {
                let handle = lp.handle();
                let (count, waiter) = (Arc::clone(&count), Arc::clone(&waiter));
                std::thread::spawn(move || {
                    for k in 0..CALLS {
                        let (count, waiter) = (Arc::clone(&count), Arc::clone(&waiter));
                        handle
                            .call_soon_threadsafe(move || {
                                if count.fetch_add(1, Ordering::SeqCst) + 1 == total
                                    && let Some(w) = waiter.lock().unwrap().take()
                                {
                                    w.wake();
                                }
                            })
                            .unwrap();
                        if k % (97 + i) == 0 {
                            std::thread::sleep(Duration::from_micros(20));
                        }
                    }
                })
            })
            .collect();
        let c = Arc::clone(&count);
        lp.run_until_complete(async move {
            let _keep = if with_poller {
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                b.set_nonblocking(true).unwrap();
                Some((IoRegistration::new(b.as_raw_fd()).unwrap(), a, b))
            } else {
                None
            };
            until_count(c, waiter, total).await;
        })
        .unwrap();
        for s in senders {
            s.join().unwrap();
        }
        lp.close().unwrap();
        count.load(Ordering::SeqCst)
    });
    assert_eq!(ran, total);
}

#[test]
fn a_storm_of_threadsafe_calls_on_a_parked_loop_loses_none() {
    storm(false);
}

#[test]
fn a_storm_of_threadsafe_calls_on_a_loop_in_its_poller_loses_none() {
    storm(true);
}
