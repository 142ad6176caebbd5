//! review29: probes of the allocation-free `call_soon_threadsafe` (the
//! `wakeup` branch) that need no I/O, so that Miri (with its leak checker)
//! runs them too. Bounded in count and time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncio_core::{EventLoop, sleep};

/// Callbacks sent from other threads that are still queued when the loop
/// closes, some of whose destructors panic: each is dropped exactly once,
/// none runs, and close returns Ok.
#[test]
fn r29_queued_threadsafe_callbacks_with_panicking_drops_at_close() {
    struct Bomb(Arc<AtomicUsize>, bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            if self.1 {
                panic!("r29 bomb");
            }
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let handle = lp.handle();
    let (d, r) = (Arc::clone(&dropped), Arc::clone(&ran));
    std::thread::spawn(move || {
        for i in 0..10 {
            let b = Bomb(Arc::clone(&d), i % 3 == 0);
            let r = Arc::clone(&r);
            handle
                .call_soon_threadsafe(move || {
                    let _b = &b;
                    r.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
    })
    .join()
    .unwrap();
    assert!(lp.close().is_ok());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 10);
    drop(lp);
}

/// The same, with the owning handle dropped instead of close().
#[test]
fn r29_queued_threadsafe_callbacks_with_panicking_drops_when_the_loop_drops() {
    struct Bomb(Arc<AtomicUsize>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
            panic!("r29 bomb");
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let handle = lp.handle();
    for _ in 0..5 {
        let b = Bomb(Arc::clone(&dropped));
        handle
            .call_soon_threadsafe(move || {
                let _b = &b;
            })
            .unwrap();
    }
    drop(lp);
    assert_eq!(dropped.load(Ordering::SeqCst), 5);
    // After the loop went: refused, and the callback dropped by the sender.
    let b = Bomb(Arc::clone(&dropped));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle.call_soon_threadsafe(move || {
            let _b = &b;
        })
    }));
    println!("r29: call_soon_threadsafe on a dropped loop: {r:?}");
    assert_eq!(dropped.load(Ordering::SeqCst), 6);
}

/// Injected callbacks run in the order sent, interleaved with foreign wakes
/// and with a callback that panics in the middle: the ones after it run too,
/// in order, in the same turn.
#[test]
fn r29_a_panicking_injected_callback_does_not_stop_the_rest() {
    let got = {
        let lp = EventLoop::new();
        lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
        let order: Arc<Mutex<Vec<usize>>> = Arc::default();
        let handle = lp.handle();
        let o = Arc::clone(&order);
        let t = std::thread::spawn(move || {
            for i in 0..50 {
                let o = Arc::clone(&o);
                handle
                    .call_soon_threadsafe(move || {
                        o.lock().unwrap().push(i);
                        if i % 7 == 3 {
                            panic!("r29 injected panic {i}");
                        }
                    })
                    .unwrap();
            }
        });
        t.join().unwrap();
        let o = Arc::clone(&order);
        lp.run_until_complete(async move {
            for _ in 0..1000 {
                if o.lock().unwrap().len() == 50 {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
        lp.close().unwrap();
        order.lock().unwrap().clone()
    };
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

/// A callback sent from another thread that calls `stop()` ends
/// `run_forever` after its turn; the callbacks sent with it in the same
/// batch run in that turn (asyncio: everything ready at the turn's start).
#[test]
fn r29_stop_from_an_injected_callback_runs_the_rest_of_its_batch() {
    let lp = EventLoop::new();
    let handle = lp.handle();
    let ran: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (r1, r2) = (Arc::clone(&ran), Arc::clone(&ran));
    let h2 = handle.clone();
    std::thread::spawn(move || {
        h2.call_soon_threadsafe(move || r1.lock().unwrap().push("a"))
            .unwrap();
        h2.stop().unwrap();
        h2.call_soon_threadsafe(move || r2.lock().unwrap().push("b"))
            .unwrap();
    })
    .join()
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(*ran.lock().unwrap(), ["a", "b"]);
    drop(handle);
    lp.close().unwrap();
}
