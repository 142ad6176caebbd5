//! Options of the connecting and serving functions, as builders with
//! asyncio's defaults.

use crate::reader::DEFAULT_LIMIT;

#[cfg(feature = "tls")]
pub use tls_opts::StartTlsOptions;
#[cfg(feature = "tls")]
pub(crate) use tls_opts::TlsOpts;

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
    pub(crate) family: AddressFamily,
    pub(crate) local_addr: Option<std::net::SocketAddr>,
    pub(crate) happy_eyeballs_delay: Option<std::time::Duration>,
    pub(crate) interleave: Option<usize>,
    pub(crate) all_errors: bool,
    #[cfg(feature = "tls")]
    pub(crate) ssl: Option<crate::tls::ClientTls>,
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsOpts,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            limit: DEFAULT_LIMIT,
            nodelay: true,
            family: AddressFamily::Unspecified,
            local_addr: None,
            happy_eyeballs_delay: None,
            interleave: None,
            all_errors: false,
            #[cfg(feature = "tls")]
            ssl: None,
            #[cfg(feature = "tls")]
            tls: TlsOpts::default(),
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

    /// Only addresses of this family are tried (asyncio's `family=`).
    pub fn family(mut self, family: AddressFamily) -> Self {
        self.family = family;
        self
    }

    /// Binds the socket to `addr` before connecting (asyncio's
    /// `local_addr=`; port 0 lets the OS pick). Only addresses of its
    /// family are tried.
    pub fn local_addr(mut self, addr: std::net::SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Happy Eyeballs (RFC 8305, asyncio's `happy_eyeballs_delay=`): the
    /// next address is tried when the one before fails or after `delay`,
    /// whichever comes first, the attempts racing; RFC 8305 recommends
    /// 250 ms. Without it the addresses are tried one after the other. It
    /// also makes [`interleave`](Self::interleave) default to 1.
    pub fn happy_eyeballs_delay(mut self, delay: std::time::Duration) -> Self {
        self.happy_eyeballs_delay = Some(delay);
        self
    }

    /// Reorders the resolved addresses by family (asyncio's `interleave=`):
    /// `count - 1` addresses of the first family come first, then one of
    /// each family in turn. 0 leaves the resolver's order.
    pub fn interleave(mut self, count: usize) -> Self {
        self.interleave = Some(count);
        self
    }

    /// When every address fails, return all their errors in one
    /// [`ConnectErrors`](crate::ConnectErrors) (asyncio's `all_errors=True`,
    /// which raises an `ExceptionGroup`). Without it: the one error if
    /// there was one, the first if all say the same, else a
    /// `ConnectErrors` ("Multiple exceptions"), as asyncio.
    pub fn all_errors(mut self, on: bool) -> Self {
        self.all_errors = on;
        self
    }
}

/// Which addresses to use (asyncio's `family=`: `AF_UNSPEC`, `AF_INET`,
/// `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressFamily {
    /// Any (`AF_UNSPEC`, the default).
    #[default]
    Unspecified,
    /// IPv4 only (`AF_INET`).
    Inet,
    /// IPv6 only (`AF_INET6`).
    Inet6,
}

impl AddressFamily {
    /// Whether `addr` is of this family.
    pub fn matches(self, addr: &std::net::SocketAddr) -> bool {
        match self {
            AddressFamily::Unspecified => true,
            AddressFamily::Inet => addr.is_ipv4(),
            AddressFamily::Inet6 => addr.is_ipv6(),
        }
    }
}

#[cfg(feature = "tls")]
impl ConnectOptions {
    /// Speaks TLS with this configuration (asyncio's `ssl=ctx`): the
    /// connection is returned once the handshake is done.
    pub fn ssl(mut self, tls: crate::tls::ClientTls) -> Self {
        self.ssl = Some(tls);
        self
    }

    /// The name the server's certificate must match, sent by SNI
    /// (asyncio's `server_hostname=`); by default the `host` connected to.
    /// Set it to connect to an IP address and check the certificate against
    /// a name. Only with [`ssl`](Self::ssl).
    pub fn server_hostname(mut self, name: impl Into<String>) -> Self {
        self.tls.server_hostname = Some(name.into());
        self
    }

    /// How long the handshake may take before the connection is aborted
    /// (asyncio's `ssl_handshake_timeout=`, 60 s by default). Only with
    /// [`ssl`](Self::ssl).
    pub fn ssl_handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tls.handshake_timeout = Some(timeout);
        self
    }

    /// How long closing waits for the peer's close_notify before it drops
    /// the connection (asyncio's `ssl_shutdown_timeout=`, 30 s by default).
    /// Only with [`ssl`](Self::ssl).
    pub fn ssl_shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tls.shutdown_timeout = Some(timeout);
        self
    }

    /// Whether an end of stream without the peer's close_notify reads as a
    /// plain end of stream (true, the default, as asyncio and Python's
    /// `suppress_ragged_eofs=True`) or fails with
    /// [`TlsError::MissingCloseNotify`](crate::TlsError::MissingCloseNotify).
    pub fn suppress_ragged_eofs(mut self, on: bool) -> Self {
        self.tls.suppress_ragged_eofs = on;
        self
    }

    pub(crate) fn check_tls(&self) -> Result<(), crate::tls::TlsError> {
        if self.ssl.is_none() {
            self.tls.check_without_tls()?;
        }
        Ok(())
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
    #[cfg(feature = "tls")]
    pub(crate) ssl: Option<crate::tls::ServerTls>,
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsOpts,
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
            #[cfg(feature = "tls")]
            ssl: None,
            #[cfg(feature = "tls")]
            tls: TlsOpts::default(),
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

#[cfg(feature = "tls")]
impl ServerOptions {
    /// Serves TLS with this configuration (asyncio's `ssl=ctx`): each
    /// connection's callback runs once its handshake is done; a connection
    /// whose handshake fails is closed without reaching the callback.
    pub fn ssl(mut self, tls: crate::tls::ServerTls) -> Self {
        self.ssl = Some(tls);
        self
    }

    /// How long a client's handshake may take (asyncio's
    /// `ssl_handshake_timeout=`, 60 s by default). Only with [`ssl`](Self::ssl).
    pub fn ssl_handshake_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tls.handshake_timeout = Some(timeout);
        self
    }

    /// How long closing a connection waits for the client's close_notify
    /// (asyncio's `ssl_shutdown_timeout=`, 30 s by default). Only with
    /// [`ssl`](Self::ssl).
    pub fn ssl_shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.tls.shutdown_timeout = Some(timeout);
        self
    }

    pub(crate) fn check_tls(&self) -> Result<(), crate::tls::TlsError> {
        if self.ssl.is_none() {
            self.tls.check_without_tls()?;
        }
        Ok(())
    }
}

#[cfg(feature = "tls")]
mod tls_opts {
    use std::time::Duration;

    use crate::tls::{DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, TlsError};

    /// The per-connection TLS settings shared by the option builders.
    #[derive(Debug, Clone)]
    pub(crate) struct TlsOpts {
        pub(crate) server_hostname: Option<String>,
        pub(crate) handshake_timeout: Option<Duration>,
        pub(crate) shutdown_timeout: Option<Duration>,
        pub(crate) suppress_ragged_eofs: bool,
    }

    impl Default for TlsOpts {
        fn default() -> Self {
            TlsOpts {
                server_hostname: None,
                handshake_timeout: None,
                shutdown_timeout: None,
                suppress_ragged_eofs: true,
            }
        }
    }

    impl TlsOpts {
        pub(crate) fn handshake_timeout(&self) -> Duration {
            self.handshake_timeout.unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT)
        }

        pub(crate) fn shutdown_timeout(&self) -> Duration {
            self.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)
        }

        /// asyncio's `ValueError`s for TLS options given without `ssl`.
        pub(crate) fn check_without_tls(&self) -> Result<(), TlsError> {
            if self.server_hostname.is_some() {
                return Err(TlsError::OptionWithoutTls("server_hostname"));
            }
            if self.handshake_timeout.is_some() {
                return Err(TlsError::OptionWithoutTls("ssl_handshake_timeout"));
            }
            if self.shutdown_timeout.is_some() {
                return Err(TlsError::OptionWithoutTls("ssl_shutdown_timeout"));
            }
            Ok(())
        }
    }

    /// Options of [`StreamWriter::start_tls`](crate::StreamWriter::start_tls)
    /// (asyncio's keyword arguments of `start_tls`).
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = asyncio::StartTlsOptions::new()
    ///     .server_hostname("mail.example.com")
    ///     .ssl_handshake_timeout(Duration::from_secs(10));
    /// # let _ = opts;
    /// ```
    #[derive(Debug, Clone, Default)]
    pub struct StartTlsOptions {
        pub(crate) tls: TlsOpts,
    }

    impl StartTlsOptions {
        /// asyncio's defaults: handshake timeout 60 s, shutdown timeout 30 s.
        pub fn new() -> Self {
            Self::default()
        }

        /// The name the server's certificate must match, sent by SNI
        /// (asyncio's `server_hostname=`); required when this end is the
        /// client.
        pub fn server_hostname(mut self, name: impl Into<String>) -> Self {
            self.tls.server_hostname = Some(name.into());
            self
        }

        /// How long the handshake may take (asyncio's `ssl_handshake_timeout=`).
        pub fn ssl_handshake_timeout(mut self, timeout: Duration) -> Self {
            self.tls.handshake_timeout = Some(timeout);
            self
        }

        /// How long closing waits for the peer's close_notify (asyncio's
        /// `ssl_shutdown_timeout=`).
        pub fn ssl_shutdown_timeout(mut self, timeout: Duration) -> Self {
            self.tls.shutdown_timeout = Some(timeout);
            self
        }

        /// Whether an end of stream without close_notify is a plain end of
        /// stream (the default, as asyncio) or an error.
        pub fn suppress_ragged_eofs(mut self, on: bool) -> Self {
            self.tls.suppress_ragged_eofs = on;
            self
        }
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
