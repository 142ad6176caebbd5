//! `EventLoop::add_signal_handler` / `remove_signal_handler`, as asyncio's
//! (test_unix_events' signal handler tests, written anew).
#![cfg(not(miri))]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::{EventLoop, SignalError, sleep};

/// Sends `signum` to this process.
fn kill_self(signum: i32) -> i32 {
    // SAFETY: kill(2) with this process's id and a valid signal number has no
    // memory-safety preconditions.
    unsafe { libc::kill(libc::getpid(), signum) }
}

/// Waits on the loop (bounded) until `flag` is set.
async fn until(flag: Rc<Cell<u32>>, n: u32) {
    for _ in 0..10_000 {
        if flag.get() >= n {
            return;
        }
        sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn a_signal_runs_its_handler_on_the_loop_thread() {
    let lp = EventLoop::new();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let loop_thread = std::thread::current().id();
    let on_thread = Rc::new(Cell::new(false));
    let o = on_thread.clone();
    lp.add_signal_handler(libc::SIGUSR1, move || {
        c.set(c.get() + 1);
        o.set(std::thread::current().id() == loop_thread);
    })
    .unwrap();
    // Raised from another thread: the loop, asleep in epoll, is woken by the
    // self-pipe (no thread of the loop's own is involved).
    let raiser = std::thread::spawn(|| kill_self(libc::SIGUSR1));
    lp.run_until_complete(until(calls.clone(), 1)).unwrap();
    assert_eq!(raiser.join().unwrap(), 0);
    assert!(calls.get() >= 1, "the handler ran");
    assert!(on_thread.get(), "on the loop's thread");
    assert!(lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    assert!(!lp.remove_signal_handler(libc::SIGUSR1).unwrap());
    lp.close().unwrap();
}

#[test]
fn a_loop_waiting_only_for_a_signal_is_not_stalled() {
    use std::cell::RefCell;
    use std::task::{Poll, Waker};
    let lp = EventLoop::new();
    let calls = Rc::new(Cell::new(0));
    let waiter: Rc<RefCell<Option<Waker>>> = Rc::default();
    let (c, w) = (calls.clone(), waiter.clone());
    lp.add_signal_handler(libc::SIGUSR2, move || {
        c.set(c.get() + 1);
        if let Some(w) = w.borrow_mut().take() {
            w.wake();
        }
    })
    .unwrap();
    let raiser = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(20));
        kill_self(libc::SIGUSR2)
    });
    // The main task waits with no timer, no I/O and no waker held elsewhere:
    // only the signal can wake the loop (without the handler this would be
    // RuntimeError::Stalled at once).
    let c = calls.clone();
    let out = lp.run_until_complete(std::future::poll_fn(move |cx| {
        if c.get() > 0 {
            Poll::Ready(())
        } else {
            *waiter.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }
    }));
    assert_eq!(out, Ok(()));
    assert_eq!(raiser.join().unwrap(), 0);
    lp.close().unwrap();
}

#[test]
fn bad_signal_numbers_are_typed_errors() {
    let lp = EventLoop::new();
    for bad in [0, -1, 1000] {
        assert!(matches!(
            lp.add_signal_handler(bad, || {}),
            Err(SignalError::Invalid(n)) if n == bad
        ));
        assert!(matches!(
            lp.remove_signal_handler(bad),
            Err(SignalError::Invalid(_))
        ));
    }
    for forbidden in [libc::SIGKILL, libc::SIGSTOP] {
        assert!(matches!(
            lp.add_signal_handler(forbidden, || {}),
            Err(SignalError::Forbidden(n)) if n == forbidden
        ));
    }
    assert!(!lp.remove_signal_handler(libc::SIGHUP).unwrap());
    lp.close().unwrap();
    assert!(matches!(
        lp.add_signal_handler(libc::SIGHUP, || {}),
        Err(SignalError::Closed)
    ));
}

#[test]
fn a_handler_replaced_or_left_at_close_is_dropped() {
    struct Flag(Rc<Cell<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let lp = EventLoop::new();
    let f = Flag(drops.clone());
    lp.add_signal_handler(libc::SIGWINCH, move || {
        let _ = &f;
    })
    .unwrap();
    let f = Flag(drops.clone());
    lp.add_signal_handler(libc::SIGWINCH, move || {
        let _ = &f;
    })
    .unwrap();
    assert_eq!(drops.get(), 1, "the replaced handler is gone");
    lp.close().unwrap();
    assert_eq!(drops.get(), 2, "close removes the rest");
}
