//! Timers: sleep, call_later/call_at, timeout/timeout_at/wait_for, and the
//! loop sleeping in the kernel while it waits.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use asyncio_core::{
    EventLoop, RunError, RuntimeError, TimeoutError, create_task, sleep, sleep_until, timeout,
    timeout_at, wait_for, yield_now,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn concurrent_sleeps_overlap_and_wake_in_deadline_order() {
    let lp = EventLoop::new();
    let start = Instant::now();
    let log = lp
        .run_until_complete(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let tasks: Vec<_> = [150u64, 50, 100]
                .into_iter()
                .map(|d| {
                    let log = log.clone();
                    create_task(async move {
                        log.borrow_mut().push(("start", d));
                        let slept = Instant::now();
                        sleep(ms(d)).await;
                        assert!(
                            slept.elapsed() >= ms(d),
                            "woke early: {:?}",
                            slept.elapsed()
                        );
                        log.borrow_mut().push(("end", d));
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            log.take()
        })
        .unwrap();
    let took = start.elapsed();
    // All three were asleep at once (every start before the first end), and
    // they woke in deadline order.
    assert_eq!(
        log,
        [
            ("start", 150),
            ("start", 50),
            ("start", 100),
            ("end", 50),
            ("end", 100),
            ("end", 150)
        ]
    );
    assert!(took >= ms(150), "slept {took:?}");
    assert_eq!(lp.scheduled_timers(), 0);
}

#[test]
fn sleep_zero_gives_the_others_one_turn() {
    let lp = EventLoop::new();
    let log = lp
        .run_until_complete(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let l = log.clone();
            let other = create_task(async move { l.borrow_mut().push("other") });
            log.borrow_mut().push("before");
            sleep(Duration::ZERO).await;
            log.borrow_mut().push("after");
            other.await.unwrap();
            log.take()
        })
        .unwrap();
    assert_eq!(log, ["before", "other", "after"]);
}

#[test]
fn sleep_until_a_past_instant_returns_after_one_turn() {
    let lp = EventLoop::new();
    let log = lp
        .run_until_complete(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let l = log.clone();
            // Logs once per turn of the loop.
            let other = create_task(async move {
                for turn in ["other, turn 1", "other, turn 2", "other, turn 3"] {
                    l.borrow_mut().push(turn);
                    yield_now().await;
                }
            });
            log.borrow_mut().push("before");
            sleep_until(Instant::now() - ms(10)).await;
            log.borrow_mut().push("after");
            other.await.unwrap();
            log.take()
        })
        .unwrap();
    // Not zero turns ("after" before turn 1), not two (after turn 2).
    assert_eq!(
        log,
        [
            "before",
            "other, turn 1",
            "after",
            "other, turn 2",
            "other, turn 3"
        ]
    );
}

/// A `sleep` is `Send`; dropped on another thread it cannot reach its loop's
/// timers, so its timer stays until it would have fired, then goes (and its
/// wake-up is harmless). Dropped on its own loop's thread it goes at once.
#[test]
fn a_sleep_dropped_on_another_thread_leaves_its_timer_until_it_fires() {
    fn is_send<T: Send>(t: T) -> T {
        t
    }
    let lp = EventLoop::new();
    let l = lp.clone();
    let (left_after_drops, left_once_due) = lp
        .run_until_complete(async move {
            let mut plain = Box::pin(is_send(sleep(ms(30))));
            let mut other_loop = Box::pin(is_send(sleep(ms(30))));
            let mut here = Box::pin(sleep(ms(30)));
            let last = other_loop.deadline().unwrap();
            assert!(plain.deadline().unwrap() <= last);
            // Poll each once: each arms a timer on this loop.
            std::future::poll_fn(|cx| {
                assert!(plain.as_mut().poll(cx).is_pending());
                assert!(other_loop.as_mut().poll(cx).is_pending());
                assert!(here.as_mut().poll(cx).is_pending());
                Poll::Ready(())
            })
            .await;
            assert_eq!(l.scheduled_timers(), 3);
            drop(here);
            assert_eq!(
                l.scheduled_timers(),
                2,
                "dropped on its loop: freed at once"
            );
            // On a thread with no loop, and inside another loop's task.
            std::thread::spawn(move || drop(plain)).join().unwrap();
            std::thread::spawn(move || {
                let lp = EventLoop::new();
                lp.run_until_complete(async move { drop(other_loop) })
                    .unwrap();
                assert_eq!(lp.scheduled_timers(), 0);
            })
            .join()
            .unwrap();
            let left_after_drops = l.scheduled_timers();
            // Due no earlier than the two left: they fire with it or before.
            sleep_until(last).await;
            (left_after_drops, l.scheduled_timers())
        })
        .unwrap();
    assert_eq!(left_after_drops, 2, "the timers stay after the drops");
    assert_eq!(left_once_due, 0, "and go once due");
}

#[test]
#[cfg_attr(miri, ignore = "reads /proc, which Miri's isolation forbids")]
fn an_idle_loop_with_one_timer_sleeps_in_the_kernel() {
    fn thread_cpu() -> Duration {
        // utime and stime of this thread, in clock ticks (fields 14 and 15).
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }
    let lp = EventLoop::new();
    let cpu0 = thread_cpu();
    let wall0 = Instant::now();
    lp.run_until_complete(sleep(ms(200))).unwrap();
    let wall = wall0.elapsed();
    let cpu = thread_cpu() - cpu0;
    assert!(wall >= ms(200));
    assert!(cpu < wall / 4, "the loop spun: {cpu:?} of CPU in {wall:?}");
}

#[test]
fn sleep_forever_is_a_stall_when_nothing_else_can_wake_the_loop() {
    let lp = EventLoop::new();
    let err = lp.run_until_complete(sleep(Duration::MAX)).unwrap_err();
    assert_eq!(err, RunError::Runtime(RuntimeError::Stalled));
}

#[test]
fn call_later_runs_in_deadline_order_and_cancel_frees_the_timer() {
    let lp = EventLoop::new();
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let late = lp.call_later(ms(60), move || l1.borrow_mut().push("late"));
    let early = lp.call_later(ms(20), move || l2.borrow_mut().push("early"));
    let cancelled = lp.call_later(ms(40), move || l3.borrow_mut().push("cancelled"));
    assert_eq!(lp.scheduled_timers(), 3);
    cancelled.cancel();
    assert!(cancelled.cancelled());
    assert_eq!(lp.scheduled_timers(), 2, "cancel frees the slot at once");
    assert!(early.when().unwrap() < late.when().unwrap());
    lp.run_until_complete(sleep(ms(100))).unwrap();
    assert_eq!(*log.borrow(), ["early", "late"]);
    // A past time runs on the next iteration.
    let l = log.clone();
    lp.call_at(Instant::now() - ms(5), move || l.borrow_mut().push("past"));
    lp.run_until_complete(yield_now()).unwrap();
    assert_eq!(log.borrow().last(), Some(&"past"));
}

#[test]
fn a_panicking_timer_callback_goes_to_the_exception_handler() {
    let lp = EventLoop::new();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        assert!(ctx.panic.as_ref().unwrap().message().contains("timer boom"));
        s.set(true);
    }));
    lp.call_later(ms(1), || panic!("timer boom"));
    lp.run_until_complete(sleep(ms(20))).unwrap();
    assert!(seen.get());
    assert_eq!(
        lp.run_until_complete(async { 7 }).unwrap(),
        7,
        "the loop still works"
    );
}

#[test]
fn a_million_timeouts_set_and_cancelled_leave_nothing_behind() {
    let n = if cfg!(miri) {
        200
    } else if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let lp = EventLoop::new();
    lp.run_until_complete(async move {
        for i in 0..n {
            // A ready future wins, and the timer it armed (none here) or the
            // one below is freed at once.
            assert_eq!(timeout(Duration::from_secs(60), async { i }).await, Ok(i));
            let mut pending = Box::pin(timeout(
                Duration::from_secs(60),
                std::future::pending::<()>(),
            ));
            let _ = futures::poll!(pending.as_mut()); // arms a timer
            drop(pending); // and frees it
        }
        assert_eq!(
            asyncio_core::get_running_loop().unwrap().scheduled_timers(),
            0
        );
    })
    .unwrap();
    let handles: Vec<_> = (0..1000)
        .map(|_| lp.call_later(Duration::from_secs(60), || {}))
        .collect();
    assert_eq!(lp.scheduled_timers(), 1000);
    for h in &handles {
        h.cancel();
    }
    assert_eq!(lp.scheduled_timers(), 0);
}

#[test]
fn timeout_expires_and_drops_the_inner_future_before_returning() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let dropped = Rc::new(Cell::new(false));
        let flag = Flag(dropped.clone());
        let started = Instant::now();
        let r = wait_for(
            async move {
                let _flag = flag;
                sleep(Duration::from_secs(10)).await;
            },
            ms(30),
        )
        .await;
        assert_eq!(r, Err(TimeoutError));
        assert!(
            dropped.get(),
            "the inner future is gone when wait_for returns"
        );
        assert!(started.elapsed() >= ms(30));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(TimeoutError.to_string(), "the operation timed out");
    })
    .unwrap();
}

#[test]
fn a_ready_future_wins_over_a_zero_timeout() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
        assert_eq!(
            timeout_at(Instant::now() - ms(1), async { 2 }).await,
            Ok(2),
            "a deadline already past still lets a ready future through"
        );
        assert_eq!(
            timeout(Duration::ZERO, yield_now()).await,
            Err(TimeoutError)
        );
    })
    .unwrap();
}

#[test]
fn overflowing_deadlines_mean_no_deadline() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        assert_eq!(timeout(Duration::MAX, sleep(ms(5))).await, Ok(()));
        let h = asyncio_core::get_running_loop()
            .unwrap()
            .call_later(Duration::MAX, || unreachable!("never due"));
        assert_eq!(h.when(), None);
    })
    .unwrap();
}

#[test]
fn a_timeout_can_be_rescheduled_from_inside() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        // Extended: the work takes 60 ms, the first deadline was 20 ms.
        let t = timeout(ms(20), async { 0 });
        drop(t);
        let cell: Rc<RefCell<Option<asyncio_core::TimeoutHandle>>> = Rc::default();
        let c = cell.clone();
        let fut = timeout(ms(20), async move {
            let h = c.borrow().clone().unwrap();
            h.reschedule(Some(Instant::now() + ms(500))).unwrap();
            sleep(ms(60)).await;
            "finished"
        });
        *cell.borrow_mut() = Some(fut.handle());
        let handle = fut.handle();
        assert_eq!(fut.await, Ok("finished"));
        assert!(!handle.expired());

        // Brought forward: expires at once.
        let fut = timeout(Duration::from_secs(60), sleep(Duration::from_secs(60)));
        let handle = fut.handle();
        let pulled = handle.clone();
        create_task(async move { pulled.reschedule(Some(Instant::now())).unwrap() });
        assert_eq!(fut.await, Err(TimeoutError));
        assert!(handle.expired());

        // Removed: no deadline at all.
        let fut = timeout(ms(10), sleep(ms(40)));
        fut.handle().reschedule(None).unwrap();
        assert_eq!(fut.handle().when(), None);
        assert_eq!(fut.await, Ok(()));
    })
    .unwrap();
}

#[test]
#[should_panic(expected = "running asyncio-rs loop")]
fn sleep_outside_a_loop_panics_with_a_clear_message() {
    futures::executor::block_on(sleep(Duration::from_secs(3600)));
}
