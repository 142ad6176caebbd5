//! Protocols are user code: they may panic or call back into their
//! transport from any callback. Each test is one guarantee; the last runs a
//! protocol echo with a fault injected at every gate call (asyncio-core's
//! fault plan).

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use asyncio_core::fault_plan::{self, Fault, InjectedPanic};
use asyncio_core::{EventLoop, ExceptionContext};
use asyncio_streams::{Protocol, Transport, create_connection, create_server};
use common::{run, until};

/// Collects what reaches the loop's exception handler.
fn capture_reports() -> Rc<RefCell<Vec<String>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    asyncio_core::get_running_loop()
        .expect("inside a running loop")
        .set_exception_handler(Some(move |ctx: &ExceptionContext| {
            s.borrow_mut().push(ctx.to_string())
        }));
    seen
}

/// Panics in the callback it is told to, records the rest.
struct Faulty {
    panic_in: &'static str,
    t: Option<Transport>,
    log: Rc<RefCell<Vec<String>>>,
}

impl Faulty {
    fn maybe_panic(&self, here: &str) {
        if self.panic_in == here {
            panic!("{here} failed on purpose");
        }
    }
}

impl Protocol for Faulty {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
        self.log.borrow_mut().push("made".into());
        self.maybe_panic("connection_made");
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log.borrow_mut().push("data".into());
        self.maybe_panic("data_received");
        let _ = self.t.as_ref().unwrap().write(data);
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof".into());
        self.maybe_panic("eof_received");
        false
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        self.log.borrow_mut().push(match exc {
            None => "lost".into(),
            Some(e) => format!("lost: {e}"),
        });
        self.maybe_panic("connection_lost");
    }
}

async fn client_against_faulty_server(panic_in: &'static str) -> (Vec<String>, Vec<String>) {
    let reports = capture_reports();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let server = create_server(
        move || Faulty {
            panic_in,
            t: None,
            log: l.clone(),
        },
        "127.0.0.1",
        0,
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    let (mut r, mut w) = asyncio_streams::open_connection("127.0.0.1", port)
        .await
        .unwrap();
    w.write(b"ping");
    let _ = r.read(4).await;
    let _ = w.write_eof();
    let _ = r.read_to_eof().await;
    until(|| log.borrow().iter().any(|l| l.starts_with("lost"))).await;
    server.close();
    server.wait_closed().await;
    let log = log.borrow().clone();
    let reports = reports.borrow().clone();
    (log, reports)
}

#[test]
fn a_panic_in_data_received_is_reported_and_connection_lost_gets_it() {
    let (log, reports) = run(client_against_faulty_server("data_received"));
    assert_eq!(log[..2], ["made", "data"]);
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[2].contains("data_received failed on purpose"),
        "{log:?}"
    );
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("protocol.data_received() call failed"));
}

#[test]
fn a_panic_in_connection_made_is_fatal_and_connection_lost_still_comes() {
    let (log, reports) = run(client_against_faulty_server("connection_made"));
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(log[1].contains("connection_made failed on purpose"));
    assert!(reports[0].contains("protocol.connection_made() call failed"));
}

#[test]
fn a_panic_in_eof_received_is_fatal() {
    let (log, reports) = run(client_against_faulty_server("eof_received"));
    assert_eq!(log[..3], ["made", "data", "eof"]);
    assert!(log[3].contains("eof_received failed on purpose"), "{log:?}");
    assert!(reports[0].contains("protocol.eof_received() call failed"));
}

#[test]
fn a_panic_in_connection_lost_is_only_reported() {
    let (log, reports) = run(client_against_faulty_server("connection_lost"));
    assert_eq!(log, ["made", "data", "eof", "lost"]);
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("protocol.connection_lost() failed"));
}

#[test]
fn a_panicking_protocol_factory_drops_that_connection_and_the_server_goes_on() {
    run(async {
        let reports = capture_reports();
        let n = Rc::new(Cell::new(0));
        let n2 = n.clone();
        let server = create_server(
            move || {
                n2.set(n2.get() + 1);
                assert!(n2.get() != 1, "the first protocol cannot be made");
                Faulty {
                    panic_in: "",
                    t: None,
                    log: Rc::default(),
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        // The first connection is dropped.
        assert!(r.read_to_eof().await.map_or(true, |d| d.is_empty()));
        // The second is served.
        let (mut r, mut w) = asyncio_streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        w.write(b"ok");
        assert_eq!(r.readexactly(2).await.unwrap(), b"ok");
        assert!(reports.borrow()[0].contains("protocol_factory panicked"));
        server.close();
    });
}

/// Writes a large reply from inside data_received with a tiny high-water
/// mark, logging around it.
struct BigReply {
    t: Option<Transport>,
    log: Rc<RefCell<Vec<&'static str>>>,
}

impl Protocol for BigReply {
    fn connection_made(&mut self, t: &Transport) {
        t.set_write_buffer_limits(Some(1), Some(0)).unwrap();
        self.t = Some(t.clone());
    }
    fn data_received(&mut self, _data: &[u8]) {
        self.log.borrow_mut().push("data begins");
        self.t.as_ref().unwrap().write(&vec![5u8; 8 << 20]).unwrap();
        self.log.borrow_mut().push("data ends");
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push("pause");
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push("resume");
    }
}

#[test]
fn a_write_crossing_the_mark_inside_data_received_pauses_the_protocol_right_after_it() {
    run(async {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let server = create_server(
            move || BigReply {
                t: None,
                log: l.clone(),
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (mut r, mut w) = asyncio_streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        w.write(b"go");
        until(|| log.borrow().contains(&"pause")).await;
        assert_eq!(log.borrow()[..3], ["data begins", "data ends", "pause"]);
        assert_eq!(r.readexactly(8 << 20).await.unwrap().len(), 8 << 20);
        until(|| log.borrow().contains(&"resume")).await;
        assert_eq!(
            *log.borrow(),
            ["data begins", "data ends", "pause", "resume"]
        );
        server.close();
    });
}

/// Closes its transport from inside connection_made.
struct CloseAtOnce(Rc<Cell<u32>>);

impl Protocol for CloseAtOnce {
    fn connection_made(&mut self, t: &Transport) {
        t.close();
        t.close();
    }
    fn data_received(&mut self, _: &[u8]) {
        panic!("no data after close()");
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn closing_from_connection_made_calls_connection_lost_once_and_nothing_else() {
    run(async {
        let server = asyncio_streams::start_server(
            |_r, mut w: asyncio_streams::StreamWriter| async move {
                w.write(b"unwanted");
                asyncio_core::sleep(Duration::from_millis(50)).await;
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let lost = Rc::new(Cell::new(0));
        let l = lost.clone();
        let (t, _p) = create_connection(move || CloseAtOnce(l), "127.0.0.1", port)
            .await
            .unwrap();
        assert!(t.is_closing());
        until(|| lost.get() == 1).await;
        for _ in 0..10 {
            asyncio_core::yield_now().await;
        }
        assert_eq!(lost.get(), 1);
        server.close();
    });
}

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

/// A protocol that counts its instances: none may outlive the loop.
struct Counted {
    t: Option<Transport>,
    echo: bool,
    done: Rc<Cell<bool>>,
}

impl Counted {
    fn new(echo: bool, done: Rc<Cell<bool>>) -> Counted {
        LIVE.with(|l| l.set(l.get() + 1));
        Counted {
            t: None,
            echo,
            done,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.with(|l| l.set(l.get() - 1));
    }
}

impl Protocol for Counted {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
        if !self.echo {
            let _ = t.write(b"ping");
        }
    }
    fn data_received(&mut self, data: &[u8]) {
        let t = self.t.as_ref().unwrap();
        if self.echo {
            let _ = t.write(data);
        } else {
            t.close();
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.done.set(true);
    }
}

/// A protocol client and server exchange one message and close.
fn echo_workload(lp: &EventLoop) {
    let _ = lp.run_until_complete(asyncio_core::timeout(Duration::from_secs(2), async {
        let server = create_server(|| Counted::new(true, Rc::default()), "127.0.0.1", 0)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        let made = create_connection(move || Counted::new(false, d), "127.0.0.1", port).await;
        if made.is_ok() {
            for _ in 0..1000 {
                if done.get() {
                    break;
                }
                asyncio_core::sleep(Duration::from_millis(1)).await;
            }
        }
        server.close();
    }));
}

#[test]
fn every_fault_at_every_gate_call_of_a_protocol_echo_leaves_no_protocol_alive() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<InjectedPanic>().is_none() {
            prev(info);
        }
    }));
    let one = |fault: Option<(u64, Fault)>| -> Result<(), String> {
        let lp = EventLoop::new();
        lp.set_exception_handler(Some(|_: &ExceptionContext| {}));
        let clean = fault.is_none();
        match fault {
            Some((k, f)) => fault_plan::arm(k, f),
            None => fault_plan::arm(0, Fault::Panic),
        }
        let ran = catch_unwind(AssertUnwindSafe(|| echo_workload(&lp)));
        let calls = fault_plan::disarm();
        drop(ran);
        match catch_unwind(AssertUnwindSafe(|| lp.close())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("close() failed: {e}")),
            Err(_) => return Err("close() unwound".into()),
        }
        drop(lp);
        let live = LIVE.with(Cell::get);
        if live != 0 {
            LIVE.with(|l| l.set(0));
            return Err(format!("{live} protocols alive after the loop went"));
        }
        if clean {
            Err(format!("{calls}"))
        } else {
            Ok(())
        }
    };
    // The clean run counts the gate calls.
    let n: u64 = one(None)
        .unwrap_err()
        .parse()
        .expect("the clean run is whole");
    assert!(n > 10, "the workload makes only {n} gate calls");
    let create_task = Rc::new(|| {
        let _ = asyncio_core::try_create_task(async {});
    });
    let faults: Vec<(&str, Fault)> = vec![
        ("panic", Fault::Panic),
        (
            "create a task, then panic",
            Fault::ReEnterThenPanic(create_task),
        ),
    ];
    let mut broken = Vec::new();
    for (name, fault) in faults {
        for k in 1..=n {
            if let Err(e) = one(Some((k, fault.clone()))) {
                broken.push(format!("fault '{name}' at gate call {k}/{n}: {e}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken runs:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// Panics on the datagram it is told to.
struct FaultyDatagrams {
    log: Rc<RefCell<Vec<String>>>,
}

impl asyncio_streams::DatagramProtocol for FaultyDatagrams {
    fn datagram_received(&mut self, data: &[u8], _addr: std::net::SocketAddr) {
        self.log
            .borrow_mut()
            .push(String::from_utf8_lossy(data).into_owned());
        if data == b"boom" {
            panic!("datagram_received failed on purpose");
        }
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        self.log.borrow_mut().push(match exc {
            None => "lost".into(),
            Some(e) => format!("lost: {e}"),
        });
    }
}

#[test]
fn a_panic_in_datagram_received_is_reported_and_connection_lost_gets_it() {
    run(async {
        let reports = capture_reports();
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let (rx, _p) = asyncio_streams::create_datagram_endpoint(
            move || FaultyDatagrams { log: l },
            asyncio_streams::DatagramOptions::new().local_addr("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.sockname().unwrap();
        tx.send_to(b"fine", to).unwrap();
        tx.send_to(b"boom", to).unwrap();
        until(|| log.borrow().iter().any(|l| l.starts_with("lost"))).await;
        let log = log.borrow();
        assert_eq!(log[..2], ["fine", "boom"]);
        assert!(
            log[2].contains("datagram_received failed on purpose"),
            "{log:?}"
        );
        assert!(reports.borrow()[0].contains("protocol.datagram_received() call failed"));
        assert!(rx.is_closing());
    });
}

/// Panics on the child's output.
#[derive(Default)]
struct FaultyChild {
    log: Vec<String>,
}

impl asyncio_streams::SubprocessProtocol for FaultyChild {
    fn pipe_data_received(&mut self, fd: i32, _data: &[u8]) {
        if fd == 1 {
            panic!("pipe_data_received failed on purpose");
        }
    }
    fn pipe_connection_lost(&mut self, fd: i32, exc: Option<std::io::Error>) {
        self.log.push(match exc {
            None => format!("pipe {fd} lost"),
            Some(e) => format!("pipe {fd} lost: {e}"),
        });
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.log.push("lost".into());
    }
}

#[test]
fn a_panic_in_pipe_data_received_loses_that_pipe_with_the_panic_and_the_rest_goes_on() {
    run(async {
        let reports = capture_reports();
        let (t, p) =
            asyncio_streams::subprocess_exec(FaultyChild::default, "echo", ["out"]).unwrap();
        until(|| p.borrow().log.last().is_some_and(|l| l == "lost")).await;
        let log = p.borrow().log.clone();
        let stdout = log.iter().find(|l| l.starts_with("pipe 1")).unwrap();
        assert!(
            stdout.contains("pipe_data_received failed on purpose"),
            "{log:?}"
        );
        assert!(log.contains(&"pipe 2 lost".to_owned()), "{log:?}");
        assert!(t.get_returncode().is_some());
        assert!(reports.borrow()[0].contains("protocol.data_received() call failed"));
    });
}
