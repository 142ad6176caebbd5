//! I/O readiness: IoRegistration (edge-triggered futures) and asyncio's
//! add_reader/add_writer callbacks. Not under Miri (no epoll there).
#![cfg(not(miri))]

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::{EventLoop, IoRegistration, get_running_loop, sleep};

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn a_registration_wakes_its_reader_when_data_arrives() {
    let lp = EventLoop::new();
    let got = lp
        .run_until_complete(async {
            let (mut reader, writer) = pair();
            let reg = IoRegistration::new(reader.as_raw_fd()).unwrap();
            let writer = Rc::new(RefCell::new(writer));
            let w = writer.clone();
            get_running_loop()
                .unwrap()
                .call_later(Duration::from_millis(20), move || {
                    w.borrow_mut().write_all(b"ping").unwrap();
                });
            let mut buf = [0u8; 16];
            loop {
                reg.readable().await.unwrap();
                match reader.read(&mut buf) {
                    Ok(n) => break buf[..n].to_vec(),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => reg.clear_readable(),
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .unwrap();
    assert_eq!(got, b"ping");
}

#[test]
fn readiness_after_the_peer_closed_survives_clear_readable() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let (mut reader, mut writer) = pair();
        // Data and the end of file arrive before anyone looks: one event.
        writer.write_all(b"last").unwrap();
        drop(writer);
        let reg = IoRegistration::new(reader.as_raw_fd()).unwrap();
        reg.readable().await.unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        // A short read suggests the buffer is drained; clearing must not lose
        // the end of file, which no new event would report.
        reg.clear_readable();
        asyncio_core::timeout(Duration::from_secs(5), reg.readable())
            .await
            .expect("the closed socket still reads as ready")
            .unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 0);
    })
    .unwrap();
}

#[test]
fn a_fresh_socket_is_writable() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let (a, _b) = pair();
        let reg = IoRegistration::new(a.as_raw_fd()).unwrap();
        reg.writable().await.unwrap();
    })
    .unwrap();
}

#[test]
fn add_reader_calls_back_while_readable_and_remove_reader_stops_it() {
    let lp = EventLoop::new();
    let (reader, mut writer) = pair();
    let reader = Rc::new(RefCell::new(reader));
    let got = Rc::new(RefCell::new(Vec::new()));
    let (r, g) = (reader.clone(), got.clone());
    let fd = reader.borrow().as_raw_fd();
    lp.add_reader(fd, move || {
        // Read one byte per call: the callback must come again while data is left.
        let mut b = [0u8; 1];
        if let Ok(1) = r.borrow_mut().read(&mut b) {
            g.borrow_mut().push(b[0]);
        }
    })
    .unwrap();
    writer.write_all(b"abc").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(*got.borrow(), b"abc", "level-triggered, as asyncio's");
    assert!(lp.remove_reader(fd));
    assert!(!lp.remove_reader(fd), "nothing left to remove");
    writer.write_all(b"d").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(*got.borrow(), b"abc");
}

#[test]
fn add_writer_calls_back_when_writable() {
    let lp = EventLoop::new();
    let (a, _b) = pair();
    let fd = a.as_raw_fd();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    let lp2 = lp.clone();
    lp.add_writer(fd, move || {
        *c.borrow_mut() += 1;
        lp2.remove_writer(fd);
    })
    .unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(*calls.borrow(), 1);
}

#[test]
fn bad_and_closed_fds() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        assert!(IoRegistration::new(-1).is_err(), "an invalid fd is refused");
        // A fd closed while still registered: the kernel drops it from epoll;
        // the loop carries on and dropping the registration is harmless.
        let (a, b) = pair();
        let reg = IoRegistration::new(a.as_raw_fd()).unwrap();
        drop(a);
        drop(b);
        sleep(Duration::from_millis(5)).await;
        drop(reg);
    })
    .unwrap();
    assert!(lp.add_reader(-1, || {}).is_err());
    assert!(
        IoRegistration::new(0).is_err(),
        "outside a loop: an error, not a panic"
    );
}

/// A waker that counts its wake-ups.
struct Count(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn counting_waker() -> (std::sync::Arc<Count>, std::task::Waker) {
    let c = std::sync::Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
    (c.clone(), std::task::Waker::from(c))
}

#[test]
fn a_registration_that_outlives_its_loop_reports_the_loop_closed() {
    let (reader, _writer) = pair();
    for close in [true, false] {
        let lp = EventLoop::new();
        let reg = lp
            .run_until_complete(async { IoRegistration::new(reader.as_raw_fd()).unwrap() })
            .unwrap();
        if close {
            lp.close().unwrap();
        }
        drop(lp);
        let (_, waker) = counting_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match reg.poll_readable(&mut cx) {
            std::task::Poll::Ready(Err(e)) => assert!(
                e.to_string().contains("closed"),
                "close={close}: unexpected error {e}"
            ),
            other => panic!("close={close}: a registration of a gone loop polled {other:?}"),
        }
        // Dropping it after its loop is a no-op, not a crash.
        drop(reg);
    }
}

#[test]
fn the_last_waker_to_poll_a_registration_is_the_one_woken() {
    let lp = EventLoop::new();
    lp.run_until_complete(async {
        let (reader, mut writer) = pair();
        let reg = IoRegistration::new(reader.as_raw_fd()).unwrap();
        let (first, w1) = counting_waker();
        let (second, w2) = counting_waker();
        assert!(
            reg.poll_readable(&mut std::task::Context::from_waker(&w1))
                .is_pending()
        );
        assert!(
            reg.poll_readable(&mut std::task::Context::from_waker(&w2))
                .is_pending()
        );
        writer.write_all(b"x").unwrap();
        // Let the loop see the event.
        for _ in 0..100 {
            if second.0.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                break;
            }
            sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(second.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(first.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        // Ready now, and again after clearing only once a new event comes.
        let mut cx = std::task::Context::from_waker(&w2);
        assert!(reg.poll_readable(&mut cx).is_ready());
        reg.clear_readable();
        assert!(reg.poll_readable(&mut cx).is_pending());
    })
    .unwrap();
}
