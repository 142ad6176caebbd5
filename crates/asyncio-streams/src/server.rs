//! `start_server`, `start_unix_server` and the `Server` they return.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use asyncio_core::{IoRegistration, Task};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::conn::Conn;
use crate::connect::getaddrinfo;
use crate::options::ServerOptions;
use crate::reader::StreamReader;
use crate::sock::{Sock, StreamAddr};
use crate::writer::StreamWriter;

/// How many connections one wake-up of the accept loop takes before it lets
/// the other tasks run.
const ACCEPT_BATCH: usize = 128;

/// Misuse of a [`Server`]: asyncio raises `RuntimeError` for these.
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await.unwrap();
///     server.close();
///     server.serve_forever().await.unwrap_err()
/// })
/// .unwrap();
/// let state = err.get_ref().unwrap().downcast_ref::<asyncio::ServerStateError>();
/// assert_eq!(state, Some(&asyncio::ServerStateError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ServerStateError {
    /// The server is closed.
    #[error("server is closed")]
    Closed,
    /// Another task already awaits `serve_forever`.
    #[error("server is already being awaited on serve_forever()")]
    AlreadyServing,
}

impl From<ServerStateError> for io::Error {
    fn from(e: ServerStateError) -> Self {
        io::Error::other(e)
    }
}

enum ListenSock {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

/// A listening socket; the registration leaves `epoll` before the socket closes.
pub(crate) struct Listener {
    reg: IoRegistration,
    sock: ListenSock,
}

impl Listener {
    fn accept(&self) -> io::Result<Sock> {
        match &self.sock {
            ListenSock::Tcp(l) => l.accept().map(|(s, _)| Sock::Tcp(s)),
            ListenSock::Unix(l) => l.accept().map(|(s, _)| Sock::Unix(s)),
        }
    }
}

/// What a server does with each accepted connection: the streams' callback
/// task, or a protocol's transport.
pub(crate) type Spawn = Rc<dyn Fn(Rc<Conn>)>;

pub(crate) struct Inner {
    /// The loop the server was made on (asyncio's `Server.get_loop()`).
    lp: asyncio_core::EventLoop,
    listeners: RefCell<Vec<Listener>>,
    addrs: Vec<StreamAddr>,
    spawn: Spawn,
    nodelay: bool,
    accept_tasks: RefCell<Vec<Task<()>>>,
    closed: Cell<bool>,
    forever: Cell<bool>,
    clients: RefCell<slab::Slab<Weak<Conn>>>,
    waiters: RefCell<Vec<Waker>>,
    /// The Unix socket file to remove on close, with its inode.
    unix_path: Option<(PathBuf, u64, u64)>,
    #[cfg(feature = "tls")]
    tls: Option<(crate::tls::TlsContext, crate::options::TlsOpts)>,
}

/// A listening server (asyncio's `Server`), returned by [`start_server`] and
/// [`start_unix_server`]. Each accepted connection runs the callback as a new
/// task with its reader and writer.
///
/// `Server` is a cheap handle (`Clone`): one task may `serve_forever` while
/// another calls `close`. When the last handle is dropped the server closes
/// (asyncio keeps an unreferenced server serving; Rust frees what nobody owns).
///
/// ```
/// use asyncio::{start_server, open_connection, StreamReader, StreamWriter};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let server = start_server(|_r: StreamReader, mut w: StreamWriter| async move {
///         w.write(b"hi");
///     }, "127.0.0.1", 0).await?;
///     assert!(server.is_serving());
///     let port = server.local_addr().expect("an IP address").port();
///     let (mut r, _w) = open_connection("127.0.0.1", port).await?;
///     assert_eq!(r.read_to_eof().await?, b"hi");
///     server.close();
///     server.wait_closed().await;
///     assert!(!server.is_serving());
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Rc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("sockets", &self.inner.addrs)
            .field("serving", &self.is_serving())
            .field("clients", &self.inner.clients.borrow().len())
            .finish_non_exhaustive()
    }
}

/// A `client_connected_cb` that hands each connection its own clone of
/// `state`: `start_server(with_state(state, handle), ...)` with
/// `async fn handle(state: S, reader, writer)`, instead of cloning the state
/// into the closure and again into each connection's future.
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use asyncio::{StreamReader, StreamWriter};
///
/// async fn greet(names: Rc<RefCell<Vec<String>>>, mut r: StreamReader, mut w: StreamWriter) {
///     let name = r.readline().await.unwrap_or_default();
///     names.borrow_mut().push(String::from_utf8_lossy(&name).trim().to_owned());
///     w.write(b"hello\n");
/// }
///
/// let names = asyncio::run(async {
///     let names = Rc::new(RefCell::new(Vec::new()));
///     let server =
///         asyncio::start_server(asyncio::with_state(names.clone(), greet), "127.0.0.1", 0).await?;
///     let port = server.local_addr().unwrap().port();
///     let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await?;
///     w.write(b"ada\n");
///     r.readline().await.unwrap();
///     server.close();
///     std::io::Result::Ok(names.take())
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(names, ["ada"]);
/// ```
pub fn with_state<S, F, Fut>(
    state: S,
    mut handler: F,
) -> impl FnMut(StreamReader, StreamWriter) -> Fut
where
    S: Clone + 'static,
    F: FnMut(S, StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    move |r, w| handler(state.clone(), r, w)
}

/// Starts a TCP server on `host:port` (asyncio's `start_server`);
/// `client_connected_cb(reader, writer)` runs as a new task for each
/// connection. Port 0 picks a free port ([`Server::local_addr`] tells which).
/// A host name binds every address it resolves to; `""` binds all interfaces
/// (`0.0.0.0` and `::`).
///
/// The callback's output is dropped; a panic in it is reported through the
/// loop's exception handler, as asyncio reports an exception of the callback.
/// The callback may be `FnMut` (a counter of connections needs no `Cell`);
/// [`with_state`] hands each connection a clone of shared state.
///
/// # Errors
/// The resolver's or the OS's error (`AddrInUse`...); `Other` outside a loop.
///
/// ```
/// use asyncio::{StreamReader, StreamWriter};
///
/// let reply = asyncio::run(async {
///     // An echo server: one task per connection.
///     let server = asyncio::start_server(
///         |mut r: StreamReader, mut w: StreamWriter| async move {
///             let line = r.readline().await.unwrap();
///             w.write(&line);
///             w.drain().await.unwrap();
///         },
///         "127.0.0.1",
///         0,
///     )
///     .await?;
///     let port = server.local_addr().unwrap().port();
///     let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await?;
///     w.write(b"hello\n");
///     let reply = r.readline().await.unwrap();
///     server.close();
///     server.wait_closed().await;
///     std::io::Result::Ok(reply)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(reply, b"hello\n");
/// ```
pub async fn start_server<F, Fut>(
    client_connected_cb: F,
    host: &str,
    port: u16,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    start_server_with(client_connected_cb, host, port, &ServerOptions::default()).await
}

/// [`start_server`] with options (limit, backlog, `reuse_port`...).
///
/// # Errors
/// As [`start_server`].
///
/// ```
/// let n = asyncio::run(async {
///     let opts = asyncio::ServerOptions::new().limit(1024).backlog(16);
///     let server = asyncio::start_server_with(|_r, _w| async {}, "127.0.0.1", 0, &opts).await?;
///     let n = server.sockets().len();
///     server.close();
///     std::io::Result::Ok(n)
/// })
/// .unwrap()
/// .unwrap();
/// assert!(n >= 1);
/// ```
pub async fn start_server_with<F, Fut>(
    client_connected_cb: F,
    host: &str,
    port: u16,
    options: &ServerOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    let (listeners, bound) = bind_tcp_listeners(host, port, options).await?;
    Server::new(listeners, bound, client_connected_cb, options, None)
}

/// Binds every address `host` resolves to (`""`: all interfaces).
pub(crate) async fn bind_tcp_listeners(
    host: &str,
    port: u16,
    options: &ServerOptions,
) -> io::Result<(Vec<Listener>, Vec<StreamAddr>)> {
    let mut addrs = if host.is_empty() {
        vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ]
    } else {
        getaddrinfo(host, port).await?
    };
    addrs.dedup();
    let mut listeners = Vec::new();
    let mut bound = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let sock = match bind_tcp(*addr, options) {
            Ok(sock) => sock,
            // "" also asks for IPv6, which a host may not have.
            Err(_) if host.is_empty() && i == 1 => continue,
            Err(e) => return Err(e),
        };
        let listener = mio::net::TcpListener::from_std(sock.into());
        bound.push(StreamAddr::Inet(listener.local_addr()?));
        let reg = IoRegistration::new(listener.as_raw_fd())?;
        listeners.push(Listener {
            reg,
            sock: ListenSock::Tcp(listener),
        });
    }
    Ok((listeners, bound))
}

/// Starts a server on a TCP socket that is already bound and listening
/// (asyncio's `start_server(sock=...)`): for a socket made elsewhere, such as
/// one of several `SO_REUSEPORT` sockets made on another thread, each served
/// by its own loop. The socket is switched to non-blocking mode;
/// `options.reuse_address`, `reuse_port` and `backlog` do not apply (the
/// socket is already bound).
///
/// ```
/// use asyncio_streams::{ServerOptions, StreamReader, StreamWriter, start_server_from_listener};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let port = listener.local_addr().unwrap().port();
/// asyncio_core::EventLoop::new().run_until_complete(async move {
///     let cb = |_r: StreamReader, mut w: StreamWriter| async move { w.write(b"hi") };
///     let server = start_server_from_listener(cb, listener, &ServerOptions::new())?;
///     assert_eq!(server.local_addr().map(|a| a.port()), Some(port));
///     let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port).await?;
///     assert_eq!(r.read_to_eof().await?, b"hi");
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn start_server_from_listener<F, Fut>(
    client_connected_cb: F,
    listener: std::net::TcpListener,
    options: &ServerOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    let (listeners, bound) = tcp_listener_from_std(listener)?;
    Server::new(listeners, bound, client_connected_cb, options, None)
}

/// Takes over a bound, listening TCP socket.
pub(crate) fn tcp_listener_from_std(
    listener: std::net::TcpListener,
) -> io::Result<(Vec<Listener>, Vec<StreamAddr>)> {
    listener.set_nonblocking(true)?;
    let listener = mio::net::TcpListener::from_std(listener);
    let bound = vec![StreamAddr::Inet(listener.local_addr()?)];
    let reg = IoRegistration::new(listener.as_raw_fd())?;
    let listeners = vec![Listener {
        reg,
        sock: ListenSock::Tcp(listener),
    }];
    Ok((listeners, bound))
}

fn bind_tcp(addr: SocketAddr, options: &ServerOptions) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_reuse_address(options.reuse_address)?;
    if options.reuse_port {
        sock.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // As asyncio: `::` and `0.0.0.0` may then both be bound on one port.
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(options.backlog)?;
    Ok(sock)
}

/// Starts a server on the Unix socket `path` (asyncio's
/// `start_unix_server`). A socket file already at `path` is replaced; closing
/// the server removes it (see [`ServerOptions::cleanup_socket`]).
///
/// # Errors
/// The OS's error (a non-socket file at `path`, permissions...); `Other`
/// outside a loop.
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let got = asyncio::run(async {
///     let server = asyncio::start_unix_server(
///         |_r, mut w: asyncio::StreamWriter| async move { w.write(b"over unix") },
///         &path,
///     )
///     .await?;
///     let (mut r, _w) = asyncio::open_unix_connection(&path).await?;
///     let got = r.read_to_eof().await?;
///     server.close();
///     std::io::Result::Ok(got)
/// })
/// .unwrap()
/// .unwrap();
/// let _ = std::fs::remove_file(&path);
/// assert_eq!(got, b"over unix");
/// ```
pub async fn start_unix_server<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    start_unix_server_with(client_connected_cb, path, &ServerOptions::default()).await
}

/// [`start_unix_server`] with options (limit, backlog, cleanup).
///
/// # Errors
/// As [`start_unix_server`].
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-with-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// asyncio::run(async {
///     let opts = asyncio::ServerOptions::new().limit(512);
///     let server = asyncio::start_unix_server_with(|_r, _w| async {}, &path, &opts).await?;
///     assert!(server.is_serving());
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// let _ = std::fs::remove_file(&path);
/// ```
pub async fn start_unix_server_with<F, Fut>(
    client_connected_cb: F,
    path: impl AsRef<Path>,
    options: &ServerOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    let (listeners, bound, cleanup) = bind_unix_listener(path.as_ref(), options)?;
    Server::new(listeners, bound, client_connected_cb, options, cleanup)
}

/// A bound Unix listener, what closing it must clean up.
pub(crate) type UnixBound = (Vec<Listener>, Vec<StreamAddr>, Option<(PathBuf, u64, u64)>);

/// Binds a Unix listener at `path`, replacing a stale socket file.
pub(crate) fn bind_unix_listener(path: &Path, options: &ServerOptions) -> io::Result<UnixBound> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path)?;
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::unix(path)?)?;
    sock.listen(options.backlog)?;
    let std_listener = std::os::unix::net::UnixListener::from(OwnedFd::from(sock));
    unix_listener_from_std(std_listener, options)
}

/// Takes over a bound, listening Unix socket; its file is cleaned up on
/// close if `options.cleanup_socket` (and it has a path).
pub(crate) fn unix_listener_from_std(
    std_listener: std::os::unix::net::UnixListener,
    options: &ServerOptions,
) -> io::Result<UnixBound> {
    std_listener.set_nonblocking(true)?;
    let listener = mio::net::UnixListener::from_std(std_listener);
    let local = listener.local_addr()?;
    let cleanup = match local.as_pathname() {
        Some(path) if options.cleanup_socket => {
            let meta = std::fs::metadata(path)?;
            Some((path.to_owned(), meta.dev(), meta.ino()))
        }
        _ => None,
    };
    let bound = vec![StreamAddr::Unix(local)];
    let reg = IoRegistration::new(listener.as_raw_fd())?;
    let listeners = vec![Listener {
        reg,
        sock: ListenSock::Unix(listener),
    }];
    Ok((listeners, bound, cleanup))
}

/// Starts a server on a Unix socket that is already bound and listening
/// (asyncio's `start_unix_server(sock=...)`): one made elsewhere, such as
/// one passed in by systemd's socket activation. The socket is switched to
/// non-blocking mode; with `options.cleanup_socket` (the default) its file
/// is removed on close, as for a server that bound it itself.
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-fromunix-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
/// let got = asyncio::run(async {
///     let cb = |_r, mut w: asyncio::StreamWriter| async move { w.write(b"hi") };
///     let opts = asyncio::ServerOptions::new();
///     let server = asyncio::start_unix_server_from_listener(cb, listener, &opts)?;
///     let (mut r, _w) = asyncio::open_unix_connection(&path).await?;
///     let got = r.read_to_eof().await?;
///     server.close();
///     std::io::Result::Ok(got)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"hi");
/// ```
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn start_unix_server_from_listener<F, Fut>(
    client_connected_cb: F,
    listener: std::os::unix::net::UnixListener,
    options: &ServerOptions,
) -> io::Result<Server>
where
    F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: Future + 'static,
{
    let (listeners, bound, cleanup) = unix_listener_from_std(listener, options)?;
    Server::new(listeners, bound, client_connected_cb, options, cleanup)
}

impl Server {
    fn new<F, Fut>(
        listeners: Vec<Listener>,
        addrs: Vec<StreamAddr>,
        cb: F,
        options: &ServerOptions,
        unix_path: Option<(PathBuf, u64, u64)>,
    ) -> io::Result<Server>
    where
        F: FnMut(StreamReader, StreamWriter) -> Fut + 'static,
        Fut: Future + 'static,
    {
        // `FnMut`: the accept loops call it one at a time, on the loop's
        // thread, and nothing in it can reach the server to accept again.
        let cb = RefCell::new(cb);
        let limit = options.limit;
        let spawn: Spawn = Rc::new(move |conn: Rc<Conn>| {
            let r = StreamReader::new(conn.clone(), limit);
            let w = StreamWriter::new(conn);
            let Ok(mut cb) = cb.try_borrow_mut() else {
                report(
                    "client_connected_cb was called again from inside itself: connection dropped",
                );
                return;
            };
            // A callback that panics before returning its future must not
            // take the accept loop down with it.
            let fut = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (*cb)(r, w))) {
                Ok(fut) => fut,
                Err(panic) => {
                    let panic = asyncio_core::PanicError::new(panic);
                    report(&format!(
                        "client_connected_cb panicked: {}",
                        panic.message()
                    ));
                    return;
                }
            };
            // Detached, as asyncio's callback task; a panic reaches the
            // loop's exception handler. The future itself is the task (its
            // output is dropped when it ends): an `async move { fut.await }`
            // around it would hold it twice, as the captured value and as
            // the value being awaited, and an idle connection would pay for
            // the handler's state two times over.
            let _ = asyncio_core::try_create_task(fut);
        });
        Server::from_spawn(listeners, addrs, spawn, options, unix_path)
    }

    /// A server whose accepted connections go to `spawn`.
    pub(crate) fn from_spawn(
        listeners: Vec<Listener>,
        addrs: Vec<StreamAddr>,
        spawn: Spawn,
        options: &ServerOptions,
        unix_path: Option<(PathBuf, u64, u64)>,
    ) -> io::Result<Server> {
        #[cfg(feature = "tls")]
        options.check_tls()?;
        let lp = asyncio_core::get_running_loop().map_err(io::Error::other)?;
        let server = Server {
            inner: Rc::new(Inner {
                lp,
                listeners: RefCell::new(listeners),
                addrs,
                spawn,
                nodelay: options.nodelay,
                accept_tasks: RefCell::new(Vec::new()),
                closed: Cell::new(false),
                forever: Cell::new(false),
                clients: RefCell::new(slab::Slab::new()),
                waiters: RefCell::new(Vec::new()),
                unix_path,
                #[cfg(feature = "tls")]
                tls: options
                    .ssl
                    .clone()
                    .map(|t| (crate::tls::TlsContext::Server(t), options.tls.clone())),
            }),
        };
        if options.start_serving {
            server.start_serving()?;
        }
        Ok(server)
    }

    /// Starts accepting connections (asyncio's `start_serving`); does nothing
    /// if already serving.
    ///
    /// # Errors
    /// [`ServerStateError::Closed`] on a closed server; `Other` outside a loop.
    pub fn start_serving(&self) -> io::Result<()> {
        if self.inner.closed.get() {
            return Err(ServerStateError::Closed.into());
        }
        if !self.inner.accept_tasks.borrow().is_empty() {
            return Ok(());
        }
        let n = self.inner.listeners.borrow().len();
        for idx in 0..n {
            let task = asyncio_core::try_create_task(accept_loop(Rc::downgrade(&self.inner), idx))
                .map_err(io::Error::other)?;
            self.inner.accept_tasks.borrow_mut().push(task);
        }
        Ok(())
    }

    /// The event loop the server was made on, as asyncio's
    /// `Server.get_loop()`: it accepts and runs its connections there. Like
    /// every handle but the one `EventLoop::new` returned, it does not keep
    /// the loop open.
    ///
    /// ```
    /// asyncio::run(async {
    ///     let server = asyncio::start_server(
    ///         |_r: asyncio::StreamReader, _w: asyncio::StreamWriter| async {},
    ///         "127.0.0.1",
    ///         0,
    ///     )
    ///     .await?;
    ///     assert!(server.get_loop().is_running());
    ///     assert!(server.get_loop() == asyncio::get_running_loop().unwrap());
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub fn get_loop(&self) -> asyncio_core::EventLoop {
        self.inner.lp.clone()
    }

    /// Whether the server accepts connections (asyncio's `is_serving`).
    pub fn is_serving(&self) -> bool {
        !self.inner.closed.get() && !self.inner.accept_tasks.borrow().is_empty()
    }

    /// Serves until [`close`](Self::close) is called (asyncio's
    /// `serve_forever`), starting to accept if needed. If this future is
    /// dropped (its task cancelled) the server closes, as asyncio's does.
    /// asyncio's `serve_forever` raises `CancelledError` when another task
    /// closes the server; this one returns `Ok(())`.
    ///
    /// # Errors
    /// [`ServerStateError::Closed`] on a closed server,
    /// [`ServerStateError::AlreadyServing`] if another task is in
    /// `serve_forever`.
    pub async fn serve_forever(&self) -> io::Result<()> {
        if self.inner.forever.get() {
            return Err(ServerStateError::AlreadyServing.into());
        }
        self.start_serving()?;
        self.inner.forever.set(true);
        struct CloseOnDrop<'a>(&'a Server);
        impl Drop for CloseOnDrop<'_> {
            fn drop(&mut self) {
                self.0.inner.forever.set(false);
                self.0.close();
            }
        }
        let _guard = CloseOnDrop(self);
        std::future::poll_fn(|cx| {
            if self.inner.closed.get() {
                Poll::Ready(())
            } else {
                self.inner.add_waiter(cx);
                Poll::Pending
            }
        })
        .await;
        Ok(())
    }

    /// Stops serving (asyncio's `close`): the listening sockets close; the
    /// connections already accepted stay open (see
    /// [`close_clients`](Self::close_clients)). Idempotent.
    pub fn close(&self) {
        self.inner.close();
    }

    /// Closes every connection of this server (asyncio 3.13's
    /// `close_clients`), each flushing its buffer first.
    pub fn close_clients(&self) {
        for conn in self.inner.live_clients() {
            conn.close();
        }
    }

    /// Closes every connection of this server at once, dropping their
    /// buffers (asyncio 3.13's `abort_clients`).
    pub fn abort_clients(&self) {
        for conn in self.inner.live_clients() {
            conn.abort();
        }
    }

    /// Waits until the server is closed and every connection it accepted is
    /// closed (asyncio 3.12's `wait_closed`).
    pub async fn wait_closed(&self) {
        std::future::poll_fn(|cx| {
            if self.inner.closed.get() && self.inner.clients.borrow().is_empty() {
                Poll::Ready(())
            } else {
                self.inner.add_waiter(cx);
                Poll::Pending
            }
        })
        .await;
    }

    /// The address of each listening socket (asyncio's `sockets`, as
    /// `getsockname()` of each); kept after `close`.
    pub fn sockets(&self) -> &[StreamAddr] {
        &self.inner.addrs
    }

    /// The first listening IP address and port, e.g. to learn the port that
    /// port 0 picked; `None` for a Unix server.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.addrs.iter().find_map(StreamAddr::as_inet)
    }

    /// How many accepted connections are open.
    pub fn active_connections(&self) -> usize {
        self.inner.clients.borrow().len()
    }
}

impl Inner {
    fn add_waiter(&self, cx: &Context<'_>) {
        let mut w = self.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(cx.waker())) {
            w.push(cx.waker().clone());
        }
    }

    /// A counted connection released its socket (or was dropped): it leaves
    /// the server's count, and the last one out wakes whoever waits for a
    /// closed server to be done.
    pub(crate) fn client_closed(server: &Weak<Inner>, key: usize) {
        if let Some(server) = server.upgrade() {
            server.clients.borrow_mut().try_remove(key);
            if server.closed.get() && server.clients.borrow().is_empty() {
                server.wake_all();
            }
        }
    }

    fn wake_all(&self) {
        let w = std::mem::take(&mut *self.waiters.borrow_mut());
        w.into_iter().for_each(Waker::wake);
    }

    fn live_clients(&self) -> Vec<Rc<Conn>> {
        self.clients
            .borrow()
            .iter()
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }

    fn close(&self) {
        if self.closed.replace(true) {
            return;
        }
        let listeners = std::mem::take(&mut *self.listeners.borrow_mut());
        drop(listeners);
        let tasks = std::mem::take(&mut *self.accept_tasks.borrow_mut());
        for t in tasks {
            t.to_ref().cancel();
        }
        self.remove_socket_file();
        self.wake_all();
    }

    fn remove_socket_file(&self) {
        if let Some((path, dev, ino)) = &self.unix_path
            && let Ok(meta) = std::fs::metadata(path)
            && meta.dev() == *dev
            && meta.ino() == *ino
        {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Accepts up to a batch of connections: `Ok(true)` when the batch is
    /// used up (the caller yields and comes back), `Ok(false)` once closed.
    fn poll_accept(self: &Rc<Self>, idx: usize, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        for _ in 0..ACCEPT_BATCH {
            let accepted = {
                let listeners = self.listeners.borrow();
                let Some(l) = listeners.get(idx) else {
                    return Poll::Ready(Ok(false));
                };
                loop {
                    match l.accept() {
                        Ok(sock) => break sock,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            l.reg.clear_readable();
                            match l.reg.poll_readable(cx) {
                                Poll::Pending => return Poll::Pending,
                                Poll::Ready(Ok(())) => {}
                                // The loop closed.
                                Poll::Ready(Err(_)) => return Poll::Ready(Ok(false)),
                            }
                        }
                        // The peer gave up before we accepted: try the next.
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                            ) => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            };
            self.on_accept(accepted);
        }
        Poll::Ready(Ok(true))
    }

    fn on_accept(self: &Rc<Self>, sock: Sock) {
        if self.nodelay
            && let Sock::Tcp(s) = &sock
        {
            let _ = s.set_nodelay(true);
        }
        let reg = match IoRegistration::new(sock.fd()) {
            Ok(reg) => reg,
            Err(e) => {
                report(&format!("cannot register an accepted connection: {e}"));
                return;
            }
        };
        let conn = Conn::new(sock, reg);
        let key = self.clients.borrow_mut().insert(Rc::downgrade(&conn));
        conn.set_on_close(Rc::downgrade(self), key);
        #[cfg(feature = "tls")]
        if let Some((ctx, opts)) = &self.tls {
            self.tls_handshake_then_spawn(ctx, opts, conn);
            return;
        }
        (self.spawn)(conn);
    }

    /// A TLS server's connection: the handshake in a task of its own, then
    /// the callback; a failed handshake closes the connection (asyncio logs
    /// it at debug level only, as it is the client's fault).
    #[cfg(feature = "tls")]
    fn tls_handshake_then_spawn(
        &self,
        ctx: &crate::tls::TlsContext,
        opts: &crate::options::TlsOpts,
        conn: Rc<Conn>,
    ) {
        let session = crate::tls::TlsSession::new(
            ctx,
            None,
            opts.shutdown_timeout(),
            opts.suppress_ragged_eofs,
        );
        let installed = session.and_then(|s| conn.install_tls(s, &[], false));
        if installed.is_err() {
            conn.abort();
            return;
        }
        let spawn = Rc::clone(&self.spawn);
        let timeout = opts.handshake_timeout();
        let _ = asyncio_core::try_create_task(async move {
            if conn.handshake(timeout).await.is_ok() {
                spawn(conn);
            } else {
                // As the writer's drop did before: the failed handshake's
                // connection closes.
                conn.close();
            }
        });
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for t in self.accept_tasks.get_mut().drain(..) {
            t.to_ref().cancel();
        }
        self.remove_socket_file();
    }
}

fn report(message: &str) {
    if let Ok(lp) = asyncio_core::get_running_loop() {
        lp.call_exception_handler(&asyncio_core::ExceptionContext::new(message));
    }
}

async fn accept_loop(server: Weak<Inner>, idx: usize) {
    loop {
        let step = std::future::poll_fn(|cx| match server.upgrade() {
            Some(s) => s.poll_accept(idx, cx),
            None => Poll::Ready(Ok(false)),
        })
        .await;
        match step {
            Ok(false) => return,
            Ok(true) => asyncio_core::yield_now().await,
            Err(e) => {
                // Out of file descriptors and the like: asyncio logs and
                // stops accepting for a second.
                report(&format!(
                    "socket.accept() failed: {e}; pausing for 1 second"
                ));
                asyncio_core::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
