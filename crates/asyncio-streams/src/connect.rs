//! `open_connection` and `open_unix_connection`, and host name resolution.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;

use asyncio_core::IoRegistration;

use crate::conn::Conn;
use crate::options::ConnectOptions;
use crate::reader::StreamReader;
use crate::sock::Sock;
use crate::writer::StreamWriter;

/// Resolves `host` and `port` to addresses: an IP literal directly, a name
/// through `getaddrinfo` on the loop's default executor (as asyncio does).
///
/// ```
/// asyncio::EventLoop::new().run_until_complete(async {
///     let addrs = asyncio::getaddrinfo("localhost", 80).await.unwrap();
///     assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 80));
/// }).unwrap();
/// ```
///
/// # Errors
/// The resolver's error (unknown host); `NotFound` if it returns no address;
/// `Other` wrapping a `RuntimeError` outside a running loop.
pub async fn getaddrinfo(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let name = host.to_owned();
    // Outside a loop, or with its executor shut down, this is an error
    // rather than to_thread's panic.
    let lookup = asyncio_core::get_running_loop()
        .and_then(|lp| {
            lp.run_in_executor(move || {
                (name.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect::<Vec<_>>)
            })
        })
        .map_err(io::Error::other)?;
    let addrs = lookup
        .await
        .map_err(|panic| io::Error::other(panic.message().to_owned()))??;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("getaddrinfo returned no address for {host}"),
        ));
    }
    Ok(addrs)
}

/// Opens a TCP connection (asyncio's `open_connection`) and returns its
/// reader and writer. `host` is an IP address or a name (resolved on the
/// default executor); the addresses are tried in turn until one connects.
/// `TCP_NODELAY` is set, as asyncio does.
///
/// ```
/// use asyncio::open_connection;
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     // Port 1 on loopback: nothing listens there.
///     let err = open_connection("127.0.0.1", 1).await.unwrap_err();
///     assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
/// }).unwrap();
/// ```
///
/// # Errors
/// The resolver's error; the last address's connect error
/// (`ConnectionRefused`, ...) if none connects; `Other` outside a loop.
pub async fn open_connection(host: &str, port: u16) -> io::Result<(StreamReader, StreamWriter)> {
    open_connection_with(host, port, &ConnectOptions::default()).await
}

/// [`open_connection`] with options (limit, `TCP_NODELAY`).
///
/// # Errors
/// As [`open_connection`].
///
/// ```
/// asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
///     let port = server.local_addr().unwrap().port();
///     let opts = asyncio::ConnectOptions::new().nodelay(true).limit(1 << 20);
///     let (r, _w) = asyncio::open_connection_with("127.0.0.1", port, &opts).await?;
///     assert_eq!(r.limit(), 1 << 20);
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
pub async fn open_connection_with(
    host: &str,
    port: u16,
    options: &ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let conn = connect_tcp(host, port, options).await?;
    Ok(wrap(conn, options.limit))
}

/// The connection under `open_connection` and `create_connection`: resolve,
/// connect, `TCP_NODELAY`, the TLS handshake.
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    options: &ConnectOptions,
) -> io::Result<Rc<Conn>> {
    #[cfg(feature = "tls")]
    options.check_tls()?;
    let mut addrs = getaddrinfo(host, port).await?;
    addrs.retain(|a| options.family.matches(a));
    if let Some(local) = options.local_addr {
        addrs.retain(|a| a.is_ipv4() == local.is_ipv4());
    }
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address of the family asked for"),
        ));
    }
    let interleave = options
        .interleave
        .or(options.happy_eyeballs_delay.map(|_| 1));
    if let Some(n) = interleave.filter(|&n| n > 0) {
        addrs = interleave_addrs(&addrs, n);
    }
    let local = options.local_addr;
    let (winner, errors) = crate::staggered::staggered_race(
        addrs.iter().map(|&addr| move || connect_from(addr, local)),
        options.happy_eyeballs_delay,
    )
    .await;
    let Some((_, (stream, reg))) = winner else {
        let errors = addrs
            .iter()
            .zip(errors)
            .filter_map(|(a, e)| e.map(|e| (*a, e)))
            .collect();
        return Err(connect_error(errors, options.all_errors));
    };
    if options.nodelay {
        stream.set_nodelay(true)?;
    }
    let conn = Conn::new(Sock::Tcp(stream), reg);
    #[cfg(feature = "tls")]
    client_handshake(&conn, options, Some(host)).await?;
    Ok(conn)
}

/// asyncio's `_interleave_addrinfos`: `first_family_count - 1` addresses of
/// the first family, then one of each family in turn.
pub(crate) fn interleave_addrs(addrs: &[SocketAddr], first_family_count: usize) -> Vec<SocketAddr> {
    let mut families: Vec<Vec<SocketAddr>> = Vec::new();
    for a in addrs {
        match families.iter_mut().find(|f| f[0].is_ipv4() == a.is_ipv4()) {
            Some(f) => f.push(*a),
            None => families.push(vec![*a]),
        }
    }
    let mut out = Vec::with_capacity(addrs.len());
    let head = (first_family_count - 1).min(families[0].len());
    out.extend(families[0].drain(..head));
    let longest = families.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for f in &families {
            if let Some(a) = f.get(i) {
                out.push(*a);
            }
        }
    }
    out
}

/// The error of a connection that failed on every address (asyncio's
/// rules in `create_connection`).
fn connect_error(errors: Vec<(SocketAddr, io::Error)>, all_errors: bool) -> io::Error {
    let kind = errors
        .first()
        .map_or(io::ErrorKind::NotFound, |(_, e)| e.kind());
    if !all_errors {
        let same = errors
            .windows(2)
            .all(|w| w[0].1.kind() == w[1].1.kind() && w[0].1.to_string() == w[1].1.to_string());
        if same && !errors.is_empty() {
            let (_, first) = errors.into_iter().next().expect("not empty");
            return first;
        }
    }
    io::Error::new(kind, crate::error::ConnectErrors { errors })
}

/// Wraps a TCP connection made elsewhere (asyncio's `open_connection(sock=...)`)
/// in a reader and writer on the running loop: a socket accepted on another
/// thread and handed to this loop, for instance. The socket is switched to
/// non-blocking mode, and `TCP_NODELAY` set if `options` say so.
///
/// ```
/// use asyncio_streams::{ConnectOptions, open_connection_from_stream};
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let (mut accepted, _) = listener.accept().unwrap();
/// std::io::Write::write_all(&mut accepted, b"ping").unwrap();
/// asyncio_core::EventLoop::new().run_until_complete(async move {
///     let (mut r, _w) = open_connection_from_stream(client, &ConnectOptions::new())?;
///     assert_eq!(r.readexactly(4).await.unwrap(), b"ping");
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn open_connection_from_stream(
    stream: std::net::TcpStream,
    options: &ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let conn = conn_from_stream(stream, options)?;
    Ok(wrap(conn, options.limit))
}

/// Wraps a Unix stream connection made elsewhere (asyncio's
/// `open_unix_connection(sock=...)`) in a reader and writer on the running
/// loop. The socket is switched to non-blocking mode.
///
/// ```
/// use std::io::Write;
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// b.write_all(b"ping").unwrap();
/// asyncio::run(async move {
///     let (mut r, _w) =
///         asyncio::open_unix_connection_from_stream(a, &asyncio::ConnectOptions::new())?;
///     assert_eq!(r.readexactly(4).await.unwrap(), b"ping");
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn open_unix_connection_from_stream(
    stream: std::os::unix::net::UnixStream,
    options: &ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    stream.set_nonblocking(true)?;
    let stream = mio::net::UnixStream::from_std(stream);
    let reg = IoRegistration::new(stream.as_raw_fd())?;
    Ok(wrap(Conn::new(Sock::Unix(stream), reg), options.limit))
}

/// A connected TCP stream made elsewhere, on the running loop.
pub(crate) fn conn_from_stream(
    stream: std::net::TcpStream,
    options: &ConnectOptions,
) -> io::Result<Rc<Conn>> {
    stream.set_nonblocking(true)?;
    if options.nodelay {
        stream.set_nodelay(true)?;
    }
    let stream = mio::net::TcpStream::from_std(stream);
    let reg = IoRegistration::new(stream.as_raw_fd())?;
    Ok(Conn::new(Sock::Tcp(stream), reg))
}

/// Connects one address, from `local` if given (bound first).
async fn connect_from(
    addr: SocketAddr,
    local: Option<SocketAddr>,
) -> io::Result<(mio::net::TcpStream, IoRegistration)> {
    let Some(local) = local else {
        return connect_one(addr).await;
    };
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    sock.set_nonblocking(true)?;
    sock.bind(&local.into())?;
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = mio::net::TcpStream::from_std(std::net::TcpStream::from(sock));
    let reg = IoRegistration::new(stream.as_raw_fd())?;
    wait_connected(&stream, &reg).await?;
    Ok((stream, reg))
}

/// Connects one address without blocking: waits until the socket is
/// writable, then asks it how the connect went.
pub(crate) async fn connect_one(
    addr: SocketAddr,
) -> io::Result<(mio::net::TcpStream, IoRegistration)> {
    let stream = mio::net::TcpStream::connect(addr)?;
    let reg = IoRegistration::new(stream.as_raw_fd())?;
    wait_connected(&stream, &reg).await?;
    Ok((stream, reg))
}

/// Waits until a non-blocking connect is done: the socket turns writable,
/// then its error (or a peer address) tells how it went.
async fn wait_connected(stream: &mio::net::TcpStream, reg: &IoRegistration) -> io::Result<()> {
    loop {
        reg.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => reg.clear_writable(),
            Err(e) => return Err(e),
        }
    }
}

/// Connects to the Unix socket at `path` (asyncio's `open_unix_connection`).
///
/// # Errors
/// The connect error (`NotFound`, `ConnectionRefused`...); `Other` outside a loop.
///
/// ```
/// // Nobody listens at this path: connecting fails with the OS error.
/// let err = asyncio::run(asyncio::open_unix_connection("/nonexistent/asyncio.sock"))
///     .unwrap()
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// ```
pub async fn open_unix_connection(
    path: impl AsRef<Path>,
) -> io::Result<(StreamReader, StreamWriter)> {
    open_unix_connection_with(path, &ConnectOptions::default()).await
}

/// [`open_unix_connection`] with options (the limit; `nodelay` is ignored).
///
/// # Errors
/// As [`open_unix_connection`].
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-conn-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// asyncio::run(async {
///     let server = asyncio::start_unix_server(|_r, _w| async {}, &path).await?;
///     let opts = asyncio::ConnectOptions::new().limit(128);
///     let (r, _w) = asyncio::open_unix_connection_with(&path, &opts).await?;
///     assert_eq!(r.limit(), 128);
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// let _ = std::fs::remove_file(&path);
/// ```
pub async fn open_unix_connection_with(
    path: impl AsRef<Path>,
    options: &ConnectOptions,
) -> io::Result<(StreamReader, StreamWriter)> {
    let conn = connect_unix(path.as_ref(), options).await?;
    Ok(wrap(conn, options.limit))
}

/// The connection under `open_unix_connection` and `create_unix_connection`.
pub(crate) async fn connect_unix(path: &Path, options: &ConnectOptions) -> io::Result<Rc<Conn>> {
    // Without TLS the options hold nothing a Unix connection uses.
    #[cfg(not(feature = "tls"))]
    let _ = options;
    #[cfg(feature = "tls")]
    options.check_tls()?;
    let stream = mio::net::UnixStream::connect(path)?;
    let reg = IoRegistration::new(stream.as_raw_fd())?;
    loop {
        reg.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotConnected => reg.clear_writable(),
            Err(e) => return Err(e),
        }
    }
    let conn = Conn::new(Sock::Unix(stream), reg);
    #[cfg(feature = "tls")]
    client_handshake(&conn, options, None).await?;
    Ok(conn)
}

/// With `options.ssl`: the TLS handshake of a new connection, as the client.
#[cfg(feature = "tls")]
async fn client_handshake(
    conn: &Rc<Conn>,
    options: &ConnectOptions,
    host: Option<&str>,
) -> io::Result<()> {
    let Some(tls) = &options.ssl else {
        return Ok(());
    };
    let name = options.tls.server_hostname.as_deref().or(host);
    let session = crate::tls::TlsSession::new(
        &crate::tls::TlsContext::Client(tls.clone()),
        name,
        options.tls.shutdown_timeout(),
        options.tls.suppress_ragged_eofs,
    )?;
    let done = async {
        conn.install_tls(session, &[], false)?;
        conn.handshake(options.tls.handshake_timeout()).await
    }
    .await;
    if done.is_err() {
        // As the streams' writer did when dropped: the connection closes.
        conn.close();
    }
    done
}

/// The streams over a connection.
pub(crate) fn wrap(conn: Rc<Conn>, limit: usize) -> (StreamReader, StreamWriter) {
    (
        StreamReader::new(conn.clone(), limit),
        StreamWriter::new(conn),
    )
}

#[cfg(test)]
mod tests {
    use super::interleave_addrs;
    use std::net::SocketAddr;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// CPython's `test_base_events` `_interleave_addrinfos` cases.
    #[test]
    fn interleave_puts_one_of_each_family_in_turn_after_count_minus_one_of_the_first() {
        let v6a = a("[::1]:1");
        let v6b = a("[::2]:1");
        let v4a = a("127.0.0.1:1");
        let v4b = a("127.0.0.2:1");
        let v4c = a("127.0.0.3:1");
        let addrs = [v6a, v6b, v4a, v4b, v4c];
        assert_eq!(interleave_addrs(&addrs, 1), [v6a, v4a, v6b, v4b, v4c]);
        assert_eq!(interleave_addrs(&addrs, 2), [v6a, v6b, v4a, v4b, v4c]);
        assert_eq!(interleave_addrs(&[v4a, v4b], 1), [v4a, v4b]);
        assert_eq!(interleave_addrs(&[v4a, v6a, v4b], 1), [v4a, v6a, v4b]);
    }
}

/// The hints of [`getaddrinfo_with`] (asyncio's `family=`, `type=`,
/// `proto=` and `flags=`). Each is 0 (any) by default.
///
/// ```
/// let hints = asyncio::AddrInfoHints::new()
///     .family(asyncio::AddressFamily::Inet)
///     .socktype(socket2::Type::STREAM)
///     .flags(libc::AI_CANONNAME);
/// # let _ = hints;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AddrInfoHints {
    family: crate::options::AddressFamily,
    socktype: i32,
    protocol: i32,
    flags: i32,
}

impl AddrInfoHints {
    /// Any family, type and protocol; no flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only addresses of this family (`family=`).
    pub fn family(mut self, family: crate::options::AddressFamily) -> Self {
        self.family = family;
        self
    }

    /// Only this socket type (`type=`), e.g. `socket2::Type::STREAM`.
    pub fn socktype(mut self, socktype: socket2::Type) -> Self {
        self.socktype = socktype.into();
        self
    }

    /// Only this protocol (`proto=`), e.g. `socket2::Protocol::TCP`.
    pub fn protocol(mut self, protocol: socket2::Protocol) -> Self {
        self.protocol = protocol.into();
        self
    }

    /// getaddrinfo(3)'s flags (`flags=`): libc's `AI_*` values or-ed, e.g.
    /// `libc::AI_NUMERICHOST | libc::AI_CANONNAME`.
    pub fn flags(mut self, flags: i32) -> Self {
        self.flags = flags;
        self
    }
}

/// One result of [`getaddrinfo_with`] (asyncio's 5-tuple `(family, type,
/// proto, canonname, sockaddr)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrInfo {
    /// The socket type (`type`).
    pub socktype: socket2::Type,
    /// The protocol (`proto`).
    pub protocol: socket2::Protocol,
    /// The canonical name, with `AI_CANONNAME`, on the first result.
    pub canonname: Option<String>,
    /// The address (its family is the address's).
    pub addr: SocketAddr,
}

/// getaddrinfo(3) with hints, on the default executor (asyncio's
/// `loop.getaddrinfo(host, port, family=, type=, proto=, flags=)`). `host`
/// or `port` may be `None` (not both): with `None` for the host and
/// `AI_PASSIVE`, the addresses to bind on. `port` is a number or a service
/// name (`"http"`).
///
/// ```
/// let found = asyncio::run(async {
///     let hints = asyncio::AddrInfoHints::new()
///         .socktype(socket2::Type::STREAM)
///         .flags(libc::AI_NUMERICHOST);
///     asyncio::getaddrinfo_with(Some("127.0.0.1"), Some("80"), hints).await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(found.len(), 1);
/// assert_eq!(found[0].addr, "127.0.0.1:80".parse().unwrap());
/// assert_eq!(found[0].socktype, socket2::Type::STREAM);
/// ```
///
/// # Errors
/// The resolver's error (its message is `gai_strerror`'s; an unknown name
/// is `NotFound` or `Other` depending on the C library); `InvalidInput`
/// with neither host nor port; `Other` outside a running loop.
pub async fn getaddrinfo_with(
    host: Option<&str>,
    port: Option<&str>,
    hints: AddrInfoHints,
) -> io::Result<Vec<AddrInfo>> {
    if host.is_none() && port.is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "getaddrinfo needs a host or a port",
        ));
    }
    let (host, port) = (host.map(str::to_owned), port.map(str::to_owned));
    let family = match hints.family {
        crate::options::AddressFamily::Unspecified => libc::AF_UNSPEC,
        crate::options::AddressFamily::Inet => libc::AF_INET,
        crate::options::AddressFamily::Inet6 => libc::AF_INET6,
    };
    let c_hints = dns_lookup::AddrInfoHints {
        flags: hints.flags,
        address: family,
        socktype: hints.socktype,
        protocol: hints.protocol,
    };
    let lookup = asyncio_core::get_running_loop()
        .and_then(|lp| {
            lp.run_in_executor(move || -> io::Result<Vec<AddrInfo>> {
                let iter = dns_lookup::getaddrinfo(host.as_deref(), port.as_deref(), Some(c_hints))
                    .map_err(io::Error::from)?;
                iter.map(|r| {
                    r.map(|ai| AddrInfo {
                        socktype: socket2::Type::from(ai.socktype),
                        protocol: socket2::Protocol::from(ai.protocol),
                        canonname: ai.canonname,
                        addr: ai.sockaddr,
                    })
                })
                .collect()
            })
        })
        .map_err(io::Error::other)?;
    lookup
        .await
        .map_err(|panic| io::Error::other(panic.message().to_owned()))?
}

/// getnameinfo(3) on the default executor (asyncio's
/// `loop.getnameinfo(sockaddr, flags)`): the host and the service of
/// `addr`. `flags` are libc's `NI_*` values or-ed (`NI_NUMERICHOST`,
/// `NI_NUMERICSERV`...).
///
/// ```
/// let (host, port) = asyncio::run(asyncio::getnameinfo(
///     "127.0.0.1:80".parse().unwrap(),
///     libc::NI_NUMERICHOST | libc::NI_NUMERICSERV,
/// ))
/// .unwrap()
/// .unwrap();
/// assert_eq!((host.as_str(), port.as_str()), ("127.0.0.1", "80"));
/// ```
///
/// # Errors
/// The resolver's error; `Other` outside a running loop.
pub async fn getnameinfo(addr: SocketAddr, flags: i32) -> io::Result<(String, String)> {
    let lookup = asyncio_core::get_running_loop()
        .and_then(|lp| {
            lp.run_in_executor(move || {
                dns_lookup::getnameinfo(&addr, flags).map_err(io::Error::from)
            })
        })
        .map_err(io::Error::other)?;
    lookup
        .await
        .map_err(|panic| io::Error::other(panic.message().to_owned()))?
}
