//! Transports and protocols: the order of the protocol's callbacks, flow
//! control, closing and aborting, derived from CPython's
//! `test_asyncio/test_protocols.py`, `test_selector_events.py` and the
//! protocol tests of `test_events.py`. Each test is one guarantee.

mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::Duration;

use asyncio_streams::{
    Buffered, BufferedProtocol, ExtraInfo, Protocol, StreamReader, StreamWriter, Transport,
    TransportError, connect_accepted_socket, create_connection, create_server,
    create_unix_connection, create_unix_server,
};
use common::{run, serve, until};

/// What a protocol saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// A protocol that records every callback.
struct Recorder {
    log: Log,
    transport: Option<Transport>,
    data: Rc<RefCell<Vec<u8>>>,
    keep_open: bool,
}

impl Recorder {
    fn new(log: &Log, data: &Rc<RefCell<Vec<u8>>>) -> Recorder {
        Recorder {
            log: log.clone(),
            transport: None,
            data: data.clone(),
            keep_open: false,
        }
    }
}

impl Protocol for Recorder {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.log.borrow_mut().push("made".into());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.data.borrow_mut().extend_from_slice(data);
        let mut log = self.log.borrow_mut();
        if log.last().map(String::as_str) != Some("data") {
            log.push("data".into());
        }
    }
    fn eof_received(&mut self) -> bool {
        self.log.borrow_mut().push("eof".into());
        self.keep_open
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        self.log.borrow_mut().push(match exc {
            None => "lost".into(),
            Some(e) => format!("lost: {:?}: {e}", e.kind()),
        });
    }
    fn pause_writing(&mut self) {
        self.log.borrow_mut().push("pause".into());
    }
    fn resume_writing(&mut self) {
        self.log.borrow_mut().push("resume".into());
    }
}

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn bytes() -> Rc<RefCell<Vec<u8>>> {
    Rc::new(RefCell::new(Vec::new()))
}

fn last_is(log: &Log, what: &str) -> bool {
    log.borrow().last().is_some_and(|l| l.starts_with(what))
}

#[test]
fn callbacks_come_in_order_made_data_eof_lost() {
    run(async {
        let (server, port) = serve(|_r: StreamReader, mut w: StreamWriter| async move {
            w.write(b"hello");
            w.write_eof().unwrap();
            let _ = w.wait_closed().await;
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        // connection_made has run when create_connection returns.
        assert_eq!(*log.borrow(), ["made"]);
        until(|| last_is(&log, "lost")).await;
        assert_eq!(*log.borrow(), ["made", "data", "eof", "lost"]);
        assert_eq!(*data.borrow(), b"hello");
        // eof_received returned false: the transport closed itself.
        assert!(transport.is_closing());
        server.close();
    });
}

#[test]
fn eof_received_returning_true_keeps_the_transport_half_open() {
    run(async {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let (server, port) = serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let g = g.clone();
            async move {
                w.write(b"bye");
                w.write_eof().unwrap();
                *g.borrow_mut() = r.read_to_eof().await.unwrap();
            }
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(
            move || Recorder {
                keep_open: true,
                ..Recorder::new(&l, &d)
            },
            "127.0.0.1",
            port,
        )
        .await
        .unwrap();
        until(|| last_is(&log, "eof")).await;
        assert!(!transport.is_closing(), "the transport stays open");
        transport.write(b"still writing").unwrap();
        transport.close();
        until(|| last_is(&log, "lost")).await;
        until(|| !got.borrow().is_empty()).await;
        assert_eq!(*got.borrow(), b"still writing");
        assert_eq!(*log.borrow(), ["made", "data", "eof", "lost"]);
        server.close();
    });
}

#[test]
fn close_flushes_buffered_data_then_calls_connection_lost_none() {
    run(async {
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let (server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let g = g.clone();
            async move {
                // The writer is kept: dropping it would close the connection.
                let _w = w;
                *g.borrow_mut() = Some(r.read_to_eof().await.unwrap());
            }
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        let payload: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        transport.write(&payload).unwrap();
        assert!(
            transport.get_write_buffer_size() > 0,
            "the socket took less than 4 MiB"
        );
        transport.close();
        assert!(transport.is_closing());
        // Nothing is lost before the buffer is flushed.
        assert!(!last_is(&log, "lost"));
        until(|| last_is(&log, "lost")).await;
        assert_eq!(log.borrow().last().unwrap(), "lost");
        until(|| got.borrow().is_some()).await;
        assert!(got.borrow().as_ref().unwrap() == &payload);
        server.close();
    });
}

#[test]
fn abort_drops_the_buffer_and_calls_connection_lost_none() {
    run(async {
        let (server, port) = serve(|r: StreamReader, w: StreamWriter| async move {
            let _rw = (r, w);
            asyncio_core::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        transport.write(&vec![7u8; 8 << 20]).unwrap();
        transport.abort();
        assert!(transport.is_closing());
        assert_eq!(transport.get_write_buffer_size(), 0);
        until(|| last_is(&log, "lost")).await;
        assert_eq!(log.borrow().last().unwrap(), "lost");
        server.close();
    });
}

#[test]
fn a_peer_reset_calls_connection_lost_with_the_error() {
    run(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (_transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        let (peer, _) = listener.accept().unwrap();
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        until(|| last_is(&log, "lost")).await;
        let last = log.borrow().last().unwrap().clone();
        assert!(last.starts_with("lost: ConnectionReset"), "{last}");
        assert_eq!(log.borrow()[0], "made");
    });
}

#[test]
fn pause_writing_at_the_high_water_mark_and_resume_writing_at_the_low() {
    run(async {
        let go = Rc::new(asyncio_sync::Event::new());
        let g = go.clone();
        let (server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let g = g.clone();
            async move {
                let _w = w;
                g.wait().await;
                let _ = r.read_to_eof().await;
            }
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        transport
            .set_write_buffer_limits(Some(64 * 1024), Some(16 * 1024))
            .unwrap();
        assert_eq!(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        // Write until the peer's and our kernel buffers are full and ours
        // crosses the mark: pause_writing is called inside that write.
        let chunk = vec![1u8; 16 * 1024];
        let mut writes = 0;
        while !last_is(&log, "pause") {
            assert!(transport.get_write_buffer_size() <= 64 * 1024);
            transport.write(&chunk).unwrap();
            writes += 1;
            assert!(writes < 10_000 && !transport.is_closing(), "never paused");
            if transport.get_write_buffer_size() == 0 {
                // The kernel took it all: let the loop turn.
                asyncio_core::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(transport.get_write_buffer_size() > 64 * 1024);
        assert_eq!(log.borrow().iter().filter(|l| *l == "pause").count(), 1);
        // The peer reads: resume_writing comes once the buffer is at 16 KiB.
        go.set();
        until(|| last_is(&log, "resume")).await;
        assert!(transport.get_write_buffer_size() <= 16 * 1024);
        assert_eq!(*log.borrow(), ["made", "pause", "resume"]);
        transport.close();
        until(|| last_is(&log, "lost")).await;
        server.close();
    });
}

#[test]
fn lowering_the_high_water_mark_below_the_buffer_pauses_at_once() {
    run(async {
        let (server, port) = serve(|r: StreamReader, w: StreamWriter| async move {
            let _rw = (r, w);
            asyncio_core::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        transport.write(&vec![3u8; 16 << 20]).unwrap();
        let size = transport.get_write_buffer_size();
        assert!(size > 0);
        if !last_is(&log, "pause") {
            transport
                .set_write_buffer_limits(Some(size - 1), None)
                .unwrap();
        }
        assert!(last_is(&log, "pause"));
        transport.abort();
        until(|| last_is(&log, "lost")).await;
        server.close();
    });
}

#[test]
fn set_write_buffer_limits_defaults_and_rejects_high_below_low() {
    run(async {
        let (server, port) = serve(|_r, _w| async {}).await;
        let (transport, _p) = create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        assert_eq!(transport.get_write_buffer_limits(), (16 * 1024, 64 * 1024));
        transport.set_write_buffer_limits(Some(1000), None).unwrap();
        assert_eq!(transport.get_write_buffer_limits(), (250, 1000));
        transport.set_write_buffer_limits(None, Some(100)).unwrap();
        assert_eq!(transport.get_write_buffer_limits(), (100, 400));
        let err = transport
            .set_write_buffer_limits(Some(1), Some(2))
            .unwrap_err();
        assert_eq!((err.high, err.low), (1, 2));
        transport.close();
        server.close();
    });
}

#[derive(Debug)]
struct Quiet;
impl Protocol for Quiet {}

#[test]
fn writing_after_write_eof_is_a_typed_error_and_the_peer_sees_eof() {
    run(async {
        let got = Rc::new(RefCell::new(None));
        let g = got.clone();
        let (server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let g = g.clone();
            async move {
                // The writer is kept: dropping it would close the connection.
                let _w = w;
                *g.borrow_mut() = Some(r.read_to_eof().await.unwrap());
            }
        })
        .await;
        let (transport, _p) = create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        assert!(transport.can_write_eof());
        transport.writelines([&b"a"[..], b"b", b"c"]).unwrap();
        transport.write_eof().unwrap();
        transport.write_eof().unwrap();
        assert_eq!(transport.write(b"x"), Err(TransportError::WriteAfterEof));
        // Only the write side is shut.
        assert!(!transport.is_closing());
        until(|| got.borrow().is_some()).await;
        assert_eq!(got.borrow().as_deref(), Some(&b"abc"[..]));
        transport.close();
        server.close();
    });
}

#[test]
fn pause_reading_holds_data_received_until_resume_reading() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"data while paused");
            let _ = w.drain().await;
            asyncio_core::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (transport, _p) = create_connection(move || Recorder::new(&l, &d), "127.0.0.1", port)
            .await
            .unwrap();
        transport.pause_reading();
        assert!(!transport.is_reading());
        // Give the data every chance to arrive (bounded), then check that
        // none was delivered.
        for _ in 0..20 {
            asyncio_core::sleep(Duration::from_millis(5)).await;
        }
        assert!(data.borrow().is_empty(), "data_received ran while paused");
        transport.resume_reading();
        assert!(transport.is_reading());
        until(|| data.borrow().len() == 17).await;
        assert_eq!(*data.borrow(), b"data while paused");
        transport.close();
        server.close();
    });
}

/// A BufferedProtocol that receives into one reused buffer.
struct Collect {
    buf: Vec<u8>,
    got: Rc<RefCell<Vec<u8>>>,
    hints: Rc<RefCell<Vec<usize>>>,
    lost: Rc<RefCell<bool>>,
}

impl BufferedProtocol for Collect {
    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8] {
        self.hints.borrow_mut().push(sizehint);
        &mut self.buf
    }
    fn buffer_updated(&mut self, nbytes: usize) {
        self.got.borrow_mut().extend_from_slice(&self.buf[..nbytes]);
    }
    fn connection_lost(&mut self, exc: Option<std::io::Error>) {
        assert!(exc.is_none());
        *self.lost.borrow_mut() = true;
    }
}

#[test]
fn a_buffered_protocol_receives_into_its_own_buffer() {
    run(async {
        let payload: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
        let p = payload.clone();
        let (server, port) = serve(move |_r, mut w: StreamWriter| {
            let p = p.clone();
            async move {
                w.write(&p);
                w.close();
            }
        })
        .await;
        let (got, hints, lost) = (bytes(), Rc::new(RefCell::new(Vec::new())), Rc::default());
        let (g, h, l) = (got.clone(), hints.clone(), Rc::clone(&lost));
        let (_t, _p) = create_connection(
            move || {
                Buffered(Collect {
                    buf: vec![0; 1000],
                    got: g,
                    hints: h,
                    lost: l,
                })
            },
            "127.0.0.1",
            port,
        )
        .await
        .unwrap();
        until(|| *lost.borrow()).await;
        assert!(*got.borrow() == payload);
        // Reads of at most the buffer's 1,000 bytes: one get_buffer each.
        assert!(hints.borrow().len() >= payload.len() / 1000);
        assert!(hints.borrow().iter().all(|&h| h > 0));
        server.close();
    });
}

struct Empty;
impl BufferedProtocol for Empty {
    fn get_buffer(&mut self, _: usize) -> &mut [u8] {
        &mut []
    }
    fn buffer_updated(&mut self, _: usize) {}
}

#[test]
fn an_empty_buffer_from_get_buffer_is_a_fatal_error_reported_to_the_handler() {
    run(async {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s = seen.clone();
        asyncio_core::get_running_loop()
            .unwrap()
            .set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
                s.borrow_mut().push(ctx.message.clone())
            }));
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"x");
            asyncio_core::sleep(Duration::from_secs(5)).await;
        })
        .await;
        let (t, _p) = create_connection(|| Buffered(Empty), "127.0.0.1", port)
            .await
            .unwrap();
        until(|| t.is_closing()).await;
        until(|| !seen.borrow().is_empty()).await;
        assert!(seen.borrow()[0].contains("get_buffer() returned an empty buffer"));
        server.close();
    });
}

#[test]
fn get_extra_info_gives_peername_sockname_and_socket() {
    run(async {
        let (server, port) = serve(|_r, _w| async {}).await;
        let (t, _p) = create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        match t.get_extra_info("peername") {
            Some(ExtraInfo::Address(a)) => assert_eq!(a.as_inet().unwrap().port(), port),
            other => panic!("peername: {other:?}"),
        }
        let Some(ExtraInfo::Address(local)) = t.get_extra_info("sockname") else {
            panic!("no sockname");
        };
        assert_eq!(
            local.as_inet().unwrap(),
            t.sockname().unwrap().as_inet().unwrap()
        );
        assert!(matches!(t.get_extra_info("socket"), Some(ExtraInfo::Fd(fd)) if fd >= 0));
        assert!(t.get_extra_info("no such thing").is_none());
        t.abort();
        assert!(t.get_extra_info("socket").is_none());
        server.close();
    });
}

/// Echoes, and closes after a line `quit`.
struct Echo {
    t: Option<Transport>,
    lost: Rc<RefCell<usize>>,
}

impl Protocol for Echo {
    fn connection_made(&mut self, t: &Transport) {
        self.t = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        let t = self.t.as_ref().unwrap();
        t.write(data).unwrap();
        if data.ends_with(b"quit\n") {
            // Closing from inside data_received: the reply is still sent.
            t.close();
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        *self.lost.borrow_mut() += 1;
    }
}

#[test]
fn a_protocol_server_runs_a_protocol_per_connection_and_closing_inside_data_received_flushes() {
    run(async {
        let lost = Rc::new(RefCell::new(0));
        let l = lost.clone();
        let server = create_server(
            move || Echo {
                t: None,
                lost: l.clone(),
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        for i in 0..3 {
            let (mut r, mut w) = asyncio_streams::open_connection("127.0.0.1", port)
                .await
                .unwrap();
            let line = format!("hello {i}\n");
            w.write(line.as_bytes());
            assert_eq!(r.readline().await.unwrap(), line.as_bytes());
            w.write(b"quit\n");
            assert_eq!(r.read_to_eof().await.unwrap(), b"quit\n");
        }
        until(|| *lost.borrow() == 3).await;
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn a_unix_protocol_server_and_client_talk() {
    let path = std::env::temp_dir().join(format!("asyncio-proto-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    run(async move {
        let lost = Rc::new(RefCell::new(0));
        let l = lost.clone();
        let server = create_unix_server(
            move || Echo {
                t: None,
                lost: l.clone(),
            },
            &p,
        )
        .await
        .unwrap();
        let (log, data) = (log(), bytes());
        let (lg, d) = (log.clone(), data.clone());
        let (t, _p) = create_unix_connection(move || Recorder::new(&lg, &d), &p)
            .await
            .unwrap();
        assert!(t.peername().unwrap().as_pathname().is_some());
        t.write(b"over unix\nquit\n").unwrap();
        until(|| last_is(&log, "lost")).await;
        assert_eq!(*data.borrow(), b"over unix\nquit\n");
        assert_eq!(*log.borrow(), ["made", "data", "eof", "lost"]);
        server.close();
        server.wait_closed().await;
    });
    assert!(!path.exists(), "the server removed its socket file");
}

#[test]
fn connect_accepted_socket_runs_a_protocol_on_tcp_and_unix_sockets() {
    run(async {
        // TCP, accepted by hand.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let (log, data) = (log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (t, _p) = connect_accepted_socket(move || Recorder::new(&l, &d), accepted).unwrap();
        client.write_all(b"tcp").unwrap();
        drop(client);
        until(|| last_is(&log, "lost")).await;
        assert_eq!(*data.borrow(), b"tcp");
        assert!(t.is_closing());
        // A Unix socket pair.
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (log, data) = (self::log(), bytes());
        let (l, d) = (log.clone(), data.clone());
        let (t, _p) = connect_accepted_socket(move || Recorder::new(&l, &d), a).unwrap();
        t.write(b"to b").unwrap();
        let mut buf = [0; 4];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"to b");
        b.write_all(b"unix").unwrap();
        until(|| data.borrow().len() == 4).await;
        t.close();
        until(|| last_is(&log, "lost")).await;
        // Not a stream socket: refused.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = connect_accepted_socket(|| Quiet, udp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    });
}

/// Records the size of each `data_received` chunk.
struct Sizes(Rc<RefCell<Vec<usize>>>);

impl Protocol for Sizes {
    fn data_received(&mut self, data: &[u8]) {
        self.0.borrow_mut().push(data.len());
    }
}

#[test]
fn a_burst_is_read_in_chunks_that_grow_past_the_first_read() {
    run(async {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        // Queued before the transport exists: one burst, read at once.
        b.set_nonblocking(true).unwrap();
        let mut queued = 0;
        while queued < 150_000 {
            match b.write(&[9u8; 8192]) {
                Ok(n) => queued += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        let sizes = Rc::new(RefCell::new(Vec::new()));
        let s = sizes.clone();
        let (t, _p) = connect_accepted_socket(move || Sizes(s), a).unwrap();
        until(|| sizes.borrow().iter().sum::<usize>() == queued).await;
        let largest = sizes.borrow().iter().copied().max().unwrap();
        assert!(largest > 16 * 1024, "chunks {:?}", sizes.borrow());
        t.close();
    });
}

/// A protocol that hands the connection to `next` from inside its own
/// `data_received` (asyncio's `transport.set_protocol`, as a protocol that
/// upgrades does), after recording what it got.
struct Switcher {
    transport: Option<Transport>,
    log: Log,
    next: Option<Rc<RefCell<Recorder>>>,
}

impl Protocol for Switcher {
    fn connection_made(&mut self, transport: &Transport) {
        self.transport = Some(transport.clone());
        self.log.borrow_mut().push("switcher made".into());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log
            .borrow_mut()
            .push(format!("switcher data {}", String::from_utf8_lossy(data)));
        if let (Some(t), Some(next)) = (&self.transport, self.next.take()) {
            t.set_protocol(next);
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.log.borrow_mut().push("switcher lost".into());
    }
}

/// asyncio's `set_protocol`/`get_protocol`: after the switch, made from
/// inside the old protocol's `data_received`, every event goes to the new
/// protocol (whose `connection_made` is not called), `connection_lost`
/// included, and `get_protocol` names it; once the connection is lost there
/// is no protocol, and one set then is not kept alive.
#[test]
fn set_protocol_from_data_received_sends_every_later_event_to_the_new_protocol() {
    run(async {
        let (log, data) = (log(), bytes());
        let next = Rc::new(RefCell::new(Recorder::new(&log, &data)));
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (l, n) = (log.clone(), next.clone());
        let (transport, first) = connect_accepted_socket(
            move || Switcher {
                transport: None,
                log: l,
                next: Some(n),
            },
            a,
        )
        .unwrap();
        let now = transport
            .get_protocol()
            .expect("a protocol while connected");
        assert!(std::ptr::addr_eq(Rc::as_ptr(&now), Rc::as_ptr(&first)));
        b.write_all(b"one").unwrap();
        until(|| log.borrow().iter().any(|l| l.starts_with("switcher data"))).await;
        let now = transport
            .get_protocol()
            .expect("a protocol while connected");
        assert!(std::ptr::addr_eq(Rc::as_ptr(&now), Rc::as_ptr(&next)));
        drop(now);
        b.write_all(b"two").unwrap();
        until(|| data.borrow().as_slice() == b"two").await;
        drop(b); // the peer goes: eof, then connection_lost, to the new protocol
        until(|| last_is(&log, "lost")).await;
        assert_eq!(
            *log.borrow(),
            ["switcher made", "switcher data one", "data", "eof", "lost"]
        );
        assert!(transport.get_protocol().is_none());
        // A protocol set after the loss is dropped, not kept: it holds the
        // transport, and keeping it would be a cycle nothing breaks.
        let late = Rc::new(RefCell::new(Recorder::new(&log, &data)));
        late.borrow_mut().transport = Some(transport.clone());
        transport.set_protocol(late.clone());
        assert_eq!(Rc::strong_count(&late), 1);
        assert!(transport.get_protocol().is_none());
        drop(first);
    });
}
