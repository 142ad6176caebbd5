//! No task outlives its loop in memory: once a loop is closed, every task
//! cell is freed, whatever was in flight (issue 13, item 14). Each test
//! watches one task's cell through the allocator (`common/freed.rs`) and
//! asserts that closing the loop freed it; under Miri and LeakSanitizer a
//! leak fails the run as well.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;

use asyncio_core::{EventLoop, create_task, to_thread, yield_now};

#[path = "common/freed.rs"]
mod freed;
use freed::Watch;

/// A task that parks forever, leaving a clone of its waker in `slot` and its
/// cell's address (the waker's data pointer) in `cell`.
fn parked_task_parts() -> (Arc<Mutex<Option<Waker>>>, Arc<AtomicUsize>) {
    (Arc::default(), Arc::default())
}

#[test]
fn a_foreign_wake_still_queued_at_close_frees_the_task() {
    let (slot, cell) = parked_task_parts();
    let lp = EventLoop::new();
    let (s, c) = (Arc::clone(&slot), Arc::clone(&cell));
    lp.run_until_complete(async move {
        // Detached: only the loop's registry keeps the task.
        drop(create_task(poll_fn(move |cx| {
            c.store(cx.waker().data() as usize, Ordering::SeqCst);
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        yield_now().await; // the task runs once and parks
    })
    .unwrap();
    let watch = Watch::new(0, cell.load(Ordering::SeqCst));
    // The loop is idle (not running): a wake from another thread goes into
    // its injector and stays there.
    let waker = slot.lock().unwrap().take().expect("the task ran");
    thread::spawn(move || waker.wake()).join().unwrap();
    assert!(!watch.freed());
    lp.close().unwrap();
    drop(lp);
    assert!(
        watch.freed(),
        "the task's cell outlived its closed loop (a queued foreign wake kept it)"
    );
}

#[test]
#[allow(
    clippy::async_yields_async,
    reason = "the task's handle is kept to hold its loop side, not awaited"
)]
fn a_foreign_wake_queued_while_the_task_handle_lives_frees_the_task_at_close() {
    let (slot, cell) = parked_task_parts();
    let lp = EventLoop::new();
    let (s, c) = (Arc::clone(&slot), Arc::clone(&cell));
    let task = lp
        .run_until_complete(async move {
            let task = create_task(poll_fn(move |cx| {
                c.store(cx.waker().data() as usize, Ordering::SeqCst);
                *s.lock().unwrap() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }));
            yield_now().await;
            task
        })
        .unwrap();
    let watch = Watch::new(1, cell.load(Ordering::SeqCst));
    let waker = slot.lock().unwrap().take().expect("the task ran");
    thread::spawn(move || waker.wake()).join().unwrap();
    lp.close().unwrap();
    // The handle still holds the loop side: the cell lives until it goes.
    assert!(task.cancelled());
    assert!(!watch.freed());
    drop(task);
    drop(lp);
    assert!(
        watch.freed(),
        "the task's cell outlived its handle and its loop"
    );
}

#[test]
fn a_task_cancelled_while_awaiting_to_thread_is_freed_at_close() {
    let cell = Arc::new(AtomicUsize::new(0));
    let lp = EventLoop::new();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (finish_tx, finish_rx) = mpsc::channel::<()>();
    let c = Arc::clone(&cell);
    let cancelled = lp
        .run_until_complete(async move {
            let task = create_task(async move {
                poll_fn(|cx| {
                    c.store(cx.waker().data() as usize, Ordering::SeqCst);
                    Poll::Ready(())
                })
                .await;
                to_thread(move || {
                    started_tx.send(()).unwrap();
                    // Finishes (and wakes the cancelled task's stale waker)
                    // only after the loop stopped running.
                    let _ = finish_rx.recv_timeout(Duration::from_secs(60));
                })
                .await
            });
            yield_now().await; // the task starts the job and parks
            started_rx.recv().unwrap();
            task.cancel();
            yield_now().await; // the cancellation drops the task's future
            task.cancelled()
        })
        .unwrap();
    assert!(cancelled);
    let watch = Watch::new(2, cell.load(Ordering::SeqCst));
    finish_tx.send(()).unwrap();
    // As `asyncio::run` does at its end: wait for the executor, whose job
    // wakes the task from its thread, then close.
    lp.shutdown_default_executor_blocking(Duration::from_secs(60))
        .unwrap();
    lp.close().unwrap();
    drop(lp);
    assert!(
        watch.freed(),
        "the task's cell outlived its closed loop (woken by to_thread after its cancellation)"
    );
}
