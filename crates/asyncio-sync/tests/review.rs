//! Regression tests for defects found in review.

mod common;

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Wake, Waker};

use asyncio_sync::{Condition, Lock, Queue};
use common::{counting_waker, poll_once, poll_with};

type Parked = Pin<Box<dyn Future<Output = ()>>>;

thread_local! {
    /// The future a [`Reentrant`] waker polls, synchronously, when woken.
    static PARKED: RefCell<Option<Parked>> = const { RefCell::new(None) };
}

/// A waker that polls the parked future inside `wake`, as an executor that
/// runs a task the moment it is woken would.
struct Reentrant;

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        let fut = PARKED.with(|p| p.borrow_mut().take());
        if let Some(mut fut) = fut {
            let waker = Waker::from(self);
            if poll_with(fut.as_mut(), &waker).is_pending() {
                PARKED.with(|p| *p.borrow_mut() = Some(fut));
            }
        }
    }
}

/// Polls `fut` once with a [`Reentrant`] waker and parks it if pending.
fn park(mut fut: Parked) {
    let waker = Waker::from(Arc::new(Reentrant));
    if poll_with(fut.as_mut(), &waker).is_pending() {
        PARKED.with(|p| *p.borrow_mut() = Some(fut));
    }
}

#[test]
fn a_lock_handed_over_to_a_waker_that_polls_at_once_does_not_panic() {
    let lock = Rc::new(Lock::with_value(0));
    let got = Rc::new(Cell::new(false));
    let guard = lock.try_lock().unwrap();
    let (l, g) = (lock.clone(), got.clone());
    park(Box::pin(async move {
        *l.lock().await += 1;
        g.set(true);
    }));
    assert!(!got.get());
    drop(guard); // hands the lock over; the waker polls the waiter right here
    assert!(got.get());
    assert!(!lock.locked());
    assert_eq!(*lock.try_lock().unwrap(), 1);
}

#[test]
fn condition_wait_releasing_to_a_waker_that_polls_at_once_does_not_panic() {
    let cond = Rc::new(Condition::with_value(0));
    let got = Rc::new(Cell::new(false));
    let guard = cond.try_lock().unwrap();
    let (c, g) = (cond.clone(), got.clone());
    park(Box::pin(async move {
        let mut guard = c.lock().await;
        *guard += 1;
        c.notify(1);
        g.set(true);
    }));
    let mut wait = Box::pin(cond.wait(guard));
    // Waiting releases the lock to the parked task, which runs at once.
    assert!(poll_once(wait.as_mut()).is_pending());
    assert!(got.get());
    let Poll::Ready(guard) = poll_once(wait.as_mut()) else {
        panic!("notified and the lock is free")
    };
    assert_eq!(*guard, 1);
}

#[test]
fn immediate_shutdown_wakes_the_waiters_even_if_an_item_panics_in_drop() {
    struct Bomb(bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            if self.0 && !std::thread::panicking() {
                panic!("item destructor panics");
            }
        }
    }
    let q = Queue::new(1);
    q.put_nowait(Bomb(true)).unwrap();
    let (waker, wakes) = counting_waker();
    let mut put = Box::pin(q.put(Bomb(false)));
    assert!(poll_with(put.as_mut(), &waker).is_pending());
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.shutdown(true)));
    assert!(res.is_err());
    // The blocked putter must still have been told about the shutdown.
    assert_eq!(wakes.get(), 1);
    assert!(matches!(
        poll_with(put.as_mut(), &waker),
        Poll::Ready(Err(_))
    ));
}
