//! asyncio's low-level `loop.sock_*` calls on the caller's own non-blocking
//! sockets.
//!
//! Each call tries the operation at once and registers the socket with the
//! loop only if it would block, for as long as the call waits. A socket is
//! registered once at a time: two calls waiting on the same socket at the same
//! time (a `sock_recv` in one task and a `sock_sendall` in another) make the
//! second fail with `AlreadyExists`; use streams or
//! [`DatagramSocket`](crate::DatagramSocket) for that.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};

use asyncio_core::IoRegistration;
use socket2::{SockAddr, SockRef, Socket};

use crate::error::BlockingSocketError;

fn check_nonblocking(sock: &SockRef<'_>) -> io::Result<()> {
    if sock.nonblocking()? {
        Ok(())
    } else {
        Err(BlockingSocketError.into())
    }
}

/// Runs `op` until it does not return `WouldBlock`, waiting for readiness in
/// between; the socket is registered only if the first try would block.
async fn retry<T>(
    sock: &SockRef<'_>,
    read: bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut reg: Option<IoRegistration> = None;
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
        let r = match &reg {
            Some(r) => {
                if read {
                    r.clear_readable();
                } else {
                    r.clear_writable();
                }
                r
            }
            None => reg.insert(IoRegistration::new(sock.as_raw_fd())?),
        };
        if read {
            r.readable().await?;
        } else {
            r.writable().await?;
        }
    }
}

/// Receives up to `n` bytes (asyncio's `loop.sock_recv`); empty at end of
/// stream.
///
/// ```
/// use std::io::Write;
/// asyncio::EventLoop::new().run_until_complete(async {
///     let (a, mut b) = std::os::unix::net::UnixStream::pair()?;
///     a.set_nonblocking(true)?;
///     b.write_all(b"ping")?;
///     assert_eq!(asyncio::sock_recv(&a, 100).await?, b"ping");
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
///
/// # Errors
/// [`BlockingSocketError`] (as `InvalidInput`) for a blocking socket; the
/// OS's error; `Other` outside a loop.
pub async fn sock_recv<S: AsFd>(sock: &S, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; n];
    let got = sock_recv_into(sock, &mut buf).await?;
    buf.truncate(got);
    Ok(buf)
}

/// Receives into `buf` (asyncio's `loop.sock_recv_into`); returns how many
/// bytes came, 0 at end of stream.
///
/// # Errors
/// As [`sock_recv`].
///
/// ```
/// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// b.set_nonblocking(true).unwrap();
/// let got = asyncio::run(async move {
///     asyncio::sock_sendall(&a, b"ping").await?;
///     let mut buf = [0u8; 16];
///     let n = asyncio::sock_recv_into(&b, &mut buf).await?;
///     std::io::Result::Ok(buf[..n].to_vec())
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"ping");
/// ```
pub async fn sock_recv_into<S: AsFd>(sock: &S, buf: &mut [u8]) -> io::Result<usize> {
    let s = SockRef::from(sock);
    check_nonblocking(&s)?;
    let socket: &Socket = &s;
    retry(&s, true, || (&*socket).read(buf)).await
}

/// Sends all of `data` (asyncio's `loop.sock_sendall`), waiting while the
/// socket's buffer is full. If cancelled, an unknown prefix has been sent.
///
/// # Errors
/// As [`sock_recv`]; `BrokenPipe`/`ConnectionReset` if the peer went away.
///
/// ```
/// let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// b.set_nonblocking(true).unwrap();
/// let got = asyncio::run(async move {
///     // All of it is sent, however many writes that takes.
///     let data = vec![7u8; 200_000];
///     let reader = asyncio::create_task(async move {
///         let mut total = 0;
///         while total < 200_000 {
///             total += asyncio::sock_recv(&b, 65_536).await.unwrap().len();
///         }
///         total
///     });
///     asyncio::sock_sendall(&a, &data).await.unwrap();
///     reader.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(got, 200_000);
/// ```
pub async fn sock_sendall<S: AsFd>(sock: &S, mut data: &[u8]) -> io::Result<()> {
    let s = SockRef::from(sock);
    check_nonblocking(&s)?;
    let socket: &Socket = &s;
    while !data.is_empty() {
        let n = retry(&s, false, || (&*socket).write(data)).await?;
        data = &data[n..];
    }
    Ok(())
}

/// Accepts a connection (asyncio's `loop.sock_accept`); the new socket is
/// non-blocking, as asyncio's.
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// asyncio::EventLoop::new().run_until_complete(async {
///     let listener = TcpListener::bind("127.0.0.1:0")?;
///     listener.set_nonblocking(true)?;
///     let _client = TcpStream::connect(listener.local_addr()?)?;
///     let (conn, peer) = asyncio::sock_accept(&listener).await?;
///     assert!(peer.ip().is_loopback());
///     assert!(socket2::SockRef::from(&conn).nonblocking()?);
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
///
/// # Errors
/// As [`sock_recv`].
pub async fn sock_accept(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let s = SockRef::from(listener);
    check_nonblocking(&s)?;
    let (conn, addr) = retry(&s, true, || listener.accept()).await?;
    conn.set_nonblocking(true)?;
    Ok((conn, addr))
}

/// Connects `sock` to `addr` (asyncio's `loop.sock_connect`), without
/// blocking the loop.
///
/// ```
/// use socket2::{Domain, Socket, Type};
/// asyncio::EventLoop::new().run_until_complete(async {
///     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
///     let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
///     sock.set_nonblocking(true)?;
///     asyncio::sock_connect(&sock, listener.local_addr()?).await?;
///     assert_eq!(sock.peer_addr()?.as_socket(), Some(listener.local_addr()?));
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
///
/// # Errors
/// `ConnectionRefused` and the other connect errors; as [`sock_recv`].
pub async fn sock_connect(sock: &Socket, addr: SocketAddr) -> io::Result<()> {
    let s = SockRef::from(sock);
    check_nonblocking(&s)?;
    match sock.connect(&addr.into()) {
        Ok(()) => return Ok(()),
        // A non-blocking connect reports EINPROGRESS (EAGAIN for Unix sockets).
        Err(e)
            if e.raw_os_error() == Some(libc::EINPROGRESS)
                || matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
        Err(e) => return Err(e),
    }
    let reg = IoRegistration::new(sock.as_raw_fd())?;
    loop {
        reg.writable().await?;
        if let Some(e) = sock.take_error()? {
            return Err(e);
        }
        match sock.peer_addr() {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => reg.clear_writable(),
            Err(e) => return Err(e),
        }
    }
}

/// Views initialized bytes as possibly-uninitialized ones, for socket2's
/// receive calls.
fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has the layout of `u8`, and the receive
    // calls this is handed to only ever write initialized bytes into it (the
    // kernel copies data in), so `buf` stays initialized for its owner.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [std::mem::MaybeUninit<u8>]) }
}

/// Receives one datagram of up to `n` bytes and its sender (asyncio's
/// `loop.sock_recvfrom`). The address is socket2's `SockAddr`:
/// `.as_socket()` gives an IP address and port, `.as_pathname()` a Unix
/// datagram socket's path.
///
/// ```
/// let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.set_nonblocking(true).unwrap();
/// b.set_nonblocking(true).unwrap();
/// let to = b.local_addr().unwrap();
/// let (data, from) = asyncio::run(async move {
///     asyncio::sock_sendto(&a, b"hi", to).await?;
///     asyncio::sock_recvfrom(&b, 100).await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(data, b"hi");
/// assert!(from.as_socket().unwrap().ip().is_loopback());
/// ```
///
/// # Errors
/// As [`sock_recv`].
pub async fn sock_recvfrom<S: AsFd>(sock: &S, n: usize) -> io::Result<(Vec<u8>, SockAddr)> {
    let mut buf = vec![0; n];
    let (got, from) = sock_recvfrom_into(sock, &mut buf).await?;
    buf.truncate(got);
    Ok((buf, from))
}

/// Receives one datagram into `buf` (a longer one is truncated); returns
/// its length and sender (asyncio's `loop.sock_recvfrom_into`).
///
/// # Errors
/// As [`sock_recv`].
pub async fn sock_recvfrom_into<S: AsFd>(
    sock: &S,
    buf: &mut [u8],
) -> io::Result<(usize, SockAddr)> {
    let s = SockRef::from(sock);
    check_nonblocking(&s)?;
    let socket: &Socket = &s;
    retry(&s, true, || socket.recv_from(as_uninit(buf))).await
}

/// Sends one datagram to `addr` (asyncio's `loop.sock_sendto`); returns
/// the bytes sent.
///
/// # Errors
/// As [`sock_recv`].
pub async fn sock_sendto<S: AsFd>(
    sock: &S,
    data: &[u8],
    addr: impl Into<SockAddr>,
) -> io::Result<usize> {
    let s = SockRef::from(sock);
    check_nonblocking(&s)?;
    let socket: &Socket = &s;
    let addr = addr.into();
    retry(&s, false, || socket.send_to(data, &addr)).await
}

/// Connects `sock` to `host` and `port`, resolving the name first (asyncio's
/// `loop.sock_connect` with a host name): the addresses of the socket's
/// family are tried in turn, as asyncio picks the first.
///
/// ```
/// use socket2::{Domain, Socket, Type};
/// asyncio::run(async {
///     let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
///     let sock = Socket::new(Domain::IPV4, Type::STREAM, None)?;
///     sock.set_nonblocking(true)?;
///     asyncio::sock_connect_host(&sock, "localhost", listener.local_addr()?.port()).await?;
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
///
/// # Errors
/// The resolver's error; `NotFound` if no address of the socket's family
/// resolves; the last connect error; as [`sock_connect`].
pub async fn sock_connect_host(sock: &Socket, host: &str, port: u16) -> io::Result<()> {
    // The family through getsockname: `Socket::domain` (SO_DOMAIN) is not on every Unix.
    let domain = sock.local_addr()?.domain();
    let addrs = crate::connect::getaddrinfo(host, port).await?;
    let mut last = None;
    for addr in addrs
        .into_iter()
        .filter(|a| socket2::Domain::for_address(*a) == domain)
    {
        match sock_connect(sock, addr).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} has no address of the socket's family"),
        )
    }))
}
