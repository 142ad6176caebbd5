//! `LoopPool::run`: a loop per worker thread, values in worker order, and
//! `TaskGroup` semantics across loops (first failure cancels the rest,
//! failures aggregated, every loop closed on the way out).

use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncio_pool::{LoopPool, PoolError, PoolHandle};

/// Runs a pool run on its own thread, so that a worker that is never
/// cancelled fails the test instead of hanging it.
fn bounded<T: Send + 'static>(run: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(out) => out,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("LoopPool::run did not return: a worker was not cancelled")
        }
        Err(e) => panic!("the pool's thread panicked: {e}"),
    }
}

/// Counts its drops: a cancelled main task drops its future.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn run_returns_each_workers_value_in_worker_order() {
    let out = LoopPool::new()
        .workers(3)
        .run(|w| async move { Ok::<_, std::io::Error>(w.index() * 2) })
        .unwrap();
    assert_eq!(out, [0, 2, 4]);
}

#[test]
fn each_worker_runs_on_its_own_thread_a_future_that_need_not_be_send() {
    let caller = std::thread::current().id();
    let ids = LoopPool::new()
        .workers(2)
        .run(|_w| async move {
            // An Rc held across an await: the future is !Send.
            let here = Rc::new(std::thread::current().id());
            asyncio_core::sleep(Duration::from_millis(1)).await;
            assert!(asyncio_core::get_running_loop().is_ok());
            Ok::<_, std::io::Error>(*here)
        })
        .unwrap();
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| *id != caller));
}

#[test]
fn a_worker_that_panics_cancels_the_others_and_the_error_names_it_and_keeps_the_message() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let err = bounded(move || {
        LoopPool::new()
            .workers(3)
            .run(move |w| {
                let guard = DropCount(d.clone());
                async move {
                    let _guard = guard;
                    if w.index() == 1 {
                        asyncio_core::sleep(Duration::from_millis(1)).await;
                        panic!("boom in worker one");
                    }
                    std::future::pending::<()>().await;
                }
            })
            .unwrap_err()
    });
    let failures = err.failures();
    assert_eq!(failures.len(), 1, "{err}");
    assert_eq!(failures[0].worker(), 1);
    assert!(failures[0].is_panic());
    let text = err.to_string();
    assert!(
        text.contains("worker 1") && text.contains("boom in worker one"),
        "{text}"
    );
    // Every main future was dropped: the panicking one, and the two cancelled.
    assert_eq!(dropped.load(Ordering::SeqCst), 3);
}

#[test]
fn a_worker_that_never_finishes_is_cancelled_when_another_fails_and_run_returns() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let err = bounded(move || {
        LoopPool::new()
            .workers(2)
            .run(move |w| {
                let guard = DropCount(d.clone());
                async move {
                    if w.index() == 0 {
                        let _guard = guard;
                        std::future::pending::<()>().await;
                        Ok(())
                    } else {
                        Err(std::io::Error::other("disk on fire"))
                    }
                }
            })
            .unwrap_err()
    });
    assert!(matches!(err, PoolError::Failed(_)), "{err:?}");
    assert_eq!(err.failures()[0].worker(), 1);
    assert!(err.to_string().contains("disk on fire"), "{err}");
    // Worker 0's guard, dropped when its main task was cancelled, and the
    // one worker 1 dropped unused.
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn failures_of_several_workers_come_back_together() {
    // Both fail in their first poll, after meeting: neither can be cancelled
    // before it fails.
    let meet = Arc::new(std::sync::Barrier::new(2));
    let err = LoopPool::new()
        .workers(2)
        .run(|w| {
            let meet = meet.clone();
            async move {
                meet.wait();
                Err::<(), _>(format!("failure of {}", w.index()))
            }
        })
        .unwrap_err();
    let mut workers: Vec<usize> = err.failures().iter().map(|f| f.worker()).collect();
    workers.sort_unstable();
    assert_eq!(workers, [0, 1]);
    assert!(err.to_string().contains("2 sub-exceptions"), "{err}");
}

#[test]
fn a_panic_in_the_factory_is_the_workers_failure() {
    let err = LoopPool::new()
        .workers(2)
        .run(|w| {
            if w.index() == 0 {
                panic!("no future for worker zero");
            }
            std::future::pending::<()>()
        })
        .unwrap_err();
    assert_eq!(err.failures().len(), 1);
    assert_eq!(err.failures()[0].worker(), 0);
    assert!(err.to_string().contains("no future for worker zero"));
}

#[test]
fn zero_workers_is_an_error() {
    let err = LoopPool::new().workers(0).run(|_w| async {}).unwrap_err();
    assert!(matches!(err, PoolError::NoWorkers));
}

#[test]
fn run_inside_a_running_loop_is_an_error_not_a_deadlock() {
    let out = asyncio_core::EventLoop::new()
        .run_until_complete(async { LoopPool::new().workers(1).run(|_w| async {}) })
        .unwrap();
    assert!(matches!(out, Err(PoolError::Runtime(_))), "{out:?}");
}

#[test]
fn every_loop_is_closed_and_its_tasks_cancelled_when_run_returns() {
    let kept: Arc<Mutex<Option<PoolHandle>>> = Arc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (k, d) = (kept.clone(), dropped.clone());
    LoopPool::new()
        .workers(2)
        .run(move |w| {
            *k.lock().unwrap() = Some(w.pool().clone());
            let guard = DropCount(d.clone());
            async move {
                // A task left behind: the loop's close cancels it.
                drop(asyncio_core::create_task(async move {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                }));
                asyncio_core::yield_now().await;
            }
        })
        .unwrap();
    let pool = kept.lock().unwrap().take().unwrap();
    assert!((0..2).all(|i| pool.handle(i).is_closed()));
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
fn cancel_from_a_worker_cancels_every_main_task() {
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let err = bounded(move || {
        LoopPool::new()
            .workers(2)
            .run(move |w| {
                let guard = DropCount(d.clone());
                async move {
                    let _guard = guard;
                    if w.index() == 1 {
                        w.pool().cancel();
                    }
                    std::future::pending::<()>().await;
                }
            })
            .unwrap_err()
    });
    assert!(matches!(err, PoolError::Cancelled), "{err:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[test]
#[cfg(target_os = "linux")]
fn pinned_workers_each_run_on_one_cpu() {
    let cpus = LoopPool::new()
        .workers(2)
        .pin_to_cores(true)
        .run(|_w| async {
            // SAFETY: an all-zero cpu_set_t is the empty set, and the call
            // writes at most its size into it.
            let n = unsafe {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                assert_eq!(
                    libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set),
                    0
                );
                libc::CPU_COUNT(&set)
            };
            Ok::<_, std::io::Error>(n)
        })
        .unwrap();
    assert_eq!(cpus, [1, 1]);
}

/// Issue 28: `PoolHandle::stop` ends a pool cleanly, with no channel of the
/// user's own: every main task is cancelled (its destructors run) and `run`
/// returns `Ok` with the values of the workers that had finished.
#[test]
fn stop_cancels_every_main_task_and_run_returns_ok_with_the_finished_values() {
    let drops = Arc::new(AtomicUsize::new(0));
    let d = drops.clone();
    let out = bounded(move || {
        LoopPool::new().workers(3).run(move |w| {
            let d = d.clone();
            async move {
                match w.index() {
                    0 => Some(0usize),
                    1 => {
                        // Worker 0 finishes first; then this one stops the pool.
                        asyncio_core::sleep(Duration::from_millis(20)).await;
                        w.pool().stop();
                        std::future::pending::<()>().await;
                        None
                    }
                    _ => {
                        let _count = DropCount(d);
                        std::future::pending::<()>().await;
                        None
                    }
                }
                .ok_or(std::fmt::Error)
            }
        })
    });
    // Worker 0 may or may not have finished before the stop; its value is
    // the only one there can be.
    let values = out.expect("a stopped pool ends with Ok");
    assert!(values.is_empty() || values == [0], "{values:?}");
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "worker 2's future was dropped"
    );
}

/// Issue 28: a worker's error comes back typed, not only as text.
#[test]
fn a_workers_error_comes_back_typed() {
    #[derive(Debug, thiserror::Error)]
    #[error("bad port {0}")]
    struct BadPort(u16);
    let err = bounded(|| {
        LoopPool::new()
            .workers(2)
            .run(|w| async move {
                if w.index() == 1 {
                    Err(BadPort(80))
                } else {
                    Ok(())
                }
            })
            .unwrap_err()
    });
    let [asyncio_pool::WorkerFailure::Error { worker, error }] = err.failures() else {
        panic!("one failure expected: {err}");
    };
    assert_eq!(*worker, 1);
    assert_eq!(error.downcast_ref::<BadPort>().map(|b| b.0), Some(80));
    assert_eq!(error.message(), "bad port 80");
}

/// Issue 28: a plain thread awaits a `PoolTask` with `wait`, without a
/// `block_on` of its own.
#[test]
fn a_plain_thread_waits_for_a_pool_task() {
    let out = bounded(|| {
        LoopPool::new()
            .workers(2)
            .run(|w| async move {
                if w.index() != 0 {
                    return Ok(0);
                }
                let task = w
                    .pool()
                    .spawn_on(1, async {
                        asyncio_core::sleep(Duration::from_millis(5)).await;
                        7
                    })
                    .unwrap();
                let waiter = std::thread::spawn(move || task.wait());
                // Blocking this loop is fine here: the job runs on worker 1.
                waiter.join().expect("the waiting thread")
            })
            .unwrap()
    });
    assert_eq!(out, [7, 0]);
}

#[test]
fn pool_task_wait_on_a_loop_thread_panics_saying_to_await_instead() {
    let message = bounded(|| {
        LoopPool::new()
            .workers(1)
            .run(|w| async move {
                let task = w.pool().spawn_on(0, async { 1 }).unwrap();
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = task.wait();
                }));
                let payload = caught.expect_err("wait on a loop thread panics");
                Ok::<_, std::fmt::Error>(
                    payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default(),
                )
            })
            .unwrap()
    });
    assert!(
        message[0].contains("`.await` the PoolTask instead"),
        "{message:?}"
    );
}
