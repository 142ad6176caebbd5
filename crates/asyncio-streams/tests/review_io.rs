//! Fresh-eyes review of the unsafe I/O paths (uninitialised reads for tokio
//! and hyper, sendfile, recvfrom) and of the protocol calls through the
//! gate (re-entry and panics from protocol methods). Loopback sockets only;
//! every loop is bounded in count and in time.
#![cfg(all(feature = "tokio", feature = "hyper"))]

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use asyncio::{Protocol, Server, StreamReader, StreamWriter, Transport};

fn run<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(asyncio::timeout(Duration::from_secs(30), fut))
        .expect("the loop ran")
        .expect("within 30 s")
}

/// A deterministic pattern: byte `i` is a function of `i`, so a lost or a
/// repeated byte shows as a mismatch at its position.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

/// A server that writes `data` after a `head\n` line, in chunks of varying
/// sizes with drains between them, then closes.
async fn pattern_server(data: Rc<Vec<u8>>) -> Server {
    asyncio::start_server(
        move |_r: StreamReader, mut w: StreamWriter| {
            let data = data.clone();
            async move {
                w.write(b"head\n");
                let sizes = [1usize, 7, 4096, 3, 65536, 100, 9000, 1];
                let mut off = 0;
                let mut k = 0;
                while off < data.len() {
                    let n = sizes[k % sizes.len()].min(data.len() - off);
                    w.write(&data[off..off + n]);
                    w.drain().await.unwrap();
                    off += n;
                    k += 1;
                    if k % 50 == 0 {
                        asyncio::sleep(Duration::from_millis(1)).await;
                    }
                }
                w.close();
            }
        },
        "127.0.0.1",
        0,
    )
    .await
    .unwrap()
}

// ----- tokio's AsyncRead into an uninitialised ReadBuf -----

#[test]
fn tokio_reads_into_uninit_buffers_of_every_size_lose_and_repeat_nothing() {
    let data = Rc::new(pattern(700_000));
    let expect = data.clone();
    let got = run(async move {
        let server = pattern_server(data).await;
        let port = server.local_addr().unwrap().port();
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        // A readline first, so the reader holds buffered bytes past the line.
        assert_eq!(r.readline().await.unwrap(), b"head\n");
        let sizes = [1usize, 0, 2, 8191, 8192, 8193, 65536, 3, 100_000, 17];
        let mut out = Vec::new();
        let mut k = 0;
        let start = Instant::now();
        loop {
            assert!(k < 1_000_000 && start.elapsed() < Duration::from_secs(20));
            let size = sizes[k % sizes.len()];
            k += 1;
            let mut storage = vec![MaybeUninit::<u8>::uninit(); size];
            let mut rb = tokio::io::ReadBuf::uninit(&mut storage);
            std::future::poll_fn(|cx| {
                tokio::io::AsyncRead::poll_read(Pin::new(&mut r), cx, &mut rb)
            })
            .await
            .unwrap();
            let n = rb.filled().len();
            assert!(n <= size, "read {n} into {size}");
            assert!(rb.initialized().len() >= n);
            if n == 0 && size > 0 {
                break;
            }
            out.extend_from_slice(rb.filled());
        }
        out
    });
    assert_eq!(got.len(), expect.len());
    assert!(got == *expect, "bytes lost, repeated or corrupted");
}

/// A ReadBuf that is already partly filled and partly initialised: the read
/// must append after `filled`, never overwrite it or claim past capacity.
#[test]
fn tokio_read_appends_after_the_filled_part_of_a_reused_readbuf() {
    let data = Rc::new(pattern(50_000));
    let expect = data.clone();
    let got = run(async move {
        let server = pattern_server(data).await;
        let port = server.local_addr().unwrap().port();
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        r.readline().await.unwrap();
        let mut storage = vec![MaybeUninit::<u8>::uninit(); 60_000];
        let mut rb = tokio::io::ReadBuf::uninit(&mut storage);
        // Initialise some of it first, as tokio's own buffers are reused.
        rb.initialize_unfilled_to(10);
        let start = Instant::now();
        while rb.remaining() > 0 && start.elapsed() < Duration::from_secs(20) {
            let before = rb.filled().len();
            std::future::poll_fn(|cx| {
                tokio::io::AsyncRead::poll_read(Pin::new(&mut r), cx, &mut rb)
            })
            .await
            .unwrap();
            if rb.filled().len() == before {
                break;
            }
        }
        rb.filled().to_vec()
    });
    assert!(got == *expect);
}

/// Reads cancelled (their futures dropped by a timeout) over and over while
/// the data trickles in: nothing is lost or repeated.
#[test]
fn cancelled_tokio_reads_lose_nothing() {
    let data = Rc::new(pattern(200_000));
    let expect = data.clone();
    let (got, timeouts) = run(async move {
        // A server that trickles: 1000 bytes a millisecond.
        let server = asyncio::start_server(
            move |_r: StreamReader, mut w: StreamWriter| {
                let data = data.clone();
                async move {
                    w.write(b"head\n");
                    for chunk in data.chunks(1000) {
                        w.write(chunk);
                        w.drain().await.unwrap();
                        asyncio::sleep(Duration::from_millis(1)).await;
                    }
                    w.close();
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        r.readline().await.unwrap();
        let mut out = Vec::new();
        let start = Instant::now();
        let mut timeouts = 0;
        for _ in 0..200_000 {
            assert!(start.elapsed() < Duration::from_secs(20));
            let mut buf = [0u8; 3000];
            let read = asyncio::timeout(
                Duration::from_micros(200),
                tokio::io::AsyncReadExt::read(&mut r, &mut buf),
            )
            .await;
            match read {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => timeouts += 1,
            }
        }
        (out, timeouts)
    });
    eprintln!("reads cancelled by the timeout: {timeouts}");
    assert!(timeouts > 0, "no read was cancelled");
    assert!(got == *expect);
}

// ----- hyper's Read into an uninitialised ReadBufCursor -----

#[test]
fn hyper_poll_read_fills_no_more_than_the_cursor_and_keeps_the_order() {
    let data = Rc::new(pattern(300_000));
    let expect = data.clone();
    let got = run(async move {
        let server = pattern_server(data).await;
        let port = server.local_addr().unwrap().port();
        let (mut r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        // "he" read by the reader; the rest of the line and more buffered.
        assert_eq!(r.readexactly(2).await.unwrap(), b"he");
        let mut io = asyncio::HyperIo::new(r, w);
        let sizes = [1usize, 2, 5000, 65536, 7, 12_345];
        let mut out = Vec::new();
        let start = Instant::now();
        for k in 0..1_000_000 {
            assert!(start.elapsed() < Duration::from_secs(20));
            let size = sizes[k % sizes.len()];
            let mut storage = vec![MaybeUninit::<u8>::uninit(); size];
            let mut rb = hyper::rt::ReadBuf::uninit(&mut storage);
            std::future::poll_fn(|cx| {
                hyper::rt::Read::poll_read(Pin::new(&mut io), cx, rb.unfilled())
            })
            .await
            .unwrap();
            let n = rb.filled().len();
            assert!(n <= size);
            if n == 0 {
                break;
            }
            out.extend_from_slice(rb.filled());
        }
        out
    });
    assert_eq!(&got[..3], b"ad\n");
    assert!(got[3..] == *expect);
}

// ----- sock_recvfrom_into -----

#[test]
fn recvfrom_into_truncates_a_long_datagram_and_reports_what_it_wrote() {
    let (n, buf) = run(async {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        asyncio::sock_sendto(&a, &[7u8; 1000], b.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 10];
        let (n, _) = asyncio::sock_recvfrom_into(&b, &mut buf).await.unwrap();
        // A zero-length buffer: nothing is written, 0 is reported.
        asyncio::sock_sendto(&a, &[1u8; 5], b.local_addr().unwrap())
            .await
            .unwrap();
        let (z, _) = asyncio::sock_recvfrom_into(&b, &mut []).await.unwrap();
        assert_eq!(z, 0);
        (n, buf)
    });
    assert_eq!(n, 10);
    assert_eq!(buf, [7u8; 10]);
}

// ----- sendfile -----

fn temp_file(tag: &str, data: &[u8]) -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("review-io-{tag}-{}", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    (path, f)
}

#[test]
fn sock_sendfile_offsets_and_counts_at_and_past_the_end() {
    let data = pattern(10_000);
    let (path, file) = temp_file("offsets", &data);
    let file = Rc::new(file);
    let out = run(async move {
        let mut results = Vec::new();
        for (offset, count) in [
            (0u64, None),
            (9_999, None),
            (10_000, None),
            (20_000, None),
            (5_000, Some(100_000u64)),
            (10_000, Some(5)),
            (u64::MAX, None),
            (u64::MAX, Some(10)),
            (i64::MAX as u64, Some(10)),
            (i64::MAX as u64 - 3, Some(u64::MAX)),
            (0, Some(u64::MAX)),
        ] {
            let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let mut o = asyncio::SendfileOptions::new().offset(offset);
            if let Some(c) = count {
                o = o.count(c);
            }
            let sent = asyncio::sock_sendfile(&a, &file, o).await;
            drop(a);
            let mut got = Vec::new();
            b.read_to_end(&mut got).unwrap();
            results.push((offset, count, sent.map_err(|e| e.to_string()), got));
        }
        results
    });
    std::fs::remove_file(&path).unwrap();
    for (offset, count, sent, got) in out {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let end = match count {
            Some(c) => start
                .saturating_add(usize::try_from(c).unwrap_or(usize::MAX))
                .min(data.len()),
            None => data.len(),
        };
        assert_eq!(got, data[start..end], "offset {offset} count {count:?}");
        if let Ok(n) = sent {
            assert_eq!(n as usize, got.len(), "offset {offset} count {count:?}");
        }
    }
}

/// A large file into a small socket buffer read slowly: `sendfile(2)`
/// returns short counts and EAGAIN; every byte arrives once, in order.
#[test]
fn sock_sendfile_partial_sends_into_a_full_socket() {
    let data = pattern(3_000_000);
    let (path, file) = temp_file("partial", &data);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    socket2::SockRef::from(&a)
        .set_send_buffer_size(4096)
        .unwrap();
    a.set_nonblocking(true).unwrap();
    let reader = std::thread::spawn(move || {
        let mut b = b;
        b.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            match b.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
            if got.len() % 5 == 0 {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        got
    });
    let sent = run(async move {
        let n = asyncio::sock_sendfile(&a, &file, asyncio::SendfileOptions::new().offset(1))
            .await
            .unwrap();
        let mut file = file;
        let pos = std::io::Seek::stream_position(&mut file).unwrap();
        drop(a);
        (n, pos)
    });
    let got = reader.join().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(sent, (data.len() as u64 - 1, data.len() as u64));
    assert!(got == data[1..]);
}

/// A sock_sendfile cancelled part-way: asyncio leaves the file's position
/// just past what was sent (its `finally: file.seek(offset + total_sent)`),
/// so a caller can resume from there.
#[test]
fn a_cancelled_sock_sendfile_leaves_the_file_position_past_what_was_sent() {
    let data = pattern(4_000_000);
    let (path, file) = temp_file("cancel", &data);
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let (sent_pos, got_len) = run(async move {
        let mut file = file;
        let r = asyncio::timeout(
            Duration::from_millis(50),
            asyncio::sock_sendfile(&a, &file, asyncio::SendfileOptions::new()),
        )
        .await;
        assert!(r.is_err(), "nobody reads: the send cannot finish");
        drop(a);
        let pos = std::io::Seek::stream_position(&mut file).unwrap();
        let mut b = b;
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        (pos, got.len() as u64)
    });
    std::fs::remove_file(&path).unwrap();
    assert!(got_len > 0);
    assert_eq!(sent_pos, got_len, "file position vs bytes that went");
}

/// asyncio refuses `transport.write` while a `loop.sendfile` is in
/// progress (RuntimeError "unable to write; sendfile is in progress"); here
/// a write made meanwhile is accepted and its bytes land in the middle of
/// the file's.
#[test]
fn a_write_during_transport_sendfile_does_not_land_inside_the_file() {
    struct Quiet;
    impl Protocol for Quiet {}
    let data = pattern(8_000_000);
    let (path, file) = temp_file("interleave", &data);
    let got = run(async move {
        let got = Rc::new(RefCell::new(Vec::new()));
        let g = got.clone();
        let server = asyncio::start_server(
            move |mut r: StreamReader, w: StreamWriter| {
                let g = g.clone();
                async move {
                    let _w = w;
                    // A slow reader, so the sendfile waits on a full socket.
                    asyncio::sleep(Duration::from_millis(100)).await;
                    *g.borrow_mut() = r.read_to_eof().await.unwrap();
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (t, _) = asyncio::create_connection(|| Quiet, "127.0.0.1", port)
            .await
            .unwrap();
        let t2 = t.clone();
        let writer = asyncio::create_task(async move {
            asyncio::sleep(Duration::from_millis(20)).await;
            let r = t2.write(b"MARKER");
            r.is_ok()
        });
        let sent = asyncio::timeout(
            Duration::from_secs(10),
            asyncio::sendfile(&t, &file, asyncio::SendfileOptions::new()),
        )
        .await;
        eprintln!("sendfile: {sent:?}; buffered {}", t.get_write_buffer_size());
        let accepted = writer.await.unwrap();
        eprintln!("write accepted: {accepted}");
        t.close();
        let start = Instant::now();
        while got.borrow().is_empty() && start.elapsed() < Duration::from_secs(20) {
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        eprintln!("read {} bytes", got.borrow().len());
        server.close();
        let _ = (sent, accepted);
        got.take()
    });
    std::fs::remove_file(&path).unwrap();
    // Either the write was refused (the file alone), or it came after it.
    let mut after = data.clone();
    after.extend_from_slice(b"MARKER");
    assert!(
        got == data || got == after,
        "got {} bytes; MARKER at {:?}",
        got.len(),
        got.windows(6).position(|w| w == b"MARKER")
    );
}

// ----- protocol methods re-entering their transport and server -----

#[derive(Default)]
struct Log {
    made: Cell<usize>,
    data: RefCell<Vec<u8>>,
    lost: Cell<usize>,
    dropped: Cell<usize>,
}

/// What a test protocol does from inside `data_received`.
#[derive(Clone, Copy)]
enum Act {
    Close,
    Abort,
    DropServer,
    Panic,
    CloseThenPanic,
    WriteBigThenAbort,
}

struct Reentrant {
    t: Option<Transport>,
    act: Act,
    server: Rc<RefCell<Option<Server>>>,
    log: Rc<Log>,
}

impl Protocol for Reentrant {
    fn connection_made(&mut self, t: &Transport) {
        self.log.made.set(self.log.made.get() + 1);
        self.t = Some(t.clone());
    }
    fn data_received(&mut self, data: &[u8]) {
        self.log.data.borrow_mut().extend_from_slice(data);
        let t = self.t.as_ref().unwrap();
        match self.act {
            Act::Close => t.close(),
            Act::Abort => t.abort(),
            Act::DropServer => {
                let s = self.server.borrow_mut().take();
                if let Some(s) = s {
                    s.close();
                    s.abort_clients();
                    drop(s);
                }
            }
            Act::Panic => panic!("data_received fails"),
            Act::CloseThenPanic => {
                t.close();
                panic!("after close");
            }
            Act::WriteBigThenAbort => {
                let _ = t.write(&vec![0u8; 4 << 20]);
                t.abort();
            }
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.log.lost.set(self.log.lost.get() + 1);
        // Touch the transport again after it is gone.
        if let Some(t) = &self.t {
            t.close();
            let _ = t.write(b"late");
            t.pause_reading();
            t.resume_reading();
        }
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        self.log.dropped.set(self.log.dropped.get() + 1);
    }
}

fn reentry(act: Act) -> (usize, usize, usize, usize) {
    let log = Rc::new(Log::default());
    let l = log.clone();
    run(async move {
        let holder: Rc<RefCell<Option<Server>>> = Rc::new(RefCell::new(None));
        let h = holder.clone();
        let l2 = l.clone();
        let server = asyncio::create_server(
            move || Reentrant {
                t: None,
                act,
                server: h.clone(),
                log: l2.clone(),
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        *holder.borrow_mut() = Some(server);
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"ping").unwrap();
        let start = Instant::now();
        while l.dropped.get() == 0 && start.elapsed() < Duration::from_secs(10) {
            asyncio::sleep(Duration::from_millis(2)).await;
        }
        drop(holder.borrow_mut().take());
        drop(c);
    });
    (
        log.made.get(),
        log.data.borrow().len(),
        log.lost.get(),
        log.dropped.get(),
    )
}

#[test]
fn data_received_that_closes_its_transport() {
    assert_eq!(reentry(Act::Close), (1, 4, 1, 1));
}

#[test]
fn data_received_that_aborts_its_transport() {
    assert_eq!(reentry(Act::Abort), (1, 4, 1, 1));
}

#[test]
fn data_received_that_drops_its_server_and_aborts_its_clients() {
    assert_eq!(reentry(Act::DropServer), (1, 4, 1, 1));
}

#[test]
fn data_received_that_panics() {
    assert_eq!(reentry(Act::Panic), (1, 4, 1, 1));
}

#[test]
fn data_received_that_closes_then_panics() {
    assert_eq!(reentry(Act::CloseThenPanic), (1, 4, 1, 1));
}

#[test]
fn data_received_that_overflows_the_high_water_mark_then_aborts() {
    assert_eq!(reentry(Act::WriteBigThenAbort), (1, 4, 1, 1));
}

/// A BufferedProtocol whose get_buffer / buffer_updated re-enter.
struct Buf {
    t: Option<Transport>,
    buf: Vec<u8>,
    mode: u8,
    log: Rc<Log>,
}

impl asyncio::BufferedProtocol for Buf {
    fn connection_made(&mut self, t: &Transport) {
        self.log.made.set(self.log.made.get() + 1);
        self.t = Some(t.clone());
    }
    fn get_buffer(&mut self, _hint: usize) -> &mut [u8] {
        let t = self.t.as_ref().unwrap();
        match self.mode {
            0 => t.abort(),
            1 => t.close(),
            2 => panic!("get_buffer fails"),
            3 => t.pause_reading(),
            _ => {}
        }
        &mut self.buf
    }
    fn buffer_updated(&mut self, n: usize) {
        assert!(n <= self.buf.len());
        self.log.data.borrow_mut().extend_from_slice(&self.buf[..n]);
        match self.mode {
            4 => self.t.as_ref().unwrap().abort(),
            5 => panic!("buffer_updated fails"),
            _ => {}
        }
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.log.lost.set(self.log.lost.get() + 1);
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        self.log.dropped.set(self.log.dropped.get() + 1);
    }
}

fn buffered(mode: u8) -> (usize, usize, usize, usize) {
    let log = Rc::new(Log::default());
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let server = asyncio::create_server(
            move || {
                asyncio::Buffered(Buf {
                    t: None,
                    buf: vec![0; 3],
                    mode,
                    log: l2.clone(),
                })
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"ping").unwrap();
        let start = Instant::now();
        while l.lost.get() == 0 && start.elapsed() < Duration::from_millis(500) {
            asyncio::sleep(Duration::from_millis(2)).await;
        }
        if mode == 3 {
            // Paused: nothing more is read; end it from outside.
            drop(c);
            server.close();
            server.abort_clients();
        } else {
            drop(c);
        }
        let start = Instant::now();
        while l.dropped.get() == 0 && start.elapsed() < Duration::from_secs(10) {
            asyncio::sleep(Duration::from_millis(2)).await;
        }
        server.close();
    });
    (
        log.made.get(),
        log.data.borrow().len(),
        log.lost.get(),
        log.dropped.get(),
    )
}

#[test]
fn get_buffer_that_aborts() {
    let (made, _data, lost, dropped) = buffered(0);
    assert_eq!((made, lost, dropped), (1, 1, 1));
}

#[test]
fn get_buffer_that_closes() {
    let (made, _data, lost, dropped) = buffered(1);
    assert_eq!((made, lost, dropped), (1, 1, 1));
}

#[test]
fn get_buffer_that_panics() {
    assert_eq!(buffered(2), (1, 0, 1, 1));
}

#[test]
fn get_buffer_that_pauses_reading() {
    let (made, _data, lost, dropped) = buffered(3);
    assert_eq!((made, lost, dropped), (1, 1, 1));
}

#[test]
fn buffer_updated_that_aborts() {
    assert_eq!(buffered(4), (1, 3, 1, 1));
}

#[test]
fn buffer_updated_that_panics() {
    assert_eq!(buffered(5), (1, 3, 1, 1));
}

#[test]
fn a_three_byte_buffer_gets_every_byte() {
    assert_eq!(buffered(6), (1, 4, 1, 1));
}

// ----- the datagram transport's calls into a busy protocol -----

/// The user holds a shared borrow of the datagram protocol's cell across an
/// await while the endpoint closes: the stream transport retries
/// `connection_lost` until the protocol is free; the datagram transport
/// finds it busy once, skips `connection_lost` and drops the protocol.
#[test]
#[allow(clippy::await_holding_refcell_ref)] // the point of the test
fn a_datagram_protocol_borrowed_while_closing_still_gets_connection_lost() {
    struct D(Rc<Cell<usize>>);
    impl asyncio::DatagramProtocol for D {
        fn connection_lost(&mut self, _e: Option<std::io::Error>) {
            self.0.set(self.0.get() + 1);
        }
    }
    let lost = Rc::new(Cell::new(0));
    let l = lost.clone();
    run(async move {
        let (t, p) = asyncio::create_datagram_endpoint(
            move || D(l),
            asyncio::DatagramOptions::new().local_addr("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        {
            let _look = p.borrow();
            t.close();
            asyncio::sleep(Duration::from_millis(20)).await;
        }
        asyncio::sleep(Duration::from_millis(50)).await;
    });
    assert_eq!(lost.get(), 1);
}

/// Datagrams that arrive while the protocol is borrowed (held across an
/// await) are not lost: they wait in the socket and reach `datagram_received`
/// once the borrow ends. Before, each one was received and dropped.
#[test]
#[allow(clippy::await_holding_refcell_ref)] // the point of the test
fn datagrams_arriving_while_the_protocol_is_borrowed_are_delivered_afterwards() {
    struct D(Rc<RefCell<Vec<Vec<u8>>>>);
    impl asyncio::DatagramProtocol for D {
        fn datagram_received(&mut self, data: &[u8], _from: std::net::SocketAddr) {
            self.0.borrow_mut().push(data.to_vec());
        }
    }
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, seen) = (got.clone(), got.clone());
    run(async move {
        let got = seen;
        let (t, p) = asyncio::create_datagram_endpoint(
            move || D(g),
            asyncio::DatagramOptions::new().local_addr("127.0.0.1:0".parse().unwrap()),
        )
        .unwrap();
        let to = t.sockname().unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        {
            let _held = p.borrow_mut();
            for i in 0..5u8 {
                sender.send_to(&[i; 3], to).unwrap();
            }
            asyncio::sleep(Duration::from_millis(20)).await;
        }
        let start = Instant::now();
        while got.borrow().len() < 5 && start.elapsed() < Duration::from_secs(5) {
            asyncio::sleep(Duration::from_millis(2)).await;
        }
        t.close();
    });
    let got = got.borrow();
    assert_eq!(got.len(), 5, "every datagram arrived: {got:?}");
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d, &vec![i as u8; 3]);
    }
}

/// The same for a subprocess protocol: borrowed while the child exits and
/// its pipes close, it never hears `process_exited` nor `connection_lost`.
#[test]
#[allow(clippy::await_holding_refcell_ref)] // the point of the test
fn a_subprocess_protocol_borrowed_while_the_child_exits_still_hears_of_it() {
    #[derive(Default)]
    struct S {
        exited: usize,
        lost: usize,
    }
    impl asyncio::SubprocessProtocol for S {
        fn process_exited(&mut self) {
            self.exited += 1;
        }
        fn connection_lost(&mut self, _e: Option<std::io::Error>) {
            self.lost += 1;
        }
    }
    let (exited, lost) = run(async {
        let (_t, p) = asyncio::subprocess_exec(S::default, "true", [""; 0]).unwrap();
        {
            let _look = p.borrow();
            asyncio::sleep(Duration::from_millis(300)).await;
        }
        let start = Instant::now();
        while p.borrow().lost == 0 && start.elapsed() < Duration::from_secs(3) {
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        let s = p.borrow();
        (s.exited, s.lost)
    });
    assert_eq!((exited, lost), (1, 1));
}

/// A stream protocol that user code holds borrowed across an await while
/// its peer sends and then closes: nothing is lost, and nothing is called
/// while it is borrowed. Once the borrow ends every byte reaches
/// `data_received`, then `eof_received` and `connection_lost` each run once.
/// (The driver looks again on a short timer while the protocol is busy,
/// instead of re-polling at once and keeping the loop spinning.)
#[test]
#[allow(clippy::await_holding_refcell_ref)] // the point of the test
fn a_stream_protocol_borrowed_while_data_and_the_end_arrive_gets_them_afterwards() {
    #[derive(Default)]
    struct P {
        data: Vec<u8>,
        eof: usize,
        lost: usize,
    }
    impl Protocol for P {
        fn data_received(&mut self, data: &[u8]) {
            self.data.extend_from_slice(data);
        }
        fn eof_received(&mut self) -> bool {
            self.eof += 1;
            false
        }
        fn connection_lost(&mut self, _e: Option<std::io::Error>) {
            self.lost += 1;
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let payload = pattern(100_000);
    let sent = payload.clone();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut go = [0u8; 1];
        // Wait until the client holds its protocol, then send and close.
        s.read_exact(&mut go).unwrap();
        s.write_all(&sent).unwrap();
    });
    let p = run(async move {
        let (t, p) = asyncio::create_connection(P::default, "127.0.0.1", port)
            .await
            .unwrap();
        {
            let look = p.borrow();
            t.write(b"g").unwrap();
            asyncio::sleep(Duration::from_millis(100)).await;
            assert!(
                look.data.is_empty() && look.lost == 0,
                "called while borrowed"
            );
        }
        let start = Instant::now();
        while p.borrow().lost == 0 && start.elapsed() < Duration::from_secs(10) {
            asyncio::sleep(Duration::from_millis(5)).await;
        }
        p
    });
    peer.join().unwrap();
    let p = p.borrow();
    assert_eq!(p.data.len(), payload.len());
    assert!(
        p.data == payload,
        "the bytes arrived out of order or changed"
    );
    assert_eq!((p.eof, p.lost), (1, 1));
}
