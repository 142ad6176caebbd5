//! Network workloads: asyncio-rs's streams against tokio's current-thread
//! runtime, on loopback.
//!
//! - `tcp_echo`: one server and [`ECHO_CONNS`] client connections on one
//!   runtime (one thread), each client sending [`MSG`]-byte messages and
//!   waiting for their echo; per-message latencies are kept for p50/p99.
//! - `http_hello`: hyper 1.x's hello world served on the runtime under test;
//!   the load comes from the same generator for both, a tokio runtime on
//!   another thread with [`HTTP_CONNS`] keep-alive connections.
//! - `idle_conns`: the memory a server needs per idle connection.

use std::cell::RefCell;
use std::convert::Infallible;
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Client connections of `tcp_echo`.
pub const ECHO_CONNS: usize = 100;
/// Message size of `tcp_echo`.
pub const MSG: usize = 64;
/// Keep-alive connections of the `http_hello` load generator.
pub const HTTP_CONNS: usize = 50;

/// Latency percentiles of one run, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Percentiles {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
}

thread_local! {
    static LATENCIES: RefCell<Vec<(&'static str, Percentiles)>> = const { RefCell::new(Vec::new()) };
}

/// p50 and p99 of `xs`.
pub fn percentiles(mut xs: Vec<u64>) -> Percentiles {
    xs.sort_unstable();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q) as usize];
    Percentiles {
        p50_ns: at(0.50),
        p99_ns: at(0.99),
    }
}

/// Keeps one run's percentiles for the showdown's latency report.
pub fn record(runtime: &'static str, p: Percentiles) {
    LATENCIES.with(|l| l.borrow_mut().push((runtime, p)));
}

/// The latency percentiles recorded by the `tcp_echo` runs so far, by runtime
/// (each run's percentiles; the caller takes medians).
pub fn take_latencies() -> Vec<(&'static str, Percentiles)> {
    LATENCIES.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// A current-thread tokio runtime with its I/O and time drivers.
pub fn tokio_rt_net() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
}

/// The `tcp_echo` server's connection callback: echoes [`MSG`]-byte messages.
pub async fn asyncio_echo(mut r: asyncio::StreamReader, mut w: asyncio::StreamWriter) {
    while let Ok(msg) = r.readexactly(MSG).await {
        w.write(&msg);
        if w.drain().await.is_err() {
            break;
        }
    }
}

/// One `tcp_echo` client: `per` round trips of a [`MSG`]-byte message; the
/// latency of each, in nanoseconds.
pub async fn asyncio_echo_client(port: u16, per: usize) -> Vec<u64> {
    let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port)
        .await
        .expect("the server accepts");
    let msg = [7u8; MSG];
    let mut lats = Vec::with_capacity(per);
    for _ in 0..per {
        let t = Instant::now();
        w.write(&msg);
        w.drain().await.expect("the server reads");
        let back = r.readexactly(MSG).await.expect("the server echoes");
        debug_assert_eq!(back, msg);
        lats.push(t.elapsed().as_nanos() as u64);
    }
    lats
}

/// `tcp_echo` on asyncio-rs: `total` messages over [`ECHO_CONNS`] connections.
pub fn asyncio_tcp_echo(lp: &asyncio::EventLoop, total: usize) {
    let per = total.div_ceil(ECHO_CONNS);
    let lats = lp
        .run_until_complete(async move {
            let server = asyncio::start_server(asyncio_echo, "127.0.0.1", 0)
                .await
                .expect("a loopback server binds");
            let port = server.local_addr().expect("a TCP server").port();
            let clients: Vec<_> = (0..ECHO_CONNS)
                .map(|_| asyncio::create_task(asyncio_echo_client(port, per)))
                .collect();
            let mut all = Vec::with_capacity(per * ECHO_CONNS);
            for c in clients {
                all.extend(c.await.expect("a client neither panics nor is cancelled"));
            }
            server.close();
            server.wait_closed().await;
            all
        })
        .expect("the loop runs");
    record("asyncio-rs", percentiles(lats));
}

/// `tcp_echo` with no runtime at all: the floor of the echo. One thread, one
/// `mio::Poll`, no tasks, no wakers, no buffers beyond a 64-byte array per
/// connection: each message leg is one `recv` and one `send`, the same system
/// calls a runtime makes for it, so what a runtime costs above this row is its
/// own user-space work. The same [`ECHO_CONNS`] connections, message size and
/// latency measure (client send to client receive of the echo) as the
/// runtimes' rows.
pub fn floor_tcp_echo(total: usize) {
    use std::io::{ErrorKind, Read, Write};

    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};

    /// One side of one connection: the socket, the bytes of the message read
    /// so far, and (on a client) how many messages are left and when the one
    /// in flight was sent.
    struct Side {
        sock: TcpStream,
        buf: [u8; MSG],
        got: usize,
        server: bool,
        left: usize,
        sent_at: Instant,
    }

    fn send_all(sock: &mut TcpStream, buf: &[u8]) {
        // One `send` of 64 bytes to a loopback socket with an empty send
        // buffer always completes; anything else would be a broken floor.
        let n = sock
            .write(buf)
            .expect("a 64-byte send to loopback succeeds");
        assert_eq!(n, buf.len(), "a 64-byte loopback send is not split");
    }

    let per = total.div_ceil(ECHO_CONNS);
    let mut poll = Poll::new().expect("an epoll instance");
    let mut events = Events::with_capacity(1024);
    let mut listener =
        TcpListener::bind("127.0.0.1:0".parse().expect("an address")).expect("a loopback listener");
    let addr = listener.local_addr().expect("bound");
    let listen = Token(usize::MAX);
    poll.registry()
        .register(&mut listener, listen, Interest::READABLE)
        .expect("register the listener");

    // Clients connect (blocking connect through std, then non-blocking); the
    // server accepts each; both sides are registered for readability only.
    let mut sides: Vec<Side> = Vec::with_capacity(2 * ECHO_CONNS);
    for _ in 0..ECHO_CONNS {
        let std_sock = std::net::TcpStream::connect(addr).expect("the listener accepts");
        std_sock.set_nodelay(true).expect("TCP_NODELAY");
        std_sock.set_nonblocking(true).expect("non-blocking");
        sides.push(Side {
            sock: TcpStream::from_std(std_sock),
            buf: [7u8; MSG],
            got: 0,
            server: false,
            left: per,
            sent_at: Instant::now(),
        });
    }
    while sides.len() < 2 * ECHO_CONNS {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nodelay(true).expect("TCP_NODELAY");
                sides.push(Side {
                    sock,
                    buf: [0u8; MSG],
                    got: 0,
                    server: true,
                    left: 0,
                    sent_at: Instant::now(),
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
                    .expect("epoll_wait");
                assert!(
                    !events.is_empty(),
                    "the floor's connections were not accepted in 5 s"
                );
            }
            Err(e) => panic!("accept failed: {e}"),
        }
    }
    for (i, side) in sides.iter_mut().enumerate() {
        poll.registry()
            .register(&mut side.sock, Token(i), Interest::READABLE)
            .expect("register a connection");
    }

    let mut lats = Vec::with_capacity(per * ECHO_CONNS);
    let mut live = 0usize;
    for side in sides.iter_mut().filter(|s| !s.server) {
        if side.left > 0 {
            side.sent_at = Instant::now();
            send_all(&mut side.sock, &[7u8; MSG]);
            live += 1;
        }
    }
    while live > 0 {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .expect("epoll_wait");
        assert!(!events.is_empty(), "the floor's echo stalled for 5 s");
        for ev in events.iter() {
            let side = &mut sides[ev.token().0];
            // Read until the message is whole or the socket is empty (one
            // `recv` in practice: a whole 64-byte message arrives at once).
            while side.got < MSG {
                match side.sock.read(&mut side.buf[side.got..]) {
                    Ok(0) => panic!("a floor connection closed early"),
                    Ok(n) => side.got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv failed: {e}"),
                }
            }
            if side.got < MSG {
                continue;
            }
            side.got = 0;
            if side.server {
                let Side { sock, buf, .. } = side;
                send_all(sock, buf);
            } else {
                lats.push(side.sent_at.elapsed().as_nanos() as u64);
                side.left -= 1;
                if side.left == 0 {
                    live -= 1;
                } else {
                    side.sent_at = Instant::now();
                    let Side { sock, buf, .. } = side;
                    send_all(sock, buf);
                }
            }
        }
    }
    record("floor", percentiles(lats));
}

/// `tcp_echo` on tokio's current-thread runtime with `TcpStream`.
pub fn tokio_tcp_echo(rt: &tokio::runtime::Runtime, total: usize) {
    tokio_tcp_echo_as(rt, total, "tokio-current-thread");
}

/// `tcp_echo` on tokio runtime `rt` (current-thread or multi-thread), its
/// latencies recorded under `label`.
pub fn tokio_tcp_echo_as(rt: &tokio::runtime::Runtime, total: usize, label: &'static str) {
    let per = total.div_ceil(ECHO_CONNS);
    let lats = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                tokio::spawn(async move {
                    let mut buf = [0u8; MSG];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&buf).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let clients: Vec<_> = (0..ECHO_CONNS)
            .map(|_| {
                tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("the server accepts");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    let msg = [7u8; MSG];
                    let mut back = [0u8; MSG];
                    let mut lats = Vec::with_capacity(per);
                    for _ in 0..per {
                        let t = Instant::now();
                        s.write_all(&msg).await.expect("the server reads");
                        s.read_exact(&mut back).await.expect("the server echoes");
                        lats.push(t.elapsed().as_nanos() as u64);
                    }
                    lats
                })
            })
            .collect();
        let mut all = Vec::with_capacity(per * ECHO_CONNS);
        for c in clients {
            all.extend(c.await.expect("a client neither panics nor is cancelled"));
        }
        server.abort();
        all
    });
    record(label, percentiles(lats));
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// The load generator of `http_hello`: `total` GET requests over
/// [`HTTP_CONNS`] keep-alive connections, one request in flight on each, from
/// the calling thread. A hand-written client on a bare `mio` loop (one `send`
/// per request, reads until the socket is empty, a response ends after its
/// headers and `Content-Length` bytes): the cheapest client there is, so the
/// row measures the server. (A tokio client here was the bottleneck: it
/// showed hyper on asyncio-rs and on tokio level, where `wrk` showed them
/// 1.17x apart.)
pub fn http_load(port: u16, total: usize) {
    use std::io::{ErrorKind, Read, Write};

    use mio::net::TcpStream;
    use mio::{Events, Interest, Poll, Token};

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

    /// The length of the first whole response in `buf`, if there is one.
    fn response_len(buf: &[u8]) -> Option<usize> {
        let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let mut body = 0usize;
        for line in buf[..head].split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            if line[..colon].eq_ignore_ascii_case(b"content-length") {
                let v = std::str::from_utf8(&line[colon + 1..]).expect("an ASCII header");
                body = v.trim().parse().expect("a Content-Length number");
            }
        }
        (buf.len() >= head + body).then_some(head + body)
    }

    fn send(sock: &mut TcpStream) {
        let n = sock
            .write(REQUEST)
            .expect("a small send to loopback succeeds");
        assert_eq!(n, REQUEST.len(), "a small loopback send is not split");
    }

    let per = total.div_ceil(HTTP_CONNS);
    let mut poll = Poll::new().expect("an epoll instance");
    let mut events = Events::with_capacity(256);
    let mut conns: Vec<(TcpStream, Vec<u8>, usize)> = Vec::with_capacity(HTTP_CONNS);
    for i in 0..HTTP_CONNS {
        let std_sock =
            std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
        std_sock.set_nodelay(true).expect("TCP_NODELAY");
        std_sock.set_nonblocking(true).expect("non-blocking");
        let mut sock = TcpStream::from_std(std_sock);
        poll.registry()
            .register(&mut sock, Token(i), Interest::READABLE)
            .expect("register a connection");
        send(&mut sock);
        conns.push((sock, Vec::with_capacity(512), per));
    }
    let mut chunk = vec![0u8; 16 * 1024];
    let mut live = HTTP_CONNS;
    while live > 0 {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(10)))
            .expect("epoll_wait");
        assert!(
            !events.is_empty(),
            "the HTTP server under test stalled for 10 s"
        );
        for ev in events.iter() {
            let (sock, buf, left) = &mut conns[ev.token().0];
            if *left == 0 {
                continue;
            }
            loop {
                match sock.read(&mut chunk) {
                    Ok(0) => panic!("the server closed a keep-alive connection"),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if n < chunk.len() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("recv from the server failed: {e}"),
                }
            }
            while let Some(len) = response_len(buf) {
                debug_assert!(buf[..len].ends_with(b"Hello, World!"));
                buf.drain(..len);
                *left -= 1;
                if *left == 0 {
                    live -= 1;
                    break;
                }
                send(sock);
            }
        }
    }
}

/// `http_hello` with no runtime: the floor of the row. hyper's own HTTP/1.1
/// connection futures, the same service, driven by a hand-written loop: one
/// thread, one `mio::Poll`, no tasks, no timers, no executor; an event (or a
/// wake from hyper itself) polls that connection's future again, and its I/O
/// reads and writes the socket directly. What a runtime adds to hyper is
/// everything above this row; the rest is hyper's, the kernel's and the load
/// generator's.
pub fn floor_http_hello(total: usize) {
    use std::cell::Cell;
    use std::future::Future;
    use std::io::{ErrorKind, Read, Write};
    use std::pin::Pin;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll as TaskPoll, Wake, Waker};

    use mio::net::{TcpListener, TcpStream};
    use mio::{Events, Interest, Poll, Token};

    /// The socket as hyper's I/O: reads and writes go straight to it;
    /// `WouldBlock` is `Pending`, and the next event on it polls again. A
    /// read lands in the connection's own chunk (zeroed once, not per read)
    /// and is copied into hyper's buffer: no unsafe code in a floor. A short
    /// read shows the socket drained, so the next read waits for an event
    /// instead of making a system call that would fail with `EAGAIN` (as the
    /// runtimes do); the flags are shared with the loop.
    struct MioIo(TcpStream, Box<[u8; 4096]>, Rc<Cell<u8>>);
    /// The connection waits for room to write: a writable event is news.
    const WANTS_WRITE: u8 = 1;
    /// The last read was short: nothing to read until a readable event.
    const DRAINED: u8 = 2;

    impl hyper::rt::Read for MioIo {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            mut buf: hyper::rt::ReadBufCursor<'_>,
        ) -> TaskPoll<std::io::Result<()>> {
            let MioIo(sock, chunk, flags) = self.get_mut();
            if flags.get() & DRAINED != 0 {
                return TaskPoll::Pending;
            }
            let want = buf.remaining().min(chunk.len());
            match sock.read(&mut chunk[..want]) {
                Ok(n) => {
                    if n > 0 && n < want {
                        flags.set(flags.get() | DRAINED);
                    }
                    buf.put_slice(&chunk[..n]);
                    TaskPoll::Ready(Ok(()))
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => TaskPoll::Pending,
                Err(e) => TaskPoll::Ready(Err(e)),
            }
        }
    }

    impl hyper::rt::Write for MioIo {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> TaskPoll<std::io::Result<usize>> {
            let MioIo(sock, _, flags) = self.get_mut();
            match sock.write(buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Only now does a writable event matter to this connection.
                    flags.set(flags.get() | WANTS_WRITE);
                    TaskPoll::Pending
                }
                other => TaskPoll::Ready(other),
            }
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> TaskPoll<std::io::Result<()>> {
            TaskPoll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> TaskPoll<std::io::Result<()>> {
            TaskPoll::Ready(self.0.shutdown(std::net::Shutdown::Write))
        }
    }

    /// hyper's own wake-ups (it yields now and then): a flag the loop checks.
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    type ConnFuture = Pin<Box<dyn Future<Output = Result<(), hyper::Error>>>>;

    let mut poll = Poll::new().expect("an epoll instance");
    let mut events = Events::with_capacity(1024);
    let mut listener =
        TcpListener::bind("127.0.0.1:0".parse().expect("an address")).expect("a loopback listener");
    let port = listener.local_addr().expect("bound").port();
    let listen = Token(usize::MAX);
    poll.registry()
        .register(&mut listener, listen, Interest::READABLE)
        .expect("register the listener");
    let load = std::thread::spawn(move || http_load(port, total));
    /// A connection: hyper's future, its wake flag and waker, and its I/O
    /// flags.
    type Slot = Option<(ConnFuture, Arc<Flag>, Waker, Rc<Cell<u8>>)>;
    let mut conns: Vec<Slot> = Vec::new();
    let mut done = 0usize;
    let mut ready: Vec<usize> = Vec::new();
    while done < HTTP_CONNS {
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .expect("epoll_wait");
        assert!(
            !events.is_empty(),
            "the floor's HTTP server stalled for 5 s"
        );
        ready.clear();
        for ev in events.iter() {
            if ev.token() != listen {
                let key = ev.token().0;
                let Some((.., flags)) = &conns[key] else {
                    continue;
                };
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                if readable {
                    flags.set(flags.get() & !DRAINED);
                }
                if readable || flags.get() & WANTS_WRITE != 0 {
                    ready.push(key);
                }
                continue;
            }
            loop {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        sock.set_nodelay(true).expect("TCP_NODELAY");
                        let key = conns.len();
                        poll.registry()
                            .register(
                                &mut sock,
                                Token(key),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .expect("register a connection");
                        let flags = Rc::new(Cell::new(0u8));
                        let fut: ConnFuture =
                            Box::pin(hyper::server::conn::http1::Builder::new().serve_connection(
                                MioIo(sock, Box::new([0; 4096]), flags.clone()),
                                hyper::service::service_fn(hello),
                            ));
                        let flag = Arc::new(Flag(AtomicBool::new(false)));
                        let waker = Waker::from(flag.clone());
                        conns.push(Some((fut, flag, waker, flags)));
                        ready.push(key);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("accept failed: {e}"),
                }
            }
        }
        // Poll each connection with an event, and again while hyper wakes
        // itself (bounded: a connection that keeps waking itself is polled
        // again on the next turn).
        let mut i = 0;
        while i < ready.len() {
            let key = ready[i];
            i += 1;
            let Some((fut, flag, waker, flags)) = &mut conns[key] else {
                continue;
            };
            flag.0.store(false, Ordering::Relaxed);
            flags.set(flags.get() & !WANTS_WRITE);
            let finished = fut
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_ready();
            if finished {
                conns[key] = None;
                done += 1;
            } else if flag.0.load(Ordering::Relaxed) && ready.len() < 64 * HTTP_CONNS {
                ready.push(key);
            }
        }
    }
    load.join().expect("the load generator does not panic");
}

/// `http_hello` on asyncio-rs: hyper's hello world, a task per connection;
/// the load generator runs on the default executor's thread.
pub fn asyncio_http_hello(lp: &asyncio::EventLoop, total: usize) {
    lp.run_until_complete(async move {
        let server = asyncio::start_server(
            |r, w| async move {
                let io = asyncio::HyperIo::new(r, w);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(hello))
                    .await;
            },
            "127.0.0.1",
            0,
        )
        .await
        .expect("a loopback server binds");
        let port = server.local_addr().expect("a TCP server").port();
        asyncio::to_thread(move || http_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.close();
        server.wait_closed().await;
    })
    .expect("the loop runs");
}

/// `http_hello` on tokio's current-thread runtime: hyper with hyper-util's
/// `TokioIo`; the same load generator on a `spawn_blocking` thread.
pub fn tokio_http_hello(rt: &tokio::runtime::Runtime, total: usize) {
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(s);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, hyper::service::service_fn(hello))
                        .await;
                });
            }
        });
        tokio::task::spawn_blocking(move || http_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.abort();
    });
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Opens `n` plain blocking client connections to `port` (from a helper
/// thread, so the server can accept meanwhile).
fn idle_clients(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    (0..n)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts"))
        .collect()
}

/// Server memory per idle connection on asyncio-rs: RSS growth while a server
/// holds `n` connections, each handler waiting in `readline`.
pub fn asyncio_idle_bytes_per_conn(n: usize) -> usize {
    let lp = asyncio::EventLoop::new();
    lp.run_until_complete(async move {
        let server = asyncio::start_server_with(
            |mut r: asyncio::StreamReader, w: asyncio::StreamWriter| async move {
                let _ = r.readline().await;
                drop(w);
            },
            "127.0.0.1",
            0,
            &asyncio::ServerOptions::new().backlog(4096),
        )
        .await
        .expect("a loopback server binds");
        let port = server.local_addr().expect("a TCP server").port();
        let before = rss_bytes();
        let clients = asyncio::to_thread(move || idle_clients(port, n))
            .await
            .expect("connecting does not panic");
        while server.active_connections() < n {
            asyncio::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Let every handler reach its readline.
        asyncio::sleep(std::time::Duration::from_millis(50)).await;
        let per = rss_bytes().saturating_sub(before) / n;
        drop(clients);
        per
    })
    .expect("the loop runs")
}

/// The same on tokio: each connection a task waiting in `read` with a 64-byte
/// buffer in its future.
pub fn tokio_idle_bytes_per_conn(n: usize) -> usize {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    tokio_rt_net().block_on(async move {
        // The same backlog as the asyncio-rs side, so neither drops SYNs.
        let sock = tokio::net::TcpSocket::new_v4().expect("a socket");
        sock.bind(([127, 0, 0, 1], 0).into())
            .expect("a loopback port");
        let listener = sock.listen(4096).expect("listen");
        let port = listener.local_addr().expect("bound").port();
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        let before = rss_bytes();
        let server = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                o.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                });
            }
        });
        let clients = tokio::task::spawn_blocking(move || idle_clients(port, n))
            .await
            .expect("connecting does not panic");
        while open.load(Ordering::Relaxed) < n {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let per = rss_bytes().saturating_sub(before) / n;
        drop(clients);
        server.abort();
        per
    })
}
