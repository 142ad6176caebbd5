//! Wakers: woken from any thread, harmless after the loop is gone.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

use asyncio_core::{EventLoop, create_task};

mod common;
use common::{LoopThread, eventually};

/// A one-shot flag set by another thread.
#[derive(Default)]
struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    /// Sets the flag; returns whether it woke a waiting task.
    fn set(&self) -> bool {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        let woke = waker.is_some();
        if let Some(w) = waker {
            w.wake();
        }
        woke
    }

    /// Whether a task waits on the flag (registered its waker).
    fn has_waiter(&self) -> bool {
        self.state.lock().unwrap().1.is_some()
    }
}

struct Wait(Arc<Signal>);

impl Future for Wait {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.state.lock().unwrap();
        if s.0 {
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

#[test]
fn a_wake_from_another_thread_resumes_an_idle_loop() {
    let lp = EventLoop::new();
    let signal = Arc::new(Signal::default());
    let s = signal.clone();
    let loop_thread = LoopThread::current();
    let th = thread::spawn(move || {
        // The task waits on the signal, and the loop, with nothing else to
        // do, sleeps in the kernel: only this wake can resume it.
        assert!(eventually(|| s.has_waiter()), "the task never waited");
        loop_thread.wait_until_parked();
        s.set()
    });
    lp.run_until_complete(Wait(signal)).unwrap();
    assert!(th.join().unwrap(), "the wake came from the other thread");
}

#[test]
fn many_foreign_wakes_of_many_tasks_all_arrive() {
    let lp = EventLoop::new();
    let signals: Vec<Arc<Signal>> = (0..50).map(|_| Arc::new(Signal::default())).collect();
    let ss = signals.clone();
    let th = thread::spawn(move || {
        // Every task waits before the first wake: each wake below is a real
        // foreign wake of a waiting task.
        assert!(
            eventually(|| ss.iter().all(|s| s.has_waiter())),
            "the tasks never all waited"
        );
        ss.iter().filter(|s| s.set()).count()
    });
    lp.run_until_complete(async move {
        let tasks: Vec<_> = signals.into_iter().map(|s| create_task(Wait(s))).collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(
        th.join().unwrap(),
        50,
        "every task was woken from the thread"
    );
}

/// A waker that wraps the task's waker and counts its own drop, so a test
/// can see the last copy go.
struct Counted {
    inner: Waker,
    dropped: Arc<AtomicUsize>,
}

impl Wake for Counted {
    fn wake(self: Arc<Self>) {
        self.inner.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.inner.wake_by_ref();
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// Whether the memory is handled right (no use after free, no double free)
/// only Miri and ASan can tell (ci/miri.sh runs this file); the test itself
/// checks that the wakes have no effect: the task's future is not polled
/// again nor dropped twice, and the wakes return.
#[test]
fn waking_after_the_loop_is_gone_polls_nothing_memory_checked_under_miri() {
    struct Flag(Rc<Cell<usize>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let polls = Rc::new(Cell::new(0));
    let drops = Rc::new(Cell::new(0));
    {
        let lp = EventLoop::new();
        let (st, p, flag) = (stash.clone(), polls.clone(), Flag(drops.clone()));
        let t = lp.create_task(std::future::poll_fn(move |cx| {
            let _keep = &flag;
            p.set(p.get() + 1);
            *st.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        lp.run_until_complete(asyncio_core::yield_now()).unwrap();
        assert_eq!(polls.get(), 1);
        drop(t);
        lp.close().unwrap();
    }
    assert_eq!(drops.get(), 1, "close dropped the pending task's future");
    let waker = stash.lock().unwrap().take().unwrap();
    let w2 = waker.clone();
    thread::spawn(move || w2.wake()).join().unwrap();
    waker.wake_by_ref();
    waker.wake();
    assert_eq!(polls.get(), 1, "nothing polled the future again");
    assert_eq!(drops.get(), 1, "nor dropped it again");
}

/// As above, the memory is checked by Miri and ASan; the test checks that the
/// task's waker, kept past the task's end, goes on the other thread: a waker
/// wrapping it, the last thing holding it, is dropped there exactly once.
#[test]
fn a_finished_tasks_waker_dropped_on_another_thread_memory_checked_under_miri() {
    let lp = EventLoop::new();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    let (st, d) = (stash.clone(), dropped.clone());
    lp.run_until_complete(async move {
        let t = create_task(std::future::poll_fn(move |cx| {
            let counted = Counted {
                inner: cx.waker().clone(),
                dropped: d.clone(),
            };
            *st.lock().unwrap() = Some(Waker::from(Arc::new(counted)));
            Poll::Ready(())
        }));
        t.await.unwrap();
    })
    .unwrap();
    let waker = stash.lock().unwrap().take().unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 0);
    let on = thread::spawn(move || {
        drop(waker);
        thread::current().id()
    })
    .join()
    .unwrap();
    assert_ne!(on, thread::current().id());
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn a_self_wake_on_the_loop_thread_reschedules_once() {
    let lp = EventLoop::new();
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    lp.run_until_complete(std::future::poll_fn(move |cx| {
        p.set(p.get() + 1);
        if p.get() == 3 {
            return Poll::Ready(());
        }
        // Several wakes in one poll still queue the task once.
        cx.waker().wake_by_ref();
        cx.waker().wake_by_ref();
        let owned = cx.waker().clone();
        owned.wake(); // the by-value path, which gives its count back
        Poll::Pending
    }))
    .unwrap();
    assert_eq!(polls.get(), 3);
}
