//! `Channel`: `Queue`'s semantics between threads — order, bounds, wake-ups
//! across threads, `task_done`/`join`, `shutdown`, cancellation safety.

mod common;

use std::pin::pin;
use std::sync::mpsc;
use std::task::Poll;
use std::time::Duration;

use asyncio_sync::{Channel, GetError, PutError, QueueShutDown, TaskDoneError};
use common::{counting_waker, poll_once, poll_with};
use futures::executor::block_on;

/// How long a test waits for another thread before it calls it a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs `f` on a thread and returns its result, failing (not hanging) if it
/// does not finish in time: a lost wake-up shows as this failure.
fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

fn wait<T>(rx: &mpsc::Receiver<T>, what: &str) -> T {
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{what} did not finish: a lost wake-up"))
}

#[test]
fn items_put_on_one_thread_arrive_in_order_on_another() {
    let ch = Channel::new(0);
    let rx = ch.clone();
    let consumer = on_thread(move || {
        asyncio_core::EventLoop::new()
            .run_until_complete(async move {
                let mut got = Vec::new();
                while let Ok(n) = rx.get().await {
                    got.push(n);
                }
                got
            })
            .unwrap()
    });
    for n in 0..1000 {
        ch.put_nowait(n).unwrap();
        if n % 100 == 0 {
            std::thread::yield_now();
        }
    }
    ch.shutdown(false);
    assert_eq!(
        wait(&consumer, "the consumer"),
        (0..1000).collect::<Vec<_>>()
    );
}

#[test]
fn a_getter_waiting_on_another_thread_is_woken_by_a_put() {
    let ch = Channel::new(0);
    let rx = ch.clone();
    let (parked_tx, parked) = mpsc::channel();
    let getter = on_thread(move || {
        asyncio_core::EventLoop::new()
            .run_until_complete(async move {
                let get = rx.get();
                let mut get = pin!(get);
                // First poll: nothing there, so it waits.
                assert!(poll_once(get.as_mut()).is_pending());
                parked_tx.send(()).unwrap();
                get.await
            })
            .unwrap()
    });
    wait(&parked, "the getter's first poll");
    ch.put_nowait("job").unwrap();
    assert_eq!(wait(&getter, "the getter"), Ok("job"));
}

#[test]
fn a_full_channel_holds_putters_until_a_get_on_another_thread() {
    let ch = Channel::new(2);
    ch.put_nowait(1).unwrap();
    ch.put_nowait(2).unwrap();
    assert!(ch.full());
    assert!(matches!(ch.put_nowait(3), Err(PutError::Full(_))));
    let tx = ch.clone();
    let putter = on_thread(move || block_on(tx.put(3)));
    // The putter cannot finish before a slot frees.
    assert!(putter.recv_timeout(Duration::from_millis(50)).is_err());
    assert_eq!(ch.get_nowait(), Ok(1));
    assert_eq!(wait(&putter, "the putter"), Ok(()));
    assert_eq!(ch.get_nowait(), Ok(2));
    assert_eq!(ch.get_nowait(), Ok(3));
}

#[test]
fn shutdown_lets_getters_drain_then_fails_them_and_refuses_puts() {
    let ch = Channel::new(0);
    ch.put_nowait(1).unwrap();
    ch.put_nowait(2).unwrap();
    ch.shutdown(false);
    assert!(ch.is_shutdown());
    assert_eq!(block_on(ch.put(3)), Err(QueueShutDown(3)));
    assert!(matches!(
        ch.put_nowait(4),
        Err(PutError::ShutDown(QueueShutDown(4)))
    ));
    assert_eq!(block_on(ch.get()), Ok(1));
    assert_eq!(ch.get_nowait(), Ok(2));
    assert_eq!(block_on(ch.get()), Err(QueueShutDown(())));
    assert_eq!(ch.get_nowait(), Err(GetError::ShutDown(QueueShutDown(()))));
}

#[test]
fn shutdown_wakes_a_getter_blocked_on_another_thread_to_fail() {
    let ch = Channel::<u8>::new(0);
    let rx = ch.clone();
    let (parked_tx, parked) = mpsc::channel();
    let getter = on_thread(move || {
        block_on(async move {
            let mut get = pin!(rx.get());
            assert!(poll_once(get.as_mut()).is_pending());
            parked_tx.send(()).unwrap();
            get.await
        })
    });
    wait(&parked, "the getter's first poll");
    ch.shutdown(false);
    assert_eq!(wait(&getter, "the getter"), Err(QueueShutDown(())));
}

#[test]
fn immediate_shutdown_discards_items_counts_them_done_and_releases_join() {
    let ch = Channel::new(0);
    for n in 0..3 {
        ch.put_nowait(n).unwrap();
    }
    let joiner = ch.clone();
    let join = on_thread(move || block_on(joiner.join()));
    assert!(join.recv_timeout(Duration::from_millis(50)).is_err());
    ch.shutdown(true);
    wait(&join, "join after an immediate shutdown");
    assert!(ch.empty());
    assert_eq!(block_on(ch.get()), Err(QueueShutDown(())));
    // The discarded items were counted done: one more is too many.
    assert_eq!(ch.task_done(), Err(TaskDoneError));
}

#[test]
fn join_waits_for_task_done_from_other_threads() {
    let ch = Channel::new(0);
    for n in 0..100 {
        ch.put_nowait(n).unwrap();
    }
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let rx = ch.clone();
            on_thread(move || {
                while let Ok(_n) = rx.get_nowait() {
                    rx.task_done().unwrap();
                }
            })
        })
        .collect();
    let joiner = ch.clone();
    let join = on_thread(move || block_on(joiner.join()));
    for w in &workers {
        wait(w, "a worker");
    }
    wait(&join, "join");
    assert_eq!(ch.task_done(), Err(TaskDoneError));
}

#[test]
fn a_woken_getter_dropped_before_it_runs_passes_its_wake_up_on() {
    let ch = Channel::new(0);
    let (w1, c1) = counting_waker();
    let (w2, c2) = counting_waker();
    let mut first = Box::pin(ch.get());
    let mut second = Box::pin(ch.get());
    assert!(poll_with(first.as_mut(), &w1).is_pending());
    assert!(poll_with(second.as_mut(), &w2).is_pending());
    ch.put_nowait(7).unwrap();
    assert_eq!((c1.get(), c2.get()), (1, 0), "one item wakes one getter");
    // Cancelled after it was woken: the second getter must hear of the item.
    drop(first);
    assert_eq!(c2.get(), 1);
    assert_eq!(poll_with(second.as_mut(), &w2), Poll::Ready(Ok(7)));
}

#[test]
fn a_dropped_getter_loses_no_item() {
    let ch = Channel::new(0);
    let mut get = Box::pin(ch.get());
    assert!(poll_once(get.as_mut()).is_pending());
    ch.put_nowait(1).unwrap();
    drop(get);
    assert_eq!(ch.get_nowait(), Ok(1));
}

#[test]
fn many_producers_and_consumers_on_threads_move_every_item_exactly_once() {
    const PRODUCERS: usize = 4;
    const CONSUMERS: usize = 4;
    // Miri interprets every step: fewer items still mix the threads.
    const EACH: usize = if cfg!(miri) { 50 } else { 5000 };
    let ch = Channel::new(8);
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|_| {
            let rx = ch.clone();
            on_thread(move || {
                block_on(async move {
                    let mut got = Vec::new();
                    while let Ok(n) = rx.get().await {
                        got.push(n);
                    }
                    got
                })
            })
        })
        .collect();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = ch.clone();
            on_thread(move || {
                block_on(async move {
                    for i in 0..EACH {
                        tx.put(p * EACH + i).await.unwrap();
                    }
                })
            })
        })
        .collect();
    for p in &producers {
        wait(p, "a producer");
    }
    ch.shutdown(false);
    let mut all: Vec<usize> = consumers
        .iter()
        .flat_map(|c| wait(c, "a consumer"))
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..PRODUCERS * EACH).collect::<Vec<_>>());
}

#[test]
fn channel_is_send_and_sync_for_send_items() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Channel<String>>();
}
