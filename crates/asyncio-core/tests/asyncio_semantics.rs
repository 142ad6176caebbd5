//! Places where asyncio-rs used to differ from CPython 3.13's asyncio (issue
//! 13), each checked against what asyncio documents or what its own test
//! suite (`Lib/test/test_asyncio`) asserts.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio_core::{
    EventLoop, RuntimeError, StartMode, TaskError, TaskFactory, TaskOptions, TaskRef, TimeoutError,
    TimeoutFinished, create_task, create_task_with, current_task, sleep, timeout_at, yield_now,
};

/// Every task starts eagerly, on the loop's fast path.
struct FixedEager;

impl TaskFactory for FixedEager {
    fn create(&self, _task: &TaskRef) -> StartMode {
        StartMode::Eager
    }
    fn fixed_mode(&self) -> Option<StartMode> {
        Some(StartMode::Eager)
    }
}

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::default()
}

fn push(log: &Log, s: &str) {
    log.borrow_mut().push(s.to_owned());
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    match (p.downcast_ref::<String>(), p.downcast_ref::<&str>()) {
        (Some(m), _) => m.clone(),
        (_, Some(m)) => (*m).to_owned(),
        _ => "<not a string>".to_owned(),
    }
}

// --- Item 3: "the task is cancelled right before the coroutine stops" -----

#[test]
fn a_task_that_cancels_itself_and_then_returns_ends_cancelled() {
    for (eager, fixed) in [(false, false), (true, false), (true, true)] {
        let lp = EventLoop::new();
        if fixed {
            lp.set_task_factory(FixedEager);
        }
        let out = lp
            .run_until_complete(async move {
                let body = async {
                    current_task().unwrap().cancel();
                    7
                };
                let t = if fixed {
                    create_task(body)
                } else {
                    create_task_with(body, TaskOptions::new().eager_start(eager))
                };
                t.await
            })
            .unwrap();
        assert_eq!(
            out,
            Err(TaskError::Cancelled(asyncio_core::CancelledError::new())),
            "eager={eager} fixed={fixed}"
        );
    }
}

#[test]
fn a_self_cancellation_withdrawn_with_uncancel_lets_the_value_through() {
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async {
            create_task(async {
                let me = current_task().unwrap();
                me.cancel();
                assert_eq!(me.uncancel(), 0);
                7
            })
            .await
        })
        .unwrap();
    assert_eq!(out, Ok(7));
}

#[test]
fn the_value_a_cancellation_replaces_is_dropped() {
    struct Flag(Rc<Cell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let d = dropped.clone();
    let lp = EventLoop::new();
    let out = lp
        .run_until_complete(async move {
            create_task(async move {
                current_task().unwrap().cancel();
                Flag(d)
            })
            .await
            .is_err()
        })
        .unwrap();
    assert!(out);
    assert!(dropped.get());
}

// --- Item 4: the awaiter among the done callbacks, in the order added -----

#[test]
fn callbacks_added_before_the_await_run_before_the_awaiter_resumes() {
    let lp = EventLoop::new();
    let order = log();
    let o = order.clone();
    lp.run_until_complete(async move {
        let t = create_task(async {
            yield_now().await;
        });
        let o1 = o.clone();
        t.add_done_callback(move |_| push(&o1, "cb1"));
        let o2 = o.clone();
        t.add_done_callback(move |_| push(&o2, "cb2"));
        // A callback added while the awaiter already waits comes after it.
        let later = t.to_ref();
        let o3 = o.clone();
        drop(create_task(async move {
            later.add_done_callback(move |_| push(&o3, "cb3"));
        }));
        t.await.unwrap();
        push(&o, "awaiter");
        // Let cb3 run.
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*order.borrow(), ["cb1", "cb2", "awaiter", "cb3"]);
}

#[test]
fn an_awaiter_with_no_callbacks_before_it_resumes_first() {
    let lp = EventLoop::new();
    let order = log();
    let o = order.clone();
    lp.run_until_complete(async move {
        let t = create_task(async {
            yield_now().await;
        });
        let t2 = t.to_ref();
        let o1 = o.clone();
        drop(create_task(async move {
            t2.add_done_callback(move |_| push(&o1, "cb"));
        }));
        t.await.unwrap();
        push(&o, "awaiter");
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*order.borrow(), ["awaiter", "cb"]);
}

// --- Item 5: cancelling an awaiter cancels what it awaits ----------------

#[test]
fn cancelling_a_task_blocked_on_another_task_cancels_that_task() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let inner = create_task(std::future::pending::<()>());
        let inner_ref = inner.to_ref();
        let outer = create_task(inner);
        yield_now().await;
        yield_now().await;
        assert!(!inner_ref.done());
        outer.cancel();
        assert!(outer.await.unwrap_err().is_cancelled());
        yield_now().await;
        assert!(inner_ref.cancelled(), "the awaited task was cancelled too");
    })
    .unwrap();
}

#[test]
fn wait_for_a_task_cancels_it_on_timeout() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task(sleep(Duration::from_secs(3600)));
        let r = t.to_ref();
        let out = asyncio_core::wait_for(t, Duration::from_millis(5)).await;
        assert_eq!(out, Err(TimeoutError));
        yield_now().await;
        assert!(r.cancelled(), "asyncio's wait_for cancels the task");
    })
    .unwrap();
}

#[test]
fn a_handle_dropped_without_being_awaited_detaches() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = create_task(async {
            yield_now().await;
            1
        });
        let r = t.to_ref();
        drop(t);
        for _ in 0..3 {
            yield_now().await;
        }
        assert!(r.done() && !r.cancelled());
    })
    .unwrap();
}

#[test]
fn detach_stops_awaiting_without_cancelling() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let mut t = create_task(async {
            yield_now().await;
            yield_now().await;
            1
        });
        let r = t.to_ref();
        // Awaited once (a join waker is registered) ...
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut t).poll(&mut cx).is_pending());
        // ... then detached: it runs on.
        t.detach();
        for _ in 0..4 {
            yield_now().await;
        }
        assert!(r.done() && !r.cancelled());
    })
    .unwrap();
}

// --- Item 10: nested timeouts with one deadline --------------------------

#[test]
fn of_nested_timeouts_with_one_deadline_only_the_outermost_raises() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let deadline = Instant::now() + Duration::from_millis(10);
        let inner_handle: Rc<RefCell<Option<asyncio_core::TimeoutHandle>>> = Rc::default();
        let ih = inner_handle.clone();
        let reached_inner_result = Rc::new(Cell::new(false));
        let rir = reached_inner_result.clone();
        let outer = timeout_at(deadline, async move {
            let inner = timeout_at(deadline, sleep(Duration::from_secs(10)));
            *ih.borrow_mut() = Some(inner.handle());
            let r = inner.await;
            // asyncio: the inner scope sees CancelledError, not TimeoutError,
            // so nothing after it runs.
            rir.set(true);
            r
        });
        let outer_handle = outer.handle();
        assert_eq!(outer.await, Err(TimeoutError));
        assert!(!reached_inner_result.get(), "the inner scope was cancelled");
        assert!(outer_handle.expired());
        assert!(inner_handle.borrow().as_ref().unwrap().expired());
    })
    .unwrap();
}

/// The same with the shared deadline already past when the timeouts are
/// first polled (asyncio schedules both expiries with call_soon, outermost
/// first; only the outermost raises).
#[test]
fn of_nested_timeouts_past_their_deadline_at_once_only_the_outermost_raises() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let deadline = Instant::now();
        let after_inner = Rc::new(Cell::new(false));
        let a = after_inner.clone();
        let out = timeout_at(deadline, async move {
            let r = timeout_at(deadline, sleep(Duration::from_secs(10))).await;
            a.set(true);
            r
        })
        .await;
        assert_eq!(out, Err(TimeoutError));
        assert!(!after_inner.get(), "the inner scope was cancelled");
        // An inner deadline earlier than the outer one still raises inside.
        let far = Instant::now() + Duration::from_secs(3600);
        let out = timeout_at(far, async move {
            timeout_at(deadline, sleep(Duration::from_secs(10))).await
        })
        .await;
        assert_eq!(out, Ok(Err(TimeoutError)));
    })
    .unwrap();
}

#[test]
fn rescheduling_an_expired_or_finished_timeout_is_an_error() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let t = asyncio_core::timeout(Duration::from_millis(1), sleep(Duration::from_secs(10)));
        let h = t.handle();
        assert_eq!(t.await, Err(TimeoutError));
        assert_eq!(h.reschedule(None), Err(TimeoutFinished));

        let t = asyncio_core::timeout(Duration::from_secs(10), async { 1 });
        let h = t.handle();
        assert_eq!(t.await, Ok(1));
        assert_eq!(h.reschedule(None), Err(TimeoutFinished));

        let t = asyncio_core::timeout(Duration::from_secs(10), async { 1 });
        assert_eq!(t.handle().reschedule(None), Ok(()));
    })
    .unwrap();
}

// --- Item 11: I/O is polled while tasks keep the loop busy ----------------

#[cfg(not(miri))]
#[test]
fn a_ready_socket_is_served_while_a_task_spins_on_yield_now() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let lp = EventLoop::new();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let seen = Rc::new(Cell::new(false));
    let s = seen.clone();
    lp.add_reader(a.as_raw_fd(), move || s.set(true)).unwrap();
    b.write_all(b"x").unwrap();
    let seen2 = seen.clone();
    let spins = lp
        .run_until_complete(async move {
            // Bounded: far more turns than the polling interval.
            let mut n = 0;
            while !seen2.get() && n < 100 * asyncio_core::IO_POLL_INTERVAL {
                yield_now().await;
                n += 1;
            }
            n
        })
        .unwrap();
    assert!(
        seen.get(),
        "the reader callback never ran while the task spun ({spins} turns)"
    );
    assert!(spins <= 2 * asyncio_core::IO_POLL_INTERVAL, "{spins}");
    lp.remove_reader(a.as_raw_fd());
}

// --- Item 12: a task of another loop -------------------------------------

#[test]
fn awaiting_a_task_of_another_loop_fails_at_once() {
    let lp1 = EventLoop::new();
    let lp2 = EventLoop::new();
    let foreign = lp1.create_task(std::future::pending::<()>());
    let out = catch_unwind(AssertUnwindSafe(|| lp2.run_until_complete(foreign)));
    let message = panic_message(out.expect_err("the awaiting task fails"));
    assert!(
        message.contains("another event loop"),
        "unexpected message: {message}"
    );
    lp1.close().unwrap();
    lp2.close().unwrap();
}

// --- Item 13: shutdown works on a snapshot --------------------------------

#[test]
fn cancel_all_tasks_finishes_when_a_destructor_keeps_creating_tasks() {
    struct Respawn(Rc<Cell<u32>>);
    impl Drop for Respawn {
        fn drop(&mut self) {
            // Each cancelled task leaves another one behind, while the loop
            // runs.
            if asyncio_core::get_running_loop().is_err() {
                return;
            }
            self.0.set(self.0.get() + 1);
            let again = Respawn(self.0.clone());
            drop(create_task(async move {
                let _again = again;
                std::future::pending::<()>().await;
            }));
        }
    }
    let lp = EventLoop::new();
    let made = Rc::new(Cell::new(0));
    let m = made.clone();
    lp.run_until_complete(async move {
        drop(create_task(async move {
            let _r = Respawn(m);
            std::future::pending::<()>().await;
        }));
        yield_now().await;
    })
    .unwrap();
    assert_eq!(lp.cancel_all_tasks(), Ok(()));
    assert!(made.get() >= 1);
    // close drops what the cancellations left behind (a destructor then
    // finds no running loop and creates nothing).
    assert_eq!(lp.close(), Ok(()));
}

// --- Item 15: scheduling on a closed loop ----------------------------------

#[test]
fn scheduling_on_a_closed_loop_is_an_error() {
    let lp = EventLoop::new();
    let finished = lp.create_task(async {});
    lp.run_until_complete(yield_now()).unwrap();
    assert!(finished.done());
    lp.close().unwrap();
    assert_eq!(lp.try_call_soon(|| {}).unwrap_err(), RuntimeError::Closed);
    assert_eq!(
        lp.try_call_later(Duration::ZERO, || {}).unwrap_err(),
        RuntimeError::Closed
    );
    assert_eq!(
        lp.try_call_at(Instant::now(), || {}).unwrap_err(),
        RuntimeError::Closed
    );
    assert_eq!(
        finished.try_add_done_callback(|_| {}).unwrap_err(),
        RuntimeError::Closed
    );
    for (what, f) in [
        (
            "call_soon",
            Box::new(|| drop(lp.call_soon(|| {}))) as Box<dyn Fn()>,
        ),
        (
            "call_later",
            Box::new(|| drop(lp.call_later(Duration::ZERO, || {}))),
        ),
        (
            "call_at",
            Box::new(|| drop(lp.call_at(Instant::now(), || {}))),
        ),
        (
            "add_done_callback",
            Box::new(|| {
                finished.add_done_callback(|_| {});
            }),
        ),
    ] {
        let out = catch_unwind(AssertUnwindSafe(f));
        let message = panic_message(out.expect_err(what));
        assert!(message.contains("closed"), "{what}: {message}");
    }
}

// --- Item 16: waiting for a concurrent future on the loop's own thread ---

#[test]
fn waiting_on_the_idle_loops_own_thread_panics_instead_of_hanging() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let f = handle.run_coroutine_threadsafe(async { 1 }).unwrap();
    // The loop is not running, and only this thread could run it.
    let out = catch_unwind(AssertUnwindSafe(move || f.wait()));
    let message = panic_message(out.expect_err("a wait that could never end"));
    assert!(message.contains("would never return"), "{message}");
    // Once the loop has run it, the outcome is there and waiting is fine.
    let f = handle.run_coroutine_threadsafe(async { 2 }).unwrap();
    lp.run_until_complete(async {
        for _ in 0..3 {
            yield_now().await;
        }
    })
    .unwrap();
    assert_eq!(f.wait(), Ok(2));
    lp.close().unwrap();
}
