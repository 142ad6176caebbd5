//! loom models of `Channel`'s cross-thread races (run with `ci/loom.sh`).
//!
//! Each model runs the real `Channel`: under `cfg(loom)` its atomics, fence
//! and mutex are loom's (`crate::sync`), so loom runs every interleaving of
//! them up to its preemption bound (`LOOM_MAX_PREEMPTIONS`). The items'
//! `SegQueue` is crossbeam's: each push or pop is one indivisible step to
//! loom. A waiting future is driven by [`block_on`], which sleeps on a loom
//! `Notify` until its waker is called: a lost wake-up leaves a thread asleep
//! for ever, which loom reports as a deadlock and fails the model.
//!
//! Each model prints how many interleavings loom ran, and fails if that is
//! only a handful (a model that no longer races anything).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize as StdUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::Notify;
use loom::sync::atomic::AtomicBool;

use crate::{Channel, GetError};

/// Runs `f` as a loom model, then prints how many interleavings loom ran and
/// fails if they are fewer than `least` (a model that no longer races).
fn model(name: &str, least: usize, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(StdUsize::new(0));
    let counter = Arc::clone(&runs);
    loom::model(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    let n = runs.load(Ordering::Relaxed);
    eprintln!("loom model {name}: {n} interleavings explored");
    assert!(
        n >= least,
        "{name}: loom explored only {n} interleavings: the model races nothing"
    );
}

/// A waker that records that it was called and wakes a [`block_on`].
struct Wakeup {
    woken: AtomicBool,
    notify: Notify,
}

impl Wakeup {
    fn new() -> Arc<Self> {
        Arc::new(Wakeup {
            woken: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }

    /// Whether the waker was called since the last `take`.
    fn take(&self) -> bool {
        self.woken.swap(false, Ordering::SeqCst)
    }
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // A swap, not a store: loom 0.7 can let a later swap in `take` read
        // past a plain store made after an earlier swap, which would report
        // a lost wake-up that is the harness's, not the channel's.
        self.woken.swap(true, Ordering::SeqCst);
        self.notify.notify();
    }
}

/// Polls `fut` to completion, sleeping between polls until its waker is
/// called (never polling it without a wake-up, as a loop would not).
fn block_on<F: Future>(fut: F) -> F::Output {
    let wakeup = Wakeup::new();
    let waker = Waker::from(Arc::clone(&wakeup));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        // `Notify` may return spuriously: sleep until the waker really ran.
        while !wakeup.take() {
            wakeup.notify.wait();
        }
    }
}

/// Polls `fut` once with a recording waker.
fn poll_once<F: Future + Unpin>(fut: &mut F, wakeup: &Arc<Wakeup>) -> Poll<F::Output> {
    let waker = Waker::from(Arc::clone(wakeup));
    std::pin::Pin::new(fut).poll(&mut Context::from_waker(&waker))
}

/// A put on another thread racing a getter that finds the channel empty and
/// goes to sleep: the getter always wakes with the item.
#[test]
fn a_put_racing_a_getter_going_to_sleep_wakes_it() {
    model("a_put_racing_a_getter_going_to_sleep", 10, || {
        let ch = Channel::new(0);
        let tx = ch.clone();
        let t = loom::thread::spawn(move || tx.put_nowait(1).unwrap());
        assert_eq!(block_on(ch.get()), Ok(1));
        t.join().unwrap();
    });
}

/// A get on another thread racing a putter that finds the channel full and
/// goes to sleep: the putter always wakes and puts its item.
#[test]
fn a_get_racing_a_putter_going_to_sleep_wakes_it() {
    model("a_get_racing_a_putter_going_to_sleep", 10, || {
        let ch = Channel::new(1);
        ch.put_nowait(1).unwrap();
        let rx = ch.clone();
        let t = loom::thread::spawn(move || assert_eq!(rx.get_nowait(), Ok(1)));
        assert!(block_on(ch.put(2)).is_ok());
        t.join().unwrap();
        assert_eq!(ch.get_nowait(), Ok(2));
    });
}

/// The last `task_done` on another thread racing a `join` going to sleep:
/// `join` always returns.
#[test]
fn the_last_task_done_racing_a_joiner_going_to_sleep_wakes_it() {
    model(
        "the_last_task_done_racing_a_joiner_going_to_sleep",
        10,
        || {
            let ch = Channel::new(0);
            ch.put_nowait(1).unwrap();
            let rx = ch.clone();
            let t = loom::thread::spawn(move || {
                assert_eq!(rx.get_nowait(), Ok(1));
                rx.task_done().unwrap();
            });
            block_on(ch.join());
            t.join().unwrap();
        },
    );
}

/// `shutdown(false)` on another thread racing a getter going to sleep on an
/// empty channel: the getter always wakes and fails with `QueueShutDown`.
#[test]
fn shutdown_racing_a_waiting_getter_fails_it() {
    model("shutdown_racing_a_waiting_getter", 10, || {
        let ch = Channel::<u32>::new(0);
        let other = ch.clone();
        let t = loom::thread::spawn(move || other.shutdown(false));
        assert!(block_on(ch.get()).is_err());
        t.join().unwrap();
    });
}

/// `shutdown(true)` on another thread racing a putter going to sleep on a
/// full channel: the putter always wakes; it either fails with its item back
/// or its item is discarded with the rest. Either way nothing is left in the
/// channel, every item counts as done (`join` returns) and gets fail.
#[test]
fn immediate_shutdown_racing_a_waiting_putter_leaves_nothing_behind() {
    model("immediate_shutdown_racing_a_waiting_putter", 10, || {
        let ch = Channel::new(1);
        ch.put_nowait(1).unwrap();
        let other = ch.clone();
        let t = loom::thread::spawn(move || other.shutdown(true));
        if let Err(e) = block_on(ch.put(2)) {
            assert_eq!(e.0, 2, "a failed put hands its own item back");
        }
        t.join().unwrap();
        assert_eq!(ch.qsize(), 0);
        assert!(matches!(ch.get_nowait(), Err(GetError::ShutDown(_))));
        block_on(ch.join());
    });
}

/// A `put_nowait` on another thread racing `shutdown(true)`: the put either
/// fails with its item, or its item is discarded; no item is left behind,
/// and `join` returns.
#[test]
fn a_put_racing_an_immediate_shutdown_leaves_nothing_behind() {
    model("a_put_racing_an_immediate_shutdown", 10, || {
        let ch = Channel::new(0);
        let tx = ch.clone();
        let t = loom::thread::spawn(move || {
            if let Err(e) = tx.put_nowait(5) {
                assert_eq!(e.into_inner(), 5, "a failed put hands its own item back");
            }
        });
        ch.shutdown(true);
        t.join().unwrap();
        assert_eq!(ch.qsize(), 0);
        assert!(matches!(ch.get_nowait(), Err(GetError::ShutDown(_))));
        block_on(ch.join());
    });
}

/// A getter woken for an item and dropped before it runs (its task was
/// cancelled) passes the wake-up to the next getter, whichever of the put
/// and the drop comes first: the item never waits while a getter sleeps.
#[test]
fn a_woken_getter_dropped_before_it_runs_passes_its_wake_up_on() {
    model("a_woken_getter_dropped_before_it_runs", 5, || {
        let ch = Channel::new(0);
        let (w1, w2) = (Wakeup::new(), Wakeup::new());
        let mut first = Box::pin(ch.get());
        let mut second = Box::pin(ch.get());
        assert!(poll_once(&mut first, &w1).is_pending());
        assert!(poll_once(&mut second, &w2).is_pending());
        let tx = ch.clone();
        let t = loom::thread::spawn(move || tx.put_nowait(7).unwrap());
        drop(first);
        t.join().unwrap();
        assert!(w2.take(), "the second getter was never woken");
        assert_eq!(poll_once(&mut second, &w2), Poll::Ready(Ok(7)));
    });
}

/// The same for putters: a putter woken for a free slot and dropped before
/// it runs passes the slot's wake-up to the next putter.
#[test]
fn a_woken_putter_dropped_before_it_runs_passes_its_wake_up_on() {
    model("a_woken_putter_dropped_before_it_runs", 5, || {
        let ch = Channel::new(1);
        ch.put_nowait(0).unwrap();
        let (w1, w2) = (Wakeup::new(), Wakeup::new());
        let mut first = Box::pin(ch.put(1));
        let mut second = Box::pin(ch.put(2));
        assert!(poll_once(&mut first, &w1).is_pending());
        assert!(poll_once(&mut second, &w2).is_pending());
        let rx = ch.clone();
        let t = loom::thread::spawn(move || assert_eq!(rx.get_nowait(), Ok(0)));
        drop(first);
        t.join().unwrap();
        assert!(w2.take(), "the second putter was never woken");
        assert!(matches!(poll_once(&mut second, &w2), Poll::Ready(Ok(()))));
        assert_eq!(ch.get_nowait(), Ok(2));
    });
}
