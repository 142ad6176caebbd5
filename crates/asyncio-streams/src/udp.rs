//! `DatagramSocket`: UDP on the loop.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::task::{Context, Poll};

use asyncio_core::IoRegistration;

/// A UDP socket on the loop: `send_to`/`recv_from`, or `connect` then
/// `send`/`recv`. asyncio offers datagrams through
/// `loop.create_datagram_endpoint` and a protocol's callbacks; this is the
/// same socket with futures instead of callbacks.
///
/// One task may receive and another send at the same time; a second task
/// receiving while one already waits gets an error of kind `ResourceBusy`
/// (the loop keeps one waiter per direction), never a hang.
///
/// ```
/// use asyncio::DatagramSocket;
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let a = DatagramSocket::bind("127.0.0.1:0".parse().unwrap())?;
///     let b = DatagramSocket::bind("127.0.0.1:0".parse().unwrap())?;
///     a.send_to(b"ping", b.local_addr()?).await?;
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).await?;
///     assert_eq!(&buf[..n], b"ping");
///     assert_eq!(from, a.local_addr()?);
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
pub struct DatagramSocket {
    // Declared first: leaves epoll before the socket closes.
    reg: IoRegistration,
    sock: mio::net::UdpSocket,
    receiving: Cell<bool>,
    sending: Cell<bool>,
}

impl fmt::Debug for DatagramSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramSocket")
            .field("local_addr", &self.sock.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Clears a busy flag when the operation ends or is cancelled.
struct Busy<'a>(&'a Cell<bool>);

impl<'a> Busy<'a> {
    fn take(flag: &'a Cell<bool>, what: &str) -> io::Result<Self> {
        if flag.replace(true) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("another task is already {what} on this socket"),
            ));
        }
        Ok(Busy(flag))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl DatagramSocket {
    /// Binds a UDP socket to `addr` (port 0 picks a free port) and registers
    /// it with the running loop.
    ///
    /// # Errors
    /// The OS's error (`AddrInUse`...); `Other` outside a loop.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::from_mio(mio::net::UdpSocket::bind(addr)?)
    }

    /// Takes over a std UDP socket (made non-blocking here).
    ///
    /// # Errors
    /// As [`bind`](Self::bind).
    pub fn from_std(sock: std::net::UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        Self::from_mio(mio::net::UdpSocket::from_std(sock))
    }

    fn from_mio(sock: mio::net::UdpSocket) -> io::Result<Self> {
        let reg = IoRegistration::new(sock.as_raw_fd())?;
        Ok(DatagramSocket {
            reg,
            sock,
            receiving: Cell::new(false),
            sending: Cell::new(false),
        })
    }

    fn poll_io<T>(
        &self,
        cx: &mut Context<'_>,
        read: bool,
        mut op: impl FnMut(&mio::net::UdpSocket) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            match op(&self.sock) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = if read {
                        self.reg.clear_readable();
                        self.reg.poll_readable(cx)
                    } else {
                        self.reg.clear_writable();
                        self.reg.poll_writable(cx)
                    };
                    std::task::ready!(ready)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    /// Sends one datagram to `target`; returns the bytes sent.
    ///
    /// # Errors
    /// The OS's error; `ResourceBusy` if another task is sending.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        let _busy = Busy::take(&self.sending, "sending")?;
        std::future::poll_fn(|cx| self.poll_io(cx, false, |s| s.send_to(buf, target))).await
    }

    /// Receives one datagram into `buf` (a longer one is truncated); returns
    /// its length and sender.
    ///
    /// # Errors
    /// The OS's error; `ResourceBusy` if another task is receiving.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let _busy = Busy::take(&self.receiving, "receiving")?;
        std::future::poll_fn(|cx| self.poll_io(cx, true, |s| s.recv_from(buf))).await
    }

    /// Sets the default destination, and receives only from it.
    ///
    /// # Errors
    /// The OS's error.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.sock.connect(addr)
    }

    /// Sends one datagram to the connected address.
    ///
    /// # Errors
    /// `NotConnected` before [`connect`](Self::connect); as [`send_to`](Self::send_to).
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let _busy = Busy::take(&self.sending, "sending")?;
        std::future::poll_fn(|cx| self.poll_io(cx, false, |s| s.send(buf))).await
    }

    /// Receives one datagram from the connected address.
    ///
    /// # Errors
    /// As [`recv_from`](Self::recv_from); `ConnectionRefused` after a send to
    /// a port where nothing listens (the ICMP error is reported here).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let _busy = Busy::take(&self.receiving, "receiving")?;
        std::future::poll_fn(|cx| self.poll_io(cx, true, |s| s.recv(buf))).await
    }

    /// The bound address.
    ///
    /// # Errors
    /// The OS's error.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// The connected address.
    ///
    /// # Errors
    /// `NotConnected` before [`connect`](Self::connect).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.sock.peer_addr()
    }
}
