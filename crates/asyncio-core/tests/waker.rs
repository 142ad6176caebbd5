//! Wakers: `Send + Sync`, woken from any thread, harmless after the loop is gone.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use asyncio_core::{EventLoop, create_task};

/// A one-shot flag set by another thread.
#[derive(Default)]
struct Signal {
    state: Mutex<(bool, Option<Waker>)>,
}

impl Signal {
    fn set(&self) {
        let waker = {
            let mut s = self.state.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
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

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn wakers_are_send_and_sync() {
    assert_send_sync::<Waker>();
}

#[test]
fn a_wake_from_another_thread_resumes_an_idle_loop() {
    let lp = EventLoop::new();
    let signal = Arc::new(Signal::default());
    let s = signal.clone();
    let th = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        s.set();
    });
    lp.run_until_complete(Wait(signal)).unwrap();
    th.join().unwrap();
}

#[test]
fn many_foreign_wakes_of_many_tasks_all_arrive() {
    let lp = EventLoop::new();
    let signals: Vec<Arc<Signal>> = (0..50).map(|_| Arc::new(Signal::default())).collect();
    let ss = signals.clone();
    let th = thread::spawn(move || {
        for s in ss {
            s.set();
        }
    });
    lp.run_until_complete(async move {
        let tasks: Vec<_> = signals.into_iter().map(|s| create_task(Wait(s))).collect();
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    th.join().unwrap();
}

#[test]
fn waking_after_the_loop_is_gone_does_nothing() {
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    {
        let lp = EventLoop::new();
        let st = stash.clone();
        let t = lp.create_task(std::future::poll_fn(move |cx| {
            *st.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
        lp.run_until_complete(asyncio_core::yield_now()).unwrap();
        drop(t);
        lp.close().unwrap();
    }
    let waker = stash.lock().unwrap().take().unwrap();
    let w2 = waker.clone();
    thread::spawn(move || w2.wake()).join().unwrap();
    waker.wake_by_ref();
    waker.wake();
}

#[test]
fn a_waker_dropped_on_another_thread_after_the_task_finished_frees_nothing_twice() {
    let lp = EventLoop::new();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let st = stash.clone();
    lp.run_until_complete(async move {
        let t = create_task(std::future::poll_fn(move |cx| {
            *st.lock().unwrap() = Some(cx.waker().clone());
            Poll::Ready(())
        }));
        t.await.unwrap();
    })
    .unwrap();
    let waker = stash.lock().unwrap().take().unwrap();
    thread::spawn(move || drop(waker)).join().unwrap();
}

#[test]
fn a_self_wake_on_the_loop_thread_reschedules_once() {
    let lp = EventLoop::new();
    let polls = std::rc::Rc::new(std::cell::Cell::new(0));
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
