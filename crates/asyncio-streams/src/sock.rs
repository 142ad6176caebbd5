//! The connected socket under a stream: TCP or Unix, non-blocking.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

/// The address of one end of a stream: an IP address and port, or a Unix
/// socket path (asyncio's `get_extra_info('peername')`/`'sockname'`).
///
/// ```
/// asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await?;
///     let addr: &asyncio::StreamAddr = &server.sockets()[0];
///     assert!(addr.as_inet().unwrap().ip().is_loopback());
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// ```
#[derive(Debug, Clone)]
pub enum StreamAddr {
    /// A TCP endpoint.
    Inet(SocketAddr),
    /// A Unix domain socket endpoint (unnamed for a connecting client).
    Unix(std::os::unix::net::SocketAddr),
}

impl StreamAddr {
    /// The IP address and port, for a TCP endpoint.
    ///
    /// ```
    /// # use asyncio::StreamAddr;
    /// let a = StreamAddr::Inet("127.0.0.1:80".parse().unwrap());
    /// assert_eq!(a.as_inet().map(|a| a.port()), Some(80));
    /// ```
    pub fn as_inet(&self) -> Option<SocketAddr> {
        match self {
            StreamAddr::Inet(a) => Some(*a),
            StreamAddr::Unix(_) => None,
        }
    }

    /// The path, for a named Unix socket.
    pub fn as_pathname(&self) -> Option<&std::path::Path> {
        match self {
            StreamAddr::Inet(_) => None,
            StreamAddr::Unix(a) => a.as_pathname(),
        }
    }
}

impl fmt::Display for StreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamAddr::Inet(a) => a.fmt(f),
            StreamAddr::Unix(a) => match a.as_pathname() {
                Some(p) => p.display().fmt(f),
                None => f.write_str("(unnamed)"),
            },
        }
    }
}

/// A connected, non-blocking stream socket, or one end of a pipe to a child
/// process (a subprocess's stdin, stdout or stderr).
#[derive(Debug)]
pub(crate) enum Sock {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
    /// The parent's read end of a child's stdout or stderr.
    PipeRead(mio::unix::pipe::Receiver),
    /// The parent's write end of a child's stdin.
    PipeWrite(mio::unix::pipe::Sender),
}

fn not_a_socket() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "a pipe has no socket address")
}

impl Sock {
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
            Sock::PipeRead(p) => p.as_raw_fd(),
            Sock::PipeWrite(p) => p.as_raw_fd(),
        }
    }

    pub(crate) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).read(buf),
            Sock::Unix(s) => (&*s).read(buf),
            Sock::PipeRead(p) => (&*p).read(buf),
            Sock::PipeWrite(_) => Ok(0),
        }
    }

    pub(crate) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).write(buf),
            Sock::Unix(s) => (&*s).write(buf),
            Sock::PipeWrite(p) => crate::nosigpipe::write_pipe(p.as_raw_fd(), buf),
            Sock::PipeRead(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the read end of a pipe cannot be written",
            )),
        }
    }

    /// One `writev`: what TLS hands out is several records at once.
    #[cfg(feature = "tls")]
    pub(crate) fn write_vectored(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => (&*s).write_vectored(bufs),
            Sock::Unix(s) => (&*s).write_vectored(bufs),
            Sock::PipeWrite(p) => (&*p).write_vectored(bufs),
            Sock::PipeRead(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the read end of a pipe cannot be written",
            )),
        }
    }

    pub(crate) fn is_pipe(&self) -> bool {
        matches!(self, Sock::PipeRead(_) | Sock::PipeWrite(_))
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
            // A pipe has one direction; its connection closes it instead
            // (`Conn::write_eof`).
            Sock::PipeRead(_) | Sock::PipeWrite(_) => Ok(()),
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<StreamAddr> {
        match self {
            Sock::Tcp(s) => s.peer_addr().map(StreamAddr::Inet),
            Sock::Unix(s) => s.peer_addr().map(StreamAddr::Unix),
            Sock::PipeRead(_) | Sock::PipeWrite(_) => Err(not_a_socket()),
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<StreamAddr> {
        match self {
            Sock::Tcp(s) => s.local_addr().map(StreamAddr::Inet),
            Sock::Unix(s) => s.local_addr().map(StreamAddr::Unix),
            Sock::PipeRead(_) | Sock::PipeWrite(_) => Err(not_a_socket()),
        }
    }
}
