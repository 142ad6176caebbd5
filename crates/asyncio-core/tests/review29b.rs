//! review29b: probes of 82f3b65 (IoRegistration reads an Rc<IoState> shared
//! with its entry) and ec7d7f1 (the loop reuses its I/O wake-up buffer).
//! Bounded in count and time.
#![cfg(all(target_os = "linux", not(miri)))]

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use asyncio_core::{EventLoop, IoRegistration, get_running_loop, sleep};

mod common;
use common::{child_mode, run_child};

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// A waker whose drop (and optionally wake) panics; counts drops.
struct Bomb {
    drops: Arc<AtomicUsize>,
    wakes: Arc<AtomicUsize>,
    panic_on_drop: bool,
    panic_on_wake: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_drop {
            panic!("r29b: waker drop panics");
        }
    }
}

impl std::task::Wake for Bomb {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if self.panic_on_wake {
            panic!("r29b: waker wake panics");
        }
    }
}

fn bomb(panic_on_drop: bool, panic_on_wake: bool) -> (Arc<AtomicUsize>, Arc<AtomicUsize>, Waker) {
    let drops = Arc::new(AtomicUsize::new(0));
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Waker::from(Arc::new(Bomb {
        drops: drops.clone(),
        wakes: wakes.clone(),
        panic_on_drop,
        panic_on_wake,
    }));
    (drops, wakes, w)
}

/// Two wakers parked in one registration (one readable, one writable), both
/// panicking on drop; the loop closes. Every other user value the loop drops
/// goes through the gate one at a time; here the second drop happens while
/// the first unwinds: does the process survive?
#[test]
fn r29b_two_panicking_parked_wakers_when_the_loop_closes() {
    const NAME: &str = "r29b_two_panicking_parked_wakers_when_the_loop_closes";
    if !child_mode(NAME) {
        let (status, out, err) = run_child(NAME);
        assert!(
            status.success() && out.contains("r29b: closed"),
            "status {status:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        return;
    }
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let (a, _b) = pair();
    // Fill the socket so that it is not writable: the writable waker parks.
    let mut filler = a.try_clone().unwrap();
    while filler.write(&[0u8; 4096]).is_ok() {}
    let reg = lp
        .run_until_complete(async {
            let reg = IoRegistration::new(a.as_raw_fd()).unwrap();
            sleep(Duration::from_millis(2)).await;
            // Whatever was ready at registration: cleared.
            reg.clear_readable();
            reg.clear_writable();
            let (_, _, w1) = bomb(true, false);
            let (_, _, w2) = bomb(true, false);
            assert!(
                reg.poll_readable(&mut Context::from_waker(&w1))
                    .is_pending()
            );
            assert!(
                reg.poll_writable(&mut Context::from_waker(&w2))
                    .is_pending()
            );
            reg
        })
        .unwrap();
    lp.close().unwrap();
    println!("r29b: closed");
    drop(reg);
}

/// The same two wakers, with the registration dropped on the loop (the
/// entry's removal drops them outside the gate).
#[test]
fn r29b_two_panicking_parked_wakers_when_the_registration_drops() {
    const NAME: &str = "r29b_two_panicking_parked_wakers_when_the_registration_drops";
    if !child_mode(NAME) {
        let (status, out, err) = run_child(NAME);
        assert!(
            status.success() && out.contains("r29b: dropped"),
            "status {status:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
        return;
    }
    let lp = EventLoop::new();
    lp.set_exception_handler(Some(|_: &asyncio_core::ExceptionContext| {}));
    let (a, _b) = pair();
    let mut filler = a.try_clone().unwrap();
    while filler.write(&[0u8; 4096]).is_ok() {}
    let r = lp.run_until_complete(async {
        let reg = IoRegistration::new(a.as_raw_fd()).unwrap();
        sleep(Duration::from_millis(2)).await;
        reg.clear_readable();
        reg.clear_writable();
        let (_, _, w1) = bomb(true, false);
        let (_, _, w2) = bomb(true, false);
        assert!(
            reg.poll_readable(&mut Context::from_waker(&w1))
                .is_pending()
        );
        assert!(
            reg.poll_writable(&mut Context::from_waker(&w2))
                .is_pending()
        );
        // The registration now holds the wakers' last references.
        drop((w1, w2));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(reg)));
        r.is_err()
    });
    println!("r29b: dropped (the drop panicked: {r:?})");
    lp.close().unwrap();
}

/// A waker that panics on wake, woken in the same wait as others: the
/// others are still woken, and the loop's next waits (the reused buffer)
/// still deliver.
#[test]
fn r29b_a_panicking_wake_in_a_batch_loses_no_other_wake() {
    let lp = EventLoop::new();
    let reports = Rc::new(Cell::new(0));
    let r = reports.clone();
    lp.set_exception_handler(Some(move |_: &asyncio_core::ExceptionContext| {
        r.set(r.get() + 1)
    }));
    lp.run_until_complete(async {
        let pairs: Vec<_> = (0..6).map(|_| pair()).collect();
        let regs: Vec<_> = pairs
            .iter()
            .map(|(a, _)| IoRegistration::new(a.as_raw_fd()).unwrap())
            .collect();
        sleep(Duration::from_millis(2)).await;
        for round in 0..20 {
            let mut counts = Vec::new();
            let mut wakers = Vec::new();
            for (i, reg) in regs.iter().enumerate() {
                reg.clear_readable();
                let (_, wakes, w) = bomb(false, i % 2 == 0);
                assert!(reg.poll_readable(&mut Context::from_waker(&w)).is_pending());
                counts.push(wakes);
                wakers.push(w);
            }
            for (_, b) in &pairs {
                {
                    let mut s: &UnixStream = b;
                    s.write_all(b"x").unwrap();
                }
            }
            for _ in 0..200 {
                if counts.iter().all(|c| c.load(Ordering::SeqCst) == 1) {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            for (i, c) in counts.iter().enumerate() {
                assert_eq!(c.load(Ordering::SeqCst), 1, "round {round}: waker {i}");
            }
            for (a, _) in &pairs {
                let mut buf = [0u8; 16];
                let _ = std::io::Read::read(&mut &*a, &mut buf);
            }
        }
    })
    .unwrap();
    assert_eq!(reports.get(), 20 * 3);
    lp.close().unwrap();
}

thread_local! {
    static VICTIM: RefCell<Option<IoRegistration>> = const { RefCell::new(None) };
    static REPLACEMENT: RefCell<Option<IoRegistration>> = const { RefCell::new(None) };
}

fn noop_clone(p: *const ()) -> RawWaker {
    RawWaker::new(p, &DROPPER_VTABLE)
}
fn dropper_wake(_: *const ()) {
    // Drops another registration from inside a wake, and registers a new
    // fd that takes its slab key.
    let victim = VICTIM.with(|v| v.borrow_mut().take());
    if let Some(v) = victim {
        let fd = REPL_FD.with(Cell::get);
        drop(v);
        REPLACEMENT.with(|r| *r.borrow_mut() = Some(IoRegistration::new(fd).unwrap()));
    }
}
fn dropper_wake_by_ref(p: *const ()) {
    dropper_wake(p);
}
fn noop_drop(_: *const ()) {}
static DROPPER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(noop_clone, dropper_wake, dropper_wake_by_ref, noop_drop);

thread_local! {
    static REPL_FD: Cell<i32> = const { Cell::new(-1) };
}

/// A registration dropped (and its key reused by a new one) from inside a
/// waker woken by the loop's dispatch, while the dropped one's own wake-up
/// is in the same batch: nothing panics, the new registration works.
#[test]
fn r29b_a_registration_dropped_from_a_wake_during_dispatch() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let (a1, b1) = pair();
        let (a2, b2) = pair();
        let (a3, b3) = pair();
        let r1 = IoRegistration::new(a1.as_raw_fd()).unwrap();
        let r2 = IoRegistration::new(a2.as_raw_fd()).unwrap();
        sleep(Duration::from_millis(2)).await;
        r1.clear_readable();
        r2.clear_readable();
        // SAFETY: the vtable's functions ignore the data pointer.
        let dropper = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &DROPPER_VTABLE)) };
        let (_, w2wakes, w2) = bomb(false, false);
        assert!(
            r1.poll_readable(&mut Context::from_waker(&dropper))
                .is_pending()
        );
        assert!(r2.poll_readable(&mut Context::from_waker(&w2)).is_pending());
        VICTIM.with(|v| *v.borrow_mut() = Some(r2));
        REPL_FD.with(|f| f.set(a3.as_raw_fd()));
        (&b1).write_all(b"x").unwrap();
        (&b2).write_all(b"x").unwrap();
        for _ in 0..200 {
            if REPLACEMENT.with(|r| r.borrow().is_some()) {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        let r3 = REPLACEMENT
            .with(|r| r.borrow_mut().take())
            .expect("the wake ran");
        println!(
            "r29b: r2's waker woken {} times",
            w2wakes.load(Ordering::SeqCst)
        );
        r3.clear_readable();
        (&b3).write_all(b"y").unwrap();
        let got = asyncio_core::timeout(Duration::from_secs(5), r3.readable()).await;
        assert!(matches!(got, Ok(Ok(()))), "{got:?}");
        drop((r1, r3, b1, b2, b3, a1, a2));
    })
    .unwrap();
    lp.close().unwrap();
}

/// A waker parked and replaced many times, each replaced waker's drop
/// re-entering the same registration with yet another waker; at the end the
/// last parked waker is the one woken, and every replaced one was dropped.
#[test]
fn r29b_a_replaced_wakers_drop_reentering_the_registration() {
    thread_local! {
        static REG: RefCell<Option<Rc<IoRegistration>>> = const { RefCell::new(None) };
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }
    struct Reenter {
        drops: Arc<AtomicUsize>,
        wakes: Arc<AtomicUsize>,
    }
    impl Drop for Reenter {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::SeqCst);
            // Re-enter (bounded) with a fresh waker.
            let d = DEPTH.with(|d| {
                d.set(d.get() + 1);
                d.get()
            });
            if d < 50
                && let Some(reg) = REG.with(|r| r.borrow().clone())
            {
                let w = Waker::from(Arc::new(Reenter {
                    drops: self.drops.clone(),
                    wakes: self.wakes.clone(),
                }));
                let _ = reg.poll_readable(&mut Context::from_waker(&w));
            }
        }
    }
    impl std::task::Wake for Reenter {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }
    let lp = EventLoop::new();
    let drops = Arc::new(AtomicUsize::new(0));
    let wakes = Arc::new(AtomicUsize::new(0));
    let (d, wk) = (drops.clone(), wakes.clone());
    lp.run_until_complete(async move {
        let (a, b) = pair();
        let reg = Rc::new(IoRegistration::new(a.as_raw_fd()).unwrap());
        sleep(Duration::from_millis(2)).await;
        reg.clear_readable();
        REG.with(|r| *r.borrow_mut() = Some(reg.clone()));
        for _ in 0..10 {
            let w = Waker::from(Arc::new(Reenter {
                drops: d.clone(),
                wakes: wk.clone(),
            }));
            assert!(reg.poll_readable(&mut Context::from_waker(&w)).is_pending());
        }
        REG.with(|r| r.borrow_mut().take());
        (&b).write_all(b"x").unwrap();
        for _ in 0..200 {
            if wk.load(Ordering::SeqCst) > 0 {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(
            wk.load(Ordering::SeqCst),
            1,
            "exactly the last parked waker"
        );
        drop(reg);
        drop((a, b));
    })
    .unwrap();
    lp.close().unwrap();
    println!("r29b: drops {}", drops.load(Ordering::SeqCst));
}

/// asyncio: a reader removed by another reader's callback in the same
/// iteration does not run (its handle is cancelled). Two fds ready in one
/// wait, each reader removes the other: exactly one runs.
#[test]
fn r29b_a_reader_removed_by_another_in_the_same_turn_does_not_run() {
    let lp = EventLoop::new();
    let ran = Rc::new(Cell::new(0));
    lp.run_until_complete({
        let ran = ran.clone();
        async move {
            let (a1, b1) = pair();
            let (a2, b2) = pair();
            let lp = get_running_loop().unwrap();
            let (f1, f2) = (a1.as_raw_fd(), a2.as_raw_fd());
            for (mine, other) in [(f1, f2), (f2, f1)] {
                let (lp2, ran) = (lp.clone(), ran.clone());
                lp.add_reader(mine, move || {
                    ran.set(ran.get() + 1);
                    lp2.remove_reader(mine);
                    lp2.remove_reader(other);
                })
                .unwrap();
            }
            (&b1).write_all(b"x").unwrap();
            (&b2).write_all(b"x").unwrap();
            sleep(Duration::from_millis(20)).await;
            drop((a1, a2, b1, b2));
        }
    })
    .unwrap();
    lp.close().unwrap();
    assert_eq!(ran.get(), 1, "a removed reader's queued callback ran");
}

/// Replacing a reader whose old callback owns an IoRegistration: the old
/// callback is dropped while the loop's I/O table is borrowed.
#[test]
fn r29b_replacing_a_reader_whose_callback_owns_a_registration() {
    let lp = EventLoop::new();
    let out = lp.run_until_complete(async {
        let (a1, _b1) = pair();
        let (a2, _b2) = pair();
        let lp = get_running_loop().unwrap();
        let reg = IoRegistration::new(a2.as_raw_fd()).unwrap();
        lp.add_reader(a1.as_raw_fd(), move || {
            let _ = &reg;
        })
        .unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lp.add_reader(a1.as_raw_fd(), || {})
        }));
        lp.remove_reader(a1.as_raw_fd());
        drop((a1, a2));
        r.map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    lp.close().unwrap();
    let out = out.unwrap();
    assert!(out.is_ok(), "add_reader panicked: {out:?}");
}

/// A registration polled after its loop was dropped (not closed explicitly)
/// and after a new loop took its place on the thread: Closed, and its drop
/// does not touch the new loop.
#[test]
fn r29b_a_registration_outliving_its_loop_used_on_a_new_loop() {
    let (a, b) = pair();
    let lp = EventLoop::new();
    let reg = lp
        .run_until_complete(async { IoRegistration::new(a.as_raw_fd()).unwrap() })
        .unwrap();
    drop(lp);
    let lp2 = EventLoop::new();
    let res = lp2
        .run_until_complete(async {
            let keep = IoRegistration::new(b.as_raw_fd()).unwrap();
            let r = std::future::poll_fn(|cx| match reg.poll_readable(cx) {
                Poll::Ready(r) => Poll::Ready(r.map_err(|e| e.to_string())),
                Poll::Pending => Poll::Ready(Err("pending".into())),
            })
            .await;
            drop(reg);
            // The new loop's registration is intact.
            (&a).write_all(b"z").unwrap();
            let ok = asyncio_core::timeout(Duration::from_secs(5), keep.readable()).await;
            (r, ok.is_ok())
        })
        .unwrap();
    lp2.close().unwrap();
    assert!(
        res.0.as_ref().is_err_and(|e| e.contains("closed")),
        "{res:?}"
    );
    assert!(res.1);
}

thread_local! {
    static NESTED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn nested_wake(_: *const ()) {
    // A nested run of another loop, and of the running one, from inside a
    // wake the loop's I/O dispatch makes (its wake-up buffer is in use).
    let other = EventLoop::new();
    let r = other.run_until_complete(async { 1 });
    NESTED.with(|n| n.borrow_mut().push(format!("{r:?}")));
    drop(other);
}
fn nested_wake_by_ref(p: *const ()) {
    nested_wake(p);
}
fn nested_clone(p: *const ()) -> RawWaker {
    RawWaker::new(p, &NESTED_VTABLE)
}
static NESTED_VTABLE: RawWakerVTable =
    RawWakerVTable::new(nested_clone, nested_wake, nested_wake_by_ref, noop_drop);

/// A nested run from inside a waker woken by the loop's I/O dispatch is
/// refused, and the loop's later waits still deliver readiness.
#[test]
fn r29b_a_nested_run_from_a_wake_during_dispatch_is_refused() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let (a, b) = pair();
        let reg = IoRegistration::new(a.as_raw_fd()).unwrap();
        sleep(Duration::from_millis(2)).await;
        reg.clear_readable();
        // SAFETY: the vtable's functions ignore the data pointer.
        let w = unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &NESTED_VTABLE)) };
        assert!(reg.poll_readable(&mut Context::from_waker(&w)).is_pending());
        (&b).write_all(b"x").unwrap();
        for _ in 0..200 {
            if NESTED.with(|n| !n.borrow().is_empty()) {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        let got = NESTED.with(|n| n.borrow().clone());
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("Err"),
            "a nested run was allowed: {got:?}"
        );
        let mut buf = [0u8; 4];
        let _ = std::io::Read::read(&mut &a, &mut buf);
        reg.clear_readable();
        (&b).write_all(b"y").unwrap();
        let ok = asyncio_core::timeout(Duration::from_secs(5), reg.readable()).await;
        assert!(matches!(ok, Ok(Ok(()))));
        drop((reg, a, b));
    })
    .unwrap();
    lp.close().unwrap();
}
