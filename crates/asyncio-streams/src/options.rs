//! Options of the connecting and serving functions, as builders with
//! asyncio's defaults.

use crate::reader::DEFAULT_LIMIT;

/// Options of [`open_connection_with`](crate::open_connection_with) and
/// [`open_unix_connection_with`](crate::open_unix_connection_with).
///
/// ```
/// let opts = asyncio::ConnectOptions::new().limit(1024).nodelay(false);
/// assert_eq!(opts.get_limit(), 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) limit: usize,
    pub(crate) nodelay: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            limit: DEFAULT_LIMIT,
            nodelay: true,
        }
    }
}

impl ConnectOptions {
    /// asyncio's defaults: a 64 KiB limit, `TCP_NODELAY` on.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reader's buffer limit for `readline`/`readuntil` (asyncio's `limit=`).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Whether to set `TCP_NODELAY` (asyncio always does).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// The limit set.
    pub fn get_limit(&self) -> usize {
        self.limit
    }
}

/// Options of [`start_server_with`](crate::start_server_with) and
/// [`start_unix_server_with`](crate::start_unix_server_with), with asyncio's
/// defaults.
///
/// ```
/// use asyncio::{ServerOptions, StreamReader, StreamWriter, start_server_with};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let opts = ServerOptions::new().backlog(1024).reuse_port(true).limit(1024);
///     let cb = |r: StreamReader, _w: StreamWriter| async move { assert_eq!(r.limit(), 1024) };
///     let a = start_server_with(cb, "127.0.0.1", 0, &opts).await?;
///     let port = a.local_addr().expect("an IP address").port();
///     // With SO_REUSEPORT a second server may listen on the same port.
///     let b = start_server_with(cb, "127.0.0.1", port, &opts).await?;
///     assert_eq!(b.local_addr().map(|a| a.port()), Some(port));
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub(crate) limit: usize,
    pub(crate) backlog: i32,
    pub(crate) reuse_address: bool,
    pub(crate) reuse_port: bool,
    pub(crate) nodelay: bool,
    pub(crate) start_serving: bool,
    pub(crate) cleanup_socket: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            limit: DEFAULT_LIMIT,
            backlog: DEFAULT_BACKLOG,
            reuse_address: true,
            reuse_port: false,
            nodelay: true,
            start_serving: true,
            cleanup_socket: true,
        }
    }
}

impl ServerOptions {
    /// asyncio's defaults but one: limit 64 KiB, backlog 1024 (asyncio's is
    /// 100; see [`DEFAULT_BACKLOG`]), `SO_REUSEADDR` on,
    /// `SO_REUSEPORT` off, `TCP_NODELAY` on, serving at once, the Unix socket
    /// file removed on close.
    pub fn new() -> Self {
        Self::default()
    }

    /// The readers' buffer limit for `readline`/`readuntil` (asyncio's `limit=`).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The listen backlog (asyncio's `backlog=`): how many connections the
    /// kernel completes and queues before the server accepts them. Default
    /// [`DEFAULT_BACKLOG`] (1024; asyncio's is 100); the kernel caps it
    /// (`net.core.somaxconn` on Linux, `kern.ipc.somaxconn` on macOS and
    /// FreeBSD).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// `SO_REUSEADDR` (asyncio's `reuse_address=`, on by default on Unix).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// `SO_REUSEPORT` (asyncio's `reuse_port=`): several sockets, in this
    /// process or others, may listen on one port and share its connections.
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `TCP_NODELAY` on accepted connections (asyncio always sets it).
    pub fn nodelay(mut self, on: bool) -> Self {
        self.nodelay = on;
        self
    }

    /// Whether to accept at once (asyncio's `start_serving=`, default true);
    /// otherwise call [`Server::start_serving`](crate::Server::start_serving) or [`Server::serve_forever`](crate::Server::serve_forever).
    pub fn start_serving(mut self, on: bool) -> Self {
        self.start_serving = on;
        self
    }

    /// The readers' buffer limit set.
    pub fn get_limit(&self) -> usize {
        self.limit
    }

    /// Whether accepted connections get `TCP_NODELAY`.
    pub fn get_nodelay(&self) -> bool {
        self.nodelay
    }

    /// Whether closing a Unix server removes its socket file (asyncio 3.13's
    /// `cleanup_socket=`, default true).
    pub fn cleanup_socket(mut self, on: bool) -> Self {
        self.cleanup_socket = on;
        self
    }
}

/// The listen backlog a server gets unless [`ServerOptions::backlog`] says
/// otherwise: 1024, as tokio's, where asyncio's is 100. A burst of
/// connections larger than the backlog overflows the kernel's accept queue,
/// and the connections whose SYN is dropped retry only after a second (then
/// three, then seven): measured on loopback, a burst of 1,000 simultaneous
/// connects took 1.05 to 1.5 s at backlog 100, 48 to 416 of them waiting
/// for a retransmit, and 0.06 to 0.11 s at 1024, none waiting.
///
/// ```
/// assert_eq!(asyncio_streams::DEFAULT_BACKLOG, 1024);
/// ```
pub const DEFAULT_BACKLOG: i32 = 1024;
