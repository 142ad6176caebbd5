//! Other threads and the loop: LoopHandle (call_soon_threadsafe,
//! run_coroutine_threadsafe) and the default executor (to_thread,
//! run_in_executor).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use asyncio_core::{
    ContextVar, EventLoop, ExceptionContext, RuntimeError, TaskError, TimeoutError, copy_context,
    sleep, to_thread,
};

mod common;
use common::{Checks, LoopThread, PATIENCE, eventually};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn call_soon_threadsafe_wakes_a_sleeping_loop() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let loop_thread = LoopThread::current();
    let got = lp
        .run_until_complete(async move {
            let (tx, rx) = futures::channel::oneshot::channel();
            let (go_tx, go_rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                // Sent once the main task below waits on `rx`; then the loop
                // has nothing to do and goes to sleep in epoll.
                go_rx.recv_timeout(PATIENCE).expect("the main task waits");
                loop_thread.wait_until_parked();
                handle
                    .call_soon_threadsafe(move || {
                        tx.send(std::thread::current().id()).unwrap();
                    })
                    .unwrap();
            });
            // Runs after this task's poll, which registers its waker with `rx`.
            asyncio_core::get_running_loop()
                .unwrap()
                .call_soon(move || go_tx.send(()).unwrap());
            let ran_on = rx.await.unwrap();
            t.join().unwrap();
            ran_on
        })
        .unwrap();
    assert_eq!(
        got,
        std::thread::current().id(),
        "the callback runs on the loop's thread"
    );
}

#[test]
fn many_threadsafe_calls_all_run_in_order() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let checks = Checks::new();
    let counter = Arc::new(AtomicUsize::new(0));
    let c = checks.clone();
    lp.run_until_complete(async move {
        let (tx, rx) = futures::channel::oneshot::channel();
        let t = std::thread::spawn(move || {
            for i in 0..n {
                let (counter, c) = (counter.clone(), c.clone());
                handle
                    .call_soon_threadsafe(move || {
                        c.check(format!("call {i}"), || {
                            assert_eq!(counter.fetch_add(1, Ordering::Relaxed), i, "FIFO");
                        });
                    })
                    .unwrap();
            }
            handle
                .call_soon_threadsafe(move || tx.send(()).unwrap())
                .unwrap();
        });
        rx.await.unwrap();
        t.join().unwrap();
    })
    .unwrap();
    // Every call ran, once, in the order it was made, and its check passed.
    let expected: Vec<String> = (0..n).map(|i| format!("call {i}")).collect();
    checks.assert_ran(&expected);
}

#[test]
fn a_panicking_threadsafe_callback_is_reported_and_the_loop_goes_on() {
    let lp = EventLoop::new();
    let reported = Rc::new(Cell::new(false));
    let r = reported.clone();
    lp.set_exception_handler(Some(move |ctx: &ExceptionContext| {
        assert!(
            ctx.panic
                .as_ref()
                .unwrap()
                .message()
                .contains("remote boom")
        );
        r.set(true);
    }));
    let handle = lp.handle();
    std::thread::spawn(move || {
        handle
            .call_soon_threadsafe(|| panic!("remote boom"))
            .unwrap()
    })
    .join()
    .unwrap();
    lp.run_until_complete(sleep(ms(10))).unwrap();
    assert!(reported.get());
}

#[test]
fn a_handle_used_after_close_is_an_error() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    assert!(!handle.is_closed());
    lp.close().unwrap();
    assert!(handle.is_closed());
    assert_eq!(
        handle.call_soon_threadsafe(|| {}).unwrap_err(),
        RuntimeError::Closed
    );
    assert!(matches!(
        handle.run_coroutine_threadsafe(async {}),
        Err(RuntimeError::Closed)
    ));
}

/// A loop running on its own thread until `stop` is set; returns its handle.
fn loop_thread(stop: Arc<AtomicBool>) -> (asyncio_core::LoopHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let lp = EventLoop::new();
        tx.send(lp.handle()).unwrap();
        lp.run_until_complete(async move {
            while !stop.load(Ordering::Acquire) {
                sleep(ms(2)).await;
            }
        })
        .unwrap();
    });
    (rx.recv().unwrap(), t)
}

#[test]
fn run_coroutine_threadsafe_from_a_plain_thread() {
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, t) = loop_thread(stop.clone());
    let f = handle
        .run_coroutine_threadsafe(async {
            sleep(ms(10)).await;
            6 * 7
        })
        .unwrap();
    assert_eq!(f.wait(), Ok(42));

    // A short wait times out; the outcome can still be had later. The
    // coroutine cannot finish before this thread opens its gate.
    let (gate, opened) = futures::channel::oneshot::channel::<()>();
    let slow = handle
        .run_coroutine_threadsafe(async {
            opened.await.unwrap();
            "slow"
        })
        .unwrap();
    assert_eq!(slow.wait_timeout(ms(1)), Err(TimeoutError));
    assert!(!slow.done());
    gate.send(()).unwrap();
    assert_eq!(slow.wait_timeout(PATIENCE), Ok(Ok("slow")));
    assert!(slow.done());

    // Cancelled from this thread.
    let forever = handle
        .run_coroutine_threadsafe(sleep(Duration::from_secs(3600)))
        .unwrap();
    std::thread::sleep(ms(20));
    forever.cancel();
    assert!(matches!(forever.wait(), Err(TaskError::Cancelled(_))));

    // A panic comes back as the outcome.
    let boom = handle
        .run_coroutine_threadsafe(async { panic!("coroutine boom") })
        .unwrap();
    match boom.wait() {
        Err(TaskError::Panicked(p)) => assert!(p.message().contains("coroutine boom")),
        other => panic!("expected a panic, got {other:?}"),
    }
    stop.store(true, Ordering::Release);
    t.join().unwrap();
}

#[test]
fn another_loop_can_await_a_concurrent_future() {
    let stop = Arc::new(AtomicBool::new(false));
    let (handle, t) = loop_thread(stop.clone());
    let lp = EventLoop::new();
    let got = lp
        .run_until_complete(async move {
            let f = handle
                .run_coroutine_threadsafe(async {
                    sleep(ms(10)).await;
                    "from the other loop"
                })
                .unwrap();
            f.await
        })
        .unwrap();
    assert_eq!(got, Ok("from the other loop"));
    stop.store(true, Ordering::Release);
    t.join().unwrap();
}

#[test]
fn a_coroutine_sent_to_a_loop_that_closes_comes_back_cancelled() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let f = handle.run_coroutine_threadsafe(async { 1 }).unwrap();
    lp.close().unwrap(); // it never ran
    assert!(matches!(f.wait(), Err(TaskError::Cancelled(_))));
}

#[test]
#[should_panic(expected = "would never return")]
fn waiting_on_the_loops_own_thread_panics_instead_of_deadlocking() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    lp.run_until_complete(async move {
        let f = handle.run_coroutine_threadsafe(async { 1 }).unwrap();
        let _ = f.wait();
    })
    .unwrap();
}

#[test]
fn to_thread_runs_elsewhere_and_returns_the_value() {
    let lp = EventLoop::new();
    let (value, thread) = lp
        .run_until_complete(async {
            to_thread(|| {
                std::thread::sleep(ms(20));
                (7, std::thread::current().id())
            })
            .await
            .unwrap()
        })
        .unwrap();
    assert_eq!(value, 7);
    assert_ne!(thread, std::thread::current().id());
}

#[test]
fn the_loop_keeps_running_tasks_while_blocking_work_runs() {
    let lp = EventLoop::new();
    let ticks_seen_by_the_work = lp
        .run_until_complete(async {
            let ticks = Arc::new(AtomicUsize::new(0));
            let t = ticks.clone();
            let ticker = asyncio_core::create_task(async move {
                loop {
                    sleep(ms(1)).await;
                    t.fetch_add(1, Ordering::SeqCst);
                }
            });
            // The work returns once the loop ticked three times while it ran;
            // a loop blocked by the work would never tick, and the work would
            // give up after PATIENCE.
            let seen = to_thread(move || {
                let start = ticks.load(Ordering::SeqCst);
                eventually(|| ticks.load(Ordering::SeqCst) >= start + 3);
                ticks.load(Ordering::SeqCst) - start
            })
            .await
            .unwrap();
            ticker.cancel();
            seen
        })
        .unwrap();
    assert!(
        ticks_seen_by_the_work >= 3,
        "only {ticks_seen_by_the_work} ticks while the blocking work ran"
    );
}

#[test]
fn a_panic_in_blocking_work_comes_back_as_an_error() {
    let lp = EventLoop::new();
    let err = lp
        .run_until_complete(async { to_thread(|| -> u8 { panic!("blocking boom") }).await })
        .unwrap()
        .unwrap_err();
    assert!(err.message().contains("blocking boom"));
}

/// Context variables are values of the loop's thread: `to_thread` does not
/// carry the caller's context into the worker (asyncio's copies it), and
/// neither a variable nor a context can be sent there.
#[test]
fn context_variables_are_not_carried_into_to_thread() {
    // Ambiguous, so a compile error, for a type that is `Send`.
    trait AmbiguousIfSend<A> {
        fn some_item() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    struct IsSend;
    impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}
    let _ = <ContextVar<u8> as AmbiguousIfSend<_>>::some_item;
    let _ = <asyncio_core::Context as AmbiguousIfSend<_>>::some_item;

    let lp = EventLoop::new();
    let var = ContextVar::new("v");
    let (on_loop, in_worker) = lp
        .run_until_complete(async move {
            var.set(1u8);
            let on_loop = copy_context().len();
            let in_worker = to_thread(|| copy_context().len()).await.unwrap();
            (on_loop, in_worker)
        })
        .unwrap();
    assert_eq!(on_loop, 1, "the task's context holds the variable");
    assert_eq!(in_worker, 0, "the worker runs in an empty context");
}

#[test]
fn the_executor_is_capped_and_idle_threads_exit() {
    let lp = EventLoop::new();
    lp.configure_default_executor(2, ms(50));
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    lp.run_until_complete({
        let (running, peak) = (running.clone(), peak.clone());
        async move {
            let jobs: Vec<_> = (0..6)
                .map(|_| {
                    let (running, peak) = (running.clone(), peak.clone());
                    to_thread(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(ms(15));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for j in jobs {
                j.await.unwrap();
            }
        }
    })
    .unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&peak),
        "at most two threads ran jobs at once, saw {peak}"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while lp.default_executor_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(ms(10));
    }
    assert_eq!(lp.default_executor_threads(), 0, "idle threads exit");
}

#[test]
fn shutting_the_executor_down_waits_for_running_jobs_and_refuses_new_ones() {
    let lp = EventLoop::new();
    let finished = Arc::new(AtomicBool::new(false));
    let f = finished.clone();
    let job = lp
        .run_in_executor(move || {
            std::thread::sleep(ms(50));
            f.store(true, Ordering::SeqCst);
        })
        .unwrap();
    drop(job); // nobody awaits it; it still runs to the end
    lp.shutdown_default_executor_blocking(Duration::from_secs(10))
        .unwrap();
    assert!(finished.load(Ordering::SeqCst));
    assert_eq!(
        lp.run_in_executor(|| ()).unwrap_err(),
        RuntimeError::ExecutorUnavailable
    );
    // A job that outlives the timeout is reported.
    let lp = EventLoop::new();
    let _job = lp.run_in_executor(|| std::thread::sleep(ms(200))).unwrap();
    assert_eq!(
        lp.shutdown_default_executor_blocking(ms(10)),
        Err(TimeoutError)
    );
}
