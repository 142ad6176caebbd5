//! The loop's functions that make stream transports: `create_connection`,
//! `create_server`, their Unix versions, `connect_accepted_socket`.

use std::cell::RefCell;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use asyncio_core::IoRegistration;

use super::Protocol;
use super::stream::{ProtoCell, Role, Transport, report};
use crate::conn::Conn;
use crate::connect::{connect_tcp, connect_unix};
use crate::options::{ConnectOptions, ServerOptions};
use crate::server::{
    Server, Spawn, bind_tcp_listeners, bind_unix_listener, tcp_listener_from_std,
    unix_listener_from_std,
};
use crate::sock::Sock;

/// The protocol as its creator keeps it: the loop borrows it for each call,
/// so do not hold a `borrow_mut` across an `.await`.
pub type ProtocolCell<P> = Rc<RefCell<P>>;

/// Starts a client transport: the protocol, `connection_made`, the driver.
fn start_client<P: Protocol>(
    conn: Rc<Conn>,
    protocol_factory: impl FnOnce() -> P,
    role: Role,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    // The factory runs in the caller's task, as asyncio calls it inside
    // create_connection: a panic goes to the caller (the connection is
    // dropped with `conn`).
    let proto = Rc::new(RefCell::new(protocol_factory()));
    let transport = Transport::start(conn, proto.clone() as ProtoCell, role)?;
    Ok((transport, proto))
}

/// Opens a TCP connection and runs `protocol_factory()`'s protocol on it
/// (asyncio's `loop.create_connection`). When it returns, the protocol's
/// `connection_made` has been called. `host` is an IP address or a name
/// (resolved on the default executor); `TCP_NODELAY` is set.
///
/// Returns the transport and the protocol (shared with the loop, which
/// borrows it for each call).
///
/// ```
/// use asyncio::{Protocol, Transport};
///
/// #[derive(Default)]
/// struct Hello;
/// impl Protocol for Hello {
///     fn connection_made(&mut self, t: &Transport) {
///         t.write(b"hello").unwrap();
///         t.close();
///     }
/// }
///
/// let got = asyncio::run(async {
///     let server = asyncio::start_server(
///         |mut r: asyncio::StreamReader, _w| async move { r.read_to_eof().await.unwrap() },
///         "127.0.0.1",
///         0,
///     )
///     .await?;
///     let port = server.local_addr().unwrap().port();
///     let (transport, _hello) = asyncio::create_connection(Hello::default, "127.0.0.1", port).await?;
///     assert!(transport.is_closing());
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap();
/// assert!(got.is_ok());
/// ```
///
/// # Errors
/// As [`open_connection`](crate::open_connection): the resolver's error,
/// the connect error; `Other` outside a running loop.
pub async fn create_connection<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    host: &str,
    port: u16,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    create_connection_with(protocol_factory, host, port, &ConnectOptions::default()).await
}

/// [`create_connection`] with options (`ssl`, `server_hostname`,
/// `nodelay`; `limit` does not apply to a protocol).
///
/// # Errors
/// As [`create_connection`]; a failed TLS handshake.
pub async fn create_connection_with<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    host: &str,
    port: u16,
    options: &ConnectOptions,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    let conn = connect_tcp(host, port, options).await?;
    start_client(conn, protocol_factory, Role::Socket)
}

/// Connects to the Unix socket at `path` and runs the protocol on it
/// (asyncio's `loop.create_unix_connection`).
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-cuc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// asyncio::run(async {
///     struct Quiet;
///     impl asyncio::Protocol for Quiet {}
///     let server = asyncio::create_unix_server(|| Quiet, &path).await?;
///     let (t, _p) = asyncio::create_unix_connection(|| Quiet, &path).await?;
///     assert!(t.peername()?.as_pathname().is_some());
///     t.close();
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
///
/// # Errors
/// The connect error (`NotFound`, `ConnectionRefused`...); `Other` outside
/// a running loop.
pub async fn create_unix_connection<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    path: impl AsRef<Path>,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    create_unix_connection_with(protocol_factory, path, &ConnectOptions::default()).await
}

/// [`create_unix_connection`] with options (`ssl` and `server_hostname`).
///
/// # Errors
/// As [`create_unix_connection`].
pub async fn create_unix_connection_with<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    path: impl AsRef<Path>,
    options: &ConnectOptions,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    let conn = connect_unix(path.as_ref(), options).await?;
    start_client(conn, protocol_factory, Role::Socket)
}

/// Runs the protocol on a connection accepted elsewhere (asyncio's
/// `loop.connect_accepted_socket`): a TCP or Unix stream socket given as
/// its descriptor, e.g. one a systemd socket unit with `Accept=yes`
/// passed in, or one accepted on another thread. The socket is switched to
/// non-blocking mode; a TCP one gets `TCP_NODELAY`.
///
/// ```
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
/// let (accepted, _) = listener.accept().unwrap();
/// std::io::Write::write_all(&mut client, b"ping").unwrap();
/// #[derive(Default)]
/// struct Got(Vec<u8>);
/// impl asyncio::Protocol for Got {
///     fn data_received(&mut self, d: &[u8]) { self.0.extend_from_slice(d) }
/// }
/// let got = asyncio::run(async move {
///     let (t, got) = asyncio::connect_accepted_socket(Got::default, accepted)?;
///     while got.borrow().0.len() < 4 {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     t.close();
///     std::io::Result::Ok(got.take().0)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"ping");
/// ```
///
/// # Errors
/// `InvalidInput` if the descriptor is not a connected stream socket of
/// the Internet or Unix family; the OS's error; `Other` outside a running
/// loop.
pub fn connect_accepted_socket<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    sock: impl Into<OwnedFd>,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    let sock = socket2::Socket::from(sock.into());
    if sock.r#type()? != socket2::Type::STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "connect_accepted_socket needs a stream socket",
        ));
    }
    sock.set_nonblocking(true)?;
    // The family through getsockname: `Socket::domain` (SO_DOMAIN) is not on every Unix.
    let domain = sock.local_addr()?.domain();
    let sock = if domain == socket2::Domain::UNIX {
        let s = std::os::unix::net::UnixStream::from(OwnedFd::from(sock));
        Sock::Unix(mio::net::UnixStream::from_std(s))
    } else if domain == socket2::Domain::IPV4 || domain == socket2::Domain::IPV6 {
        sock.set_tcp_nodelay(true)?;
        let s = std::net::TcpStream::from(OwnedFd::from(sock));
        Sock::Tcp(mio::net::TcpStream::from_std(s))
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "connect_accepted_socket needs an Internet or Unix socket",
        ));
    };
    let reg = IoRegistration::new(sock.fd())?;
    start_client(Conn::new(sock, reg), protocol_factory, Role::Socket)
}

/// What a protocol server does with each accepted connection: a new
/// protocol from the factory (through the gate: a panic is reported and the
/// connection dropped), then its transport.
fn protocol_spawn<P, F>(protocol_factory: F) -> Spawn
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    let factory = RefCell::new(protocol_factory);
    Rc::new(move |conn: Rc<Conn>| {
        let Ok(mut f) = factory.try_borrow_mut() else {
            report(
                "protocol_factory was called again from inside itself: connection dropped",
                None,
            );
            conn.abort();
            return;
        };
        let made = asyncio_core::call_user(|| (*f)());
        drop(f);
        let proto = match made {
            Ok(p) => p,
            Err(e) => {
                report("protocol_factory panicked: connection dropped", Some(e));
                conn.abort();
                return;
            }
        };
        let cell: ProtoCell = Rc::new(RefCell::new(proto));
        if let Err(e) = Transport::start(conn, cell, Role::Socket) {
            report(&format!("cannot start a transport: {e}"), None);
        }
    })
}

/// Starts a TCP server whose connections each run a new protocol from
/// `protocol_factory` (asyncio's `loop.create_server`). Binding is as
/// [`start_server`](crate::start_server): port 0 picks a free port, a name
/// binds every address it resolves to, `""` all interfaces. The [`Server`]
/// is the streams' server (`close`, `wait_closed`, `close_clients`,
/// `serve_forever`...).
///
/// ```
/// use asyncio::{Protocol, Transport};
///
/// struct Echo(Option<Transport>);
/// impl Protocol for Echo {
///     fn connection_made(&mut self, t: &Transport) { self.0 = Some(t.clone()) }
///     fn data_received(&mut self, d: &[u8]) { self.0.as_ref().unwrap().write(d).unwrap() }
/// }
///
/// let line = asyncio::run(async {
///     let server = asyncio::create_server(|| Echo(None), "127.0.0.1", 0).await?;
///     let port = server.local_addr().unwrap().port();
///     let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await?;
///     w.write(b"echo me\n");
///     let line = r.readline().await?;
///     server.close();
///     std::io::Result::Ok(line)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(line, b"echo me\n");
/// ```
///
/// # Errors
/// The resolver's or the OS's error (`AddrInUse`...); `Other` outside a
/// running loop.
pub async fn create_server<P, F>(protocol_factory: F, host: &str, port: u16) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    create_server_with(protocol_factory, host, port, &ServerOptions::default()).await
}

/// [`create_server`] with options (backlog, `reuse_port`, `ssl`,
/// `start_serving`...; `limit` does not apply to a protocol).
///
/// # Errors
/// As [`create_server`].
pub async fn create_server_with<P, F>(
    protocol_factory: F,
    host: &str,
    port: u16,
    options: &ServerOptions,
) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    let (listeners, bound) = bind_tcp_listeners(host, port, options).await?;
    Server::from_spawn(
        listeners,
        bound,
        protocol_spawn(protocol_factory),
        options,
        None,
    )
}

/// A protocol server on the Unix socket `path` (asyncio's
/// `loop.create_unix_server`); a stale socket file is replaced and the
/// server's own removed on close, as [`start_unix_server`](crate::start_unix_server).
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub async fn create_unix_server<P, F>(
    protocol_factory: F,
    path: impl AsRef<Path>,
) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    create_unix_server_with(protocol_factory, path, &ServerOptions::default()).await
}

/// [`create_unix_server`] with options.
///
/// # Errors
/// As [`create_unix_server`].
pub async fn create_unix_server_with<P, F>(
    protocol_factory: F,
    path: impl AsRef<Path>,
    options: &ServerOptions,
) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    let (listeners, bound, cleanup) = bind_unix_listener(path.as_ref(), options)?;
    Server::from_spawn(
        listeners,
        bound,
        protocol_spawn(protocol_factory),
        options,
        cleanup,
    )
}

/// Checks that `fd` is something the loop can watch as a pipe: a FIFO, a
/// socket or a character device (asyncio's check; a regular file is
/// always "ready" and cannot be registered with epoll).
fn check_pipe(fd: &OwnedFd) -> io::Result<()> {
    let meta = std::fs::File::from(fd.try_clone()?).metadata()?;
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() || ft.is_socket() || ft.is_char_device() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "pipe transports are only for pipes, sockets and character devices",
        ))
    }
}

/// Runs the protocol on the read end of a pipe (asyncio's
/// `loop.connect_read_pipe`): `data_received` with what comes out of it,
/// then `eof_received` and `connection_lost(None)` when the write end is
/// closed (the transport then closes whatever `eof_received` returns, as
/// asyncio's read pipe transport does). The transport's `write` returns
/// [`TransportError::NotWritable`](super::TransportError::NotWritable).
/// The descriptor is switched to non-blocking mode.
///
/// ```
/// #[derive(Default)]
/// struct Out(Vec<u8>, bool);
/// impl asyncio::Protocol for Out {
///     fn data_received(&mut self, d: &[u8]) { self.0.extend_from_slice(d) }
///     fn connection_lost(&mut self, _: Option<std::io::Error>) { self.1 = true }
/// }
/// let child = std::process::Command::new("echo")
///     .arg("from a child")
///     .stdout(std::process::Stdio::piped())
///     .spawn()
///     .unwrap();
/// let stdout = child.stdout.unwrap();
/// let got = asyncio::run(async move {
///     let (_t, out) = asyncio::connect_read_pipe(Out::default, stdout)?;
///     while !out.borrow().1 {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     std::io::Result::Ok(out.take().0)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"from a child\n");
/// ```
///
/// # Errors
/// `InvalidInput` for a regular file or a directory; the OS's error;
/// `Other` outside a running loop.
pub fn connect_read_pipe<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    pipe: impl Into<OwnedFd>,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    let fd = pipe.into();
    check_pipe(&fd)?;
    let p = mio::unix::pipe::Receiver::from(fd);
    p.set_nonblocking(true)?;
    let sock = Sock::PipeRead(p);
    let reg = IoRegistration::new(sock.fd())?;
    start_client(Conn::new(sock, reg), protocol_factory, Role::ReadPipe)
}

/// Runs the protocol on the write end of a pipe (asyncio's
/// `loop.connect_write_pipe`): `write` sends into it, with the same write
/// buffer and flow control as a socket; `write_eof` closes it once
/// flushed. A write after the read end is gone fails the transport, and
/// `connection_lost` gets `BrokenPipe` (the process is never killed by
/// `SIGPIPE`). The descriptor is switched to non-blocking mode.
///
/// ```
/// use std::io::Read;
/// struct Quiet;
/// impl asyncio::Protocol for Quiet {}
/// let (mut reader, writer) = std::io::pipe().unwrap();
/// asyncio::run(async move {
///     let (t, _p) = asyncio::connect_write_pipe(|| Quiet, writer)?;
///     t.write(b"into the pipe").unwrap();
///     t.write_eof()?;
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// let mut got = String::new();
/// reader.read_to_string(&mut got).unwrap();
/// assert_eq!(got, "into the pipe");
/// ```
///
/// # Errors
/// As [`connect_read_pipe`].
pub fn connect_write_pipe<P: Protocol>(
    protocol_factory: impl FnOnce() -> P,
    pipe: impl Into<OwnedFd>,
) -> io::Result<(Transport, ProtocolCell<P>)> {
    let fd = pipe.into();
    check_pipe(&fd)?;
    let p = mio::unix::pipe::Sender::from(fd);
    p.set_nonblocking(true)?;
    let sock = Sock::PipeWrite(p);
    let reg = IoRegistration::new(sock.fd())?;
    start_client(Conn::new(sock, reg), protocol_factory, Role::WritePipe)
}

/// A protocol server on a TCP socket already bound and listening
/// (asyncio's `loop.create_server(sock=...)`), switched to non-blocking
/// mode.
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn create_server_from_listener<P, F>(
    protocol_factory: F,
    listener: std::net::TcpListener,
    options: &ServerOptions,
) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    let (listeners, bound) = tcp_listener_from_std(listener)?;
    Server::from_spawn(
        listeners,
        bound,
        protocol_spawn(protocol_factory),
        options,
        None,
    )
}

/// A protocol server on a Unix socket already bound and listening
/// (asyncio's `loop.create_unix_server(sock=...)`), e.g. from systemd's
/// socket activation; its file is removed on close with
/// `options.cleanup_socket` (the default).
///
/// ```
/// let path = std::env::temp_dir().join(format!("asyncio-doc-cusfl-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
/// struct Hi;
/// impl asyncio::Protocol for Hi {
///     fn connection_made(&mut self, t: &asyncio::Transport) {
///         t.write(b"hi").unwrap();
///         t.close();
///     }
/// }
/// let got = asyncio::run(async {
///     let opts = asyncio::ServerOptions::new();
///     let server = asyncio::create_unix_server_from_listener(|| Hi, listener, &opts)?;
///     let (mut r, _w) = asyncio::open_unix_connection(&path).await?;
///     let got = r.read_to_eof().await?;
///     server.close();
///     std::io::Result::Ok(got)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"hi");
/// assert!(!path.exists());
/// ```
///
/// # Errors
/// The OS's error; `Other` outside a running loop.
pub fn create_unix_server_from_listener<P, F>(
    protocol_factory: F,
    listener: std::os::unix::net::UnixListener,
    options: &ServerOptions,
) -> io::Result<Server>
where
    P: Protocol,
    F: FnMut() -> P + 'static,
{
    let (listeners, bound, cleanup) = unix_listener_from_std(listener, options)?;
    Server::from_spawn(
        listeners,
        bound,
        protocol_spawn(protocol_factory),
        options,
        cleanup,
    )
}
