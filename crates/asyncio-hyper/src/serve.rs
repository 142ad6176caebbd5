//! The `serve` helper: an HTTP server on a [`Server`], each connection a task
//! of one [`TaskGroup`], stopped gracefully with a deadline.

use std::cell::{Cell, RefCell};
use std::error::Error as StdError;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use asyncio_core::{ExceptionContext, PanicError};
use asyncio_streams::{
    HyperIo, LocalExecutor, LoopTimer, Server, ServerOptions, StreamReader, StreamWriter,
};
use asyncio_structured::TaskGroup;
use asyncio_sync::Event;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;

/// Which HTTP versions a server speaks on a plaintext connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersions {
    /// HTTP/1.1, or HTTP/2 when the client opens with HTTP/2's preface
    /// (h2c with prior knowledge), told apart by the first bytes.
    #[default]
    Auto,
    /// HTTP/1.1 (and 1.0) only.
    Http1,
    /// HTTP/2 only, with prior knowledge (h2c): no upgrade from HTTP/1.1.
    Http2,
}

/// How an HTTP server serves its connections: the service, the protocols
/// and the timeouts. [`start_server`](Self::start_server) (or its
/// variants) binds it and returns an [`HttpServer`].
///
/// Over TLS the version follows ALPN: a client that agreed on `h2` speaks
/// HTTP/2, one that agreed on `http/1.1` HTTP/1.1, one without ALPN is told
/// apart by its first bytes. Offer both in the [`ServerTls`](asyncio_streams::ServerTls)
/// (`alpn_protocols(["h2", "http/1.1"])`).
///
/// The service is cloned for each connection, as hyper's `serve_connection`
/// takes it by value; `service_fn` over an `async fn` costs nothing to clone.
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
/// use asyncio::http::Http;
/// use http_body_util::Full;
/// use hyper::body::{Bytes, Incoming};
///
/// async fn hello(_: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
///     Ok(hyper::Response::new(Full::new(Bytes::from("hello\n"))))
/// }
///
/// asyncio::run(async {
///     let server = Http::new(hyper::service::service_fn(hello))
///         .start_server("127.0.0.1", 0)
///         .await
///         .unwrap();
///     let port = server.local_addr().unwrap().port();
///     let mut client = asyncio::http::Connector::new()
///         .handshake(&format!("http://127.0.0.1:{port}/").parse().unwrap())
///         .await
///         .unwrap();
///     let req = hyper::Request::get("/").body(http_body_util::Empty::<Bytes>::new()).unwrap();
///     assert_eq!(client.send_request(req).await.unwrap().status(), 200);
///     let report = server.shutdown(Duration::from_secs(5)).await;
///     assert_eq!(report.cancelled, 0);
/// })
/// .unwrap();
/// ```
pub struct Http<S> {
    service: S,
    protocol: HttpVersions,
    builder: auto::Builder<LocalExecutor>,
}

impl<S: fmt::Debug> fmt::Debug for Http<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("service", &self.service)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl<S, B> Http<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Serves `service` (hyper's `service_fn(handler)`, or any hyper
    /// `Service`, an axum `Router` among them) with hyper's defaults, on the
    /// loop's timers: HTTP/1's header-read timeout is 30 s, HTTP/2 sends no
    /// keep-alive pings.
    pub fn new(service: S) -> Self {
        let mut builder = auto::Builder::new(LocalExecutor);
        builder.http1().timer(LoopTimer);
        builder.http2().timer(LoopTimer);
        Http {
            service,
            protocol: HttpVersions::Auto,
            builder,
        }
    }

    /// Which versions plaintext connections speak ([`HttpVersions::Auto`] by default).
    pub fn protocol(mut self, protocol: HttpVersions) -> Self {
        self.protocol = protocol;
        self
    }

    /// How long an HTTP/1 client may take to send a request's headers,
    /// counted from when the server starts waiting for them (also between
    /// requests of a keep-alive connection); past it the connection is
    /// closed. `None` waits for ever. 30 s by default (hyper's).
    pub fn header_read_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.builder.http1().header_read_timeout(timeout);
        self
    }

    /// Whether HTTP/1 connections are kept open between requests (on by default).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.builder.http1().keep_alive(on);
        self
    }

    /// HTTP/2 keep-alive: a PING every `interval` while the connection is
    /// open; a peer that does not answer within `timeout` has its connection
    /// closed. Off by default.
    pub fn http2_keep_alive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.builder
            .http2()
            .keep_alive_interval(interval)
            .keep_alive_timeout(timeout);
        self
    }

    /// How many HTTP/2 streams a client may open at once on one connection
    /// (hyper's default, 200, otherwise).
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.builder.http2().max_concurrent_streams(max);
        self
    }

    /// hyper-util's builder itself, for settings this type does not name.
    pub fn builder_mut(&mut self) -> &mut auto::Builder<LocalExecutor> {
        &mut self.builder
    }

    /// Binds a TCP server on `host:port` (asyncio's `start_server`) and
    /// serves it.
    ///
    /// # Errors
    /// As [`start_server_with`](asyncio_streams::start_server_with).
    pub async fn start_server(self, host: &str, port: u16) -> io::Result<HttpServer> {
        self.start_server_with(host, port, &ServerOptions::new())
            .await
    }

    /// [`start_server`](Self::start_server) with asyncio's options: backlog,
    /// `SO_REUSEPORT`, `ssl=` (HTTPS, the version chosen by ALPN)...
    ///
    /// # Errors
    /// As [`start_server_with`](asyncio_streams::start_server_with).
    pub async fn start_server_with(
        self,
        host: &str,
        port: u16,
        options: &ServerOptions,
    ) -> io::Result<HttpServer> {
        let (shared, callback) = self.into_parts();
        let server = asyncio_streams::start_server_with(callback, host, port, options).await?;
        Ok(HttpServer::new(server, shared))
    }

    /// Serves HTTP on a Unix socket at `path`.
    ///
    /// # Errors
    /// As [`start_unix_server_with`](asyncio_streams::start_unix_server_with).
    pub async fn start_unix_server_with(
        self,
        path: impl AsRef<std::path::Path>,
        options: &ServerOptions,
    ) -> io::Result<HttpServer> {
        let (shared, callback) = self.into_parts();
        let server = asyncio_streams::start_unix_server_with(callback, path, options).await?;
        Ok(HttpServer::new(server, shared))
    }

    /// Serves on a listening socket made elsewhere (asyncio's `sock=`).
    ///
    /// # Errors
    /// As [`start_server_from_listener`](asyncio_streams::start_server_from_listener).
    pub fn start_server_from_listener(
        self,
        listener: std::net::TcpListener,
        options: &ServerOptions,
    ) -> io::Result<HttpServer> {
        let (shared, callback) = self.into_parts();
        let server = asyncio_streams::start_server_from_listener(callback, listener, options)?;
        Ok(HttpServer::new(server, shared))
    }

    /// The group, the stop signal and the callback that puts each accepted
    /// connection into the group.
    fn into_parts(
        self,
    ) -> (
        Rc<Shared>,
        impl FnMut(StreamReader, StreamWriter) -> std::future::Ready<()> + 'static,
    ) {
        let shared = Rc::new(Shared {
            group: RefCell::new(Some(TaskGroup::new())),
            stop: Event::new(),
            live: Cell::new(0),
            served: Cell::new(0),
            drained: Event::new(),
        });
        let conns = Rc::new(ConnConfig {
            service: self.service,
            protocol: self.protocol,
            http1: self.builder.clone().http1_only(),
            http2: self.builder.clone().http2_only(),
            auto: self.builder,
        });
        let weak = Rc::downgrade(&shared);
        let callback = move |reader: StreamReader, writer: StreamWriter| {
            if let Some(shared) = weak.upgrade() {
                let handle = shared.group.borrow().as_ref().map(|g| g.handle());
                if let Some(handle) = handle {
                    let guard = LiveGuard::new(shared.clone());
                    let conns = conns.clone();
                    // A group that stopped taking children (shut down) drops
                    // the connection, which closes it.
                    let _ = handle.try_create_task(async move {
                        // The guard lives as long as the task's future: it
                        // counts the connection until it ends or is cancelled.
                        conns.serve(reader, writer, &guard.0.stop).await;
                    });
                }
            }
            std::future::ready(())
        };
        (shared, callback)
    }
}

struct ConnConfig<S> {
    service: S,
    protocol: HttpVersions,
    auto: auto::Builder<LocalExecutor>,
    http1: auto::Builder<LocalExecutor>,
    http2: auto::Builder<LocalExecutor>,
}

impl<S, B> ConnConfig<S>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + 'static,
    S::Future: 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// One connection, to its end: a graceful shutdown once `stop` is set;
    /// a panic in the service is reported to the loop's exception handler
    /// and ends this connection only (asyncio's servers log a failed
    /// connection callback and go on serving).
    async fn serve(&self, reader: StreamReader, writer: StreamWriter, stop: &Event) {
        let protocol = match alpn(&writer) {
            Some(p) => p,
            None => self.protocol,
        };
        let io = HyperIo::new(reader, writer);
        let builder = match protocol {
            HttpVersions::Auto => &self.auto,
            HttpVersions::Http1 => &self.http1,
            HttpVersions::Http2 => &self.http2,
        };
        let conn = builder.serve_connection(io, self.service.clone());
        let result = drive(conn, stop, |c| c.graceful_shutdown()).await;
        match result {
            Ok(Ok(())) => {}
            // A connection error (a reset, a malformed request, a timeout)
            // is the client's business, as in hyper's own examples.
            Ok(Err(_)) => {}
            Err(panic) => {
                let mut ctx =
                    ExceptionContext::new("an HTTP service panicked; its connection was closed");
                ctx.panic = Some(panic);
                if let Ok(lp) = asyncio_core::get_running_loop() {
                    lp.call_exception_handler(&ctx);
                }
            }
        }
    }
}

/// The protocol TLS's ALPN chose, if the connection is TLS and one was.
fn alpn(writer: &StreamWriter) -> Option<HttpVersions> {
    #[cfg(feature = "tls")]
    {
        let info = writer.tls_info()?;
        match info.alpn_protocol.as_deref() {
            Some(b"h2") => Some(HttpVersions::Http2),
            Some(b"http/1.1") | Some(b"http/1.0") => Some(HttpVersions::Http1),
            _ => None,
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = writer;
        None
    }
}

/// Polls `conn` to its end, calling `graceful` once when `stop` is set, and
/// catching a panic of the service (polled inside `conn`).
async fn drive<C, E>(
    conn: C,
    stop: &Event,
    graceful: impl Fn(Pin<&mut C>),
) -> Result<Result<(), E>, PanicError>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = pin!(conn);
    let mut stopping = pin!(stop.wait());
    let mut asked = false;
    poll_fn(|cx| {
        if !asked && stopping.as_mut().poll(cx).is_ready() {
            asked = true;
            graceful(conn.as_mut());
        }
        // Through the loop's gate, as every call into user code: the fault
        // plan counts and faults it like the loop's own callbacks.
        match asyncio_core::call_user(|| conn.as_mut().poll(cx)) {
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await
}

/// What a server's connections share.
struct Shared {
    /// `None` once shut down.
    group: RefCell<Option<TaskGroup>>,
    stop: Event,
    live: Cell<usize>,
    served: Cell<u64>,
    /// Set when `live` falls to 0 after `stop`.
    drained: Event,
}

/// Counts a connection while its task lives (also when it is cancelled).
struct LiveGuard(Rc<Shared>);

impl LiveGuard {
    fn new(shared: Rc<Shared>) -> Self {
        shared.live.set(shared.live.get() + 1);
        shared.served.set(shared.served.get() + 1);
        LiveGuard(shared)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.live.set(s.live.get() - 1);
        if s.live.get() == 0 && s.stop.is_set() {
            s.drained.set();
        }
    }
}

/// A running HTTP server (what [`Http::start_server`] returns): the
/// listening [`Server`] and a [`TaskGroup`] holding one task per connection.
///
/// Dropping it closes the listener and cancels every connection's task
/// (no connection outlives its server); [`shutdown`](Self::shutdown) stops
/// it gracefully instead.
pub struct HttpServer {
    server: Server,
    shared: Rc<Shared>,
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("server", &self.server)
            .field("connections", &self.shared.live.get())
            .finish()
    }
}

/// What [`HttpServer::shutdown`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that finished by themselves within the deadline (their
    /// in-flight requests answered).
    pub finished: usize,
    /// Connections still busy at the deadline, whose tasks were cancelled.
    pub cancelled: usize,
}

impl HttpServer {
    fn new(server: Server, shared: Rc<Shared>) -> Self {
        HttpServer { server, shared }
    }

    /// The listening [`Server`] (addresses, `is_serving`, `sockets`).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The TCP address it listens on, if it listens on one.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.server.local_addr()
    }

    /// How many connections are open now.
    pub fn connections(&self) -> usize {
        self.shared.live.get()
    }

    /// How many connections it has accepted in all.
    pub fn connections_served(&self) -> u64 {
        self.shared.served.get()
    }

    /// Serves until `stop` completes (a signal, an [`Event`], a sleep), then
    /// shuts down gracefully with `grace` as the deadline.
    pub async fn serve_until(self, stop: impl Future, grace: Duration) -> ShutdownReport {
        stop.await;
        self.shutdown(grace).await
    }

    /// Stops gracefully: stops accepting, asks every connection to finish
    /// (HTTP/1 answers the request in flight then closes; HTTP/2 sends
    /// GOAWAY and finishes its open streams), waits until they all ended or
    /// `grace` passed, then cancels the tasks of those left, and returns once
    /// every connection is gone.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        self.server.close();
        let at_stop = self.shared.live.get();
        self.shared.stop.set();
        if at_stop == 0 {
            self.shared.drained.set();
        }
        let group = self.shared.group.borrow_mut().take();
        let mut cancelled = 0;
        if let Some(group) = group {
            // A connection's task never fails (panics are caught in it), so
            // the group's outcome says nothing more than the count.
            if asyncio_core::timeout(grace, group.join()).await.is_err() {
                // The join was dropped at the deadline: the group cancelled
                // the connections left.
                cancelled = self.shared.live.get();
            }
        }
        // Cancelled tasks are dropped at their next turn of the loop.
        self.shared.drained.wait().await;
        ShutdownReport {
            finished: at_stop.saturating_sub(cancelled),
            cancelled,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.server.close();
        // Dropping the group cancels the connections' tasks.
        drop(self.shared.group.borrow_mut().take());
    }
}
