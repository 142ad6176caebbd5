//! UDP with a protocol: asyncio's `create_datagram_endpoint`,
//! `DatagramProtocol` and `DatagramTransport` (CPython's
//! `_SelectorDatagramTransport`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use asyncio_core::{IoRegistration, PanicError};

use super::stream::report;

/// The largest datagram read (asyncio's `max_size`, 256 KiB; a UDP payload
/// is at most 64 KiB anyway).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Datagrams received (each with its protocol call) before the driver lets
/// other tasks run.
const RECV_BUDGET: usize = 32;

/// The callbacks of a datagram protocol (asyncio's
/// `asyncio.DatagramProtocol`): `connection_made` once, then
/// `datagram_received` per datagram and `error_received` per error a send
/// or a receive met (an ICMP "port unreachable", for instance), then
/// `connection_lost` once.
///
/// ```
/// use asyncio::{DatagramProtocol, DatagramTransport};
/// use std::net::SocketAddr;
///
/// /// Sends every datagram back where it came from.
/// struct Echo(Option<DatagramTransport>);
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, t: &DatagramTransport) { self.0 = Some(t.clone()) }
///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
///         let _ = self.0.as_ref().unwrap().sendto(data, Some(addr));
///     }
/// }
/// # let _ = Echo(None);
/// ```
pub trait DatagramProtocol: 'static {
    /// The endpoint is ready; `transport` is its handle.
    fn connection_made(&mut self, transport: &DatagramTransport) {
        let _ = transport;
    }

    /// A datagram arrived from `addr`.
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        let _ = (data, addr);
    }

    /// A send or a receive failed (the endpoint stays open).
    fn error_received(&mut self, exc: io::Error) {
        let _ = exc;
    }

    /// The endpoint is closed: `None` after `close()` or `abort()`.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The send buffer went above its high-water mark (64 KiB).
    fn pause_writing(&mut self) {}

    /// The send buffer went back down to its low-water mark.
    fn resume_writing(&mut self) {}
}

/// Where a datagram endpoint is bound and where it sends by default
/// (asyncio's `create_datagram_endpoint` arguments).
///
/// ```
/// let opts = asyncio::DatagramOptions::new()
///     .local_addr("127.0.0.1:0".parse().unwrap())
///     .allow_broadcast(true);
/// # let _ = opts;
/// ```
#[derive(Debug, Default)]
pub struct DatagramOptions {
    local_addr: Option<SocketAddr>,
    remote_addr: Option<SocketAddr>,
    reuse_port: bool,
    allow_broadcast: bool,
    sock: Option<std::net::UdpSocket>,
}

impl DatagramOptions {
    /// No address: bind where `remote_addr` needs (an unspecified address
    /// of its family), or `0.0.0.0:0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds to `addr` (`local_addr=`).
    pub fn local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Connects to `addr` (`remote_addr=`): `sendto(data, None)` sends there,
    /// and only its datagrams are received.
    pub fn remote_addr(mut self, addr: SocketAddr) -> Self {
        self.remote_addr = Some(addr);
        self
    }

    /// `SO_REUSEPORT` (`reuse_port=`).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_BROADCAST` (`allow_broadcast=`).
    pub fn allow_broadcast(mut self, on: bool) -> Self {
        self.allow_broadcast = on;
        self
    }

    /// Uses a socket made elsewhere (`sock=`); the addresses must then be
    /// left unset.
    pub fn sock(mut self, sock: std::net::UdpSocket) -> Self {
        self.sock = Some(sock);
        self
    }
}

/// Why a datagram transport refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DatagramError {
    /// `sendto` with an address other than the endpoint's `remote_addr`
    /// (asyncio's `ValueError`).
    #[error("invalid address: must be None or {0}")]
    NotTheRemoteAddress(SocketAddr),
    /// `sendto` without an address on an endpoint with no `remote_addr`.
    #[error("no destination: the endpoint has no remote_addr")]
    NoDestination,
}

impl From<DatagramError> for io::Error {
    fn from(e: DatagramError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

struct State {
    /// Datagrams the socket did not take yet, with their destinations.
    buffer: VecDeque<(Vec<u8>, Option<SocketAddr>)>,
    buffer_size: usize,
    high: usize,
    low: usize,
    writing_paused: bool,
    closing: bool,
    /// A fatal error (a panic of the protocol), for `connection_lost`.
    error: Option<io::Error>,
    made: bool,
    lost: bool,
    waker: Option<Waker>,
}

struct Inner {
    /// Declared first: leaves epoll before the socket closes.
    io: RefCell<Option<(IoRegistration, mio::net::UdpSocket)>>,
    remote: Option<SocketAddr>,
    proto: RefCell<Option<Rc<RefCell<dyn DatagramProtocol>>>>,
    st: RefCell<State>,
    /// The driver's wait for a protocol borrowed across an await.
    retry: super::BusyRetry,
}

/// A datagram transport (asyncio's `asyncio.DatagramTransport`): send with
/// [`sendto`](Self::sendto); what arrives goes to the protocol's
/// `datagram_received`. A cheap `Clone`.
///
/// ```
/// use std::{cell::RefCell, net::SocketAddr, rc::Rc};
/// use asyncio::{DatagramOptions, DatagramProtocol, DatagramTransport};
///
/// #[derive(Default)]
/// struct Inbox(Vec<Vec<u8>>);
/// impl DatagramProtocol for Inbox {
///     fn datagram_received(&mut self, data: &[u8], _from: SocketAddr) {
///         self.0.push(data.to_vec());
///     }
/// }
///
/// let got = asyncio::run(async {
///     let local = DatagramOptions::new().local_addr("127.0.0.1:0".parse().unwrap());
///     let (rx, inbox) = asyncio::create_datagram_endpoint(Inbox::default, local)?;
///     let to = rx.sockname()?;
///     let (tx, _) = asyncio::create_datagram_endpoint(
///         Inbox::default,
///         DatagramOptions::new().remote_addr(to),
///     )?;
///     tx.sendto(b"one", None)?;
///     while inbox.borrow().0.is_empty() {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     tx.close();
///     rx.close();
///     std::io::Result::Ok(inbox.take().0)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, [b"one".to_vec()]);
/// ```
#[derive(Clone)]
pub struct DatagramTransport {
    inner: Rc<Inner>,
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("closing", &self.is_closing())
            .field("remote", &self.inner.remote)
            .finish_non_exhaustive()
    }
}

/// Makes a UDP endpoint and runs `protocol_factory()`'s protocol on it
/// (asyncio's `loop.create_datagram_endpoint`). Addresses are IP addresses
/// (resolve names first with [`getaddrinfo`](crate::getaddrinfo)). When it
/// returns, `connection_made` has been called.
///
/// # Errors
/// The OS's error (`AddrInUse`...); `InvalidInput` for `sock` together with
/// an address; `Other` outside a running loop.
pub fn create_datagram_endpoint<P: DatagramProtocol>(
    protocol_factory: impl FnOnce() -> P,
    options: DatagramOptions,
) -> io::Result<(DatagramTransport, Rc<RefCell<P>>)> {
    let sock = match options.sock {
        Some(s) => {
            if options.local_addr.is_some() || options.remote_addr.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "sock= cannot be given with local_addr or remote_addr",
                ));
            }
            s.set_nonblocking(true)?;
            s
        }
        None => {
            let local = options
                .local_addr
                .unwrap_or_else(|| match options.remote_addr {
                    Some(SocketAddr::V6(_)) => SocketAddr::from(([0u16; 8], 0)),
                    _ => SocketAddr::from(([0, 0, 0, 0], 0)),
                });
            let s = socket2::Socket::new(
                socket2::Domain::for_address(local),
                socket2::Type::DGRAM,
                None,
            )?;
            s.set_nonblocking(true)?;
            if options.reuse_port {
                s.set_reuse_port(true)?;
            }
            if options.allow_broadcast {
                s.set_broadcast(true)?;
            }
            s.bind(&local.into())?;
            if let Some(remote) = options.remote_addr {
                s.connect(&remote.into())?;
            }
            s.into()
        }
    };
    let remote = sock.peer_addr().ok();
    let sock = mio::net::UdpSocket::from_std(sock);
    let reg = IoRegistration::new(sock.as_raw_fd())?;
    let proto = Rc::new(RefCell::new(protocol_factory()));
    let inner = Rc::new(Inner {
        io: RefCell::new(Some((reg, sock))),
        remote,
        proto: RefCell::new(Some(proto.clone() as Rc<RefCell<dyn DatagramProtocol>>)),
        st: RefCell::new(State {
            buffer: VecDeque::new(),
            buffer_size: 0,
            high: crate::conn::DEFAULT_HIGH,
            low: crate::conn::DEFAULT_HIGH / 4,
            writing_paused: false,
            closing: false,
            error: None,
            made: true,
            lost: false,
            waker: None,
        }),
        retry: super::BusyRetry::default(),
    });
    let transport = DatagramTransport {
        inner: inner.clone(),
    };
    if let Err(e) = inner.call(|p| p.connection_made(&transport)) {
        inner.fatal("connection_made", e);
    }
    let guard = Guard(inner.clone());
    let spawned = asyncio_core::try_create_task(async move {
        let guard = guard;
        let mut buf = Vec::new();
        std::future::poll_fn(|cx| guard.0.poll_drive(cx, &mut buf)).await;
    });
    spawned.map_err(io::Error::other)?;
    Ok((transport, proto))
}

impl DatagramTransport {
    /// Sends `data` to `addr`, or to the endpoint's `remote_addr` with
    /// `None` (asyncio's `sendto`). Never waits: a datagram the socket
    /// cannot take now is queued. A send error goes to the protocol's
    /// `error_received`, as asyncio's; after `close()` the datagram is
    /// dropped.
    ///
    /// # Errors
    /// [`DatagramError`] for a destination the endpoint cannot send to.
    pub fn sendto(&self, data: &[u8], addr: Option<SocketAddr>) -> Result<(), DatagramError> {
        let addr = match (addr, self.inner.remote) {
            (Some(a), Some(r)) if a != r => return Err(DatagramError::NotTheRemoteAddress(r)),
            (_, Some(_)) => None,
            (Some(a), None) => Some(a),
            (None, None) => return Err(DatagramError::NoDestination),
        };
        if self.is_closing() {
            return Ok(());
        }
        if self.inner.st.borrow().buffer.is_empty() {
            match self.inner.send_now(data, addr) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.inner.error_received(e);
                    return Ok(());
                }
            }
        }
        {
            let mut st = self.inner.st.borrow_mut();
            st.buffer_size += data.len();
            st.buffer.push_back((data.to_vec(), addr));
        }
        self.inner.maybe_pause();
        self.inner.wake();
        Ok(())
    }

    /// Closes the endpoint (asyncio's `close`): queued datagrams are still
    /// sent, then the protocol's `connection_lost(None)` is called.
    pub fn close(&self) {
        self.inner.st.borrow_mut().closing = true;
        self.inner.wake();
    }

    /// Closes at once, dropping queued datagrams (asyncio's `abort`).
    pub fn abort(&self) {
        {
            let mut st = self.inner.st.borrow_mut();
            st.closing = true;
            st.buffer.clear();
            st.buffer_size = 0;
        }
        self.inner.wake();
    }

    /// Whether the endpoint is closing or closed.
    pub fn is_closing(&self) -> bool {
        self.inner.st.borrow().closing
    }

    /// Bytes of queued datagrams (asyncio's `get_write_buffer_size`).
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.st.borrow().buffer_size
    }

    /// The bound address (`get_extra_info('sockname')`).
    ///
    /// # Errors
    /// Once closed.
    pub fn sockname(&self) -> io::Result<SocketAddr> {
        self.inner.with_sock(|s| s.local_addr())
    }

    /// The `remote_addr` (`get_extra_info('peername')`), if connected.
    pub fn peername(&self) -> Option<SocketAddr> {
        self.inner.remote
    }

    /// The socket's descriptor (`get_extra_info('socket')`), while open.
    pub fn socket(&self) -> Option<RawFd> {
        self.inner.io.borrow().as_ref().map(|(_, s)| s.as_raw_fd())
    }
}

impl Inner {
    fn wake(&self) {
        let w = self.st.borrow().waker.clone();
        if let Some(w) = w {
            w.wake();
        }
    }

    fn with_sock<T>(&self, f: impl FnOnce(&mio::net::UdpSocket) -> io::Result<T>) -> io::Result<T> {
        match &*self.io.borrow() {
            Some((_, s)) => f(s),
            None => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the datagram transport is closed",
            )),
        }
    }

    fn send_now(&self, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
        self.with_sock(|s| {
            loop {
                let sent = match addr {
                    Some(a) => s.send_to(data, a),
                    None => s.send(data),
                };
                match sent {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => return other.map(drop),
                }
            }
        })
    }

    /// Calls the protocol through the gate; `Ok(None)` if it is busy or gone.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut dyn DatagramProtocol) -> R,
    ) -> Result<Option<R>, PanicError> {
        let Some(p) = self.proto.borrow().clone() else {
            return Ok(None);
        };
        let Ok(mut guard) = p.try_borrow_mut() else {
            return Ok(None);
        };
        let proto: &mut dyn DatagramProtocol = &mut *guard;
        asyncio_core::call_user(move || f(proto)).map(Some)
    }

    /// asyncio's `_fatal_error`: reported, the endpoint closed at once
    /// (queued datagrams dropped), and `connection_lost` gets the panic.
    fn fatal(&self, method: &str, panic: PanicError) {
        report(
            &format!("Fatal error: protocol.{method}() call failed"),
            Some(panic.clone()),
        );
        {
            let mut st = self.st.borrow_mut();
            st.closing = true;
            st.buffer.clear();
            st.buffer_size = 0;
            st.error.get_or_insert_with(|| io::Error::other(panic));
        }
        self.wake();
    }

    fn error_received(&self, e: io::Error) {
        if let Err(p) = self.call(move |p| p.error_received(e)) {
            self.fatal("error_received", p);
        }
    }

    fn maybe_pause(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.writing_paused || st.buffer_size <= st.high {
                return;
            }
            st.writing_paused = true;
        }
        if let Err(e) = self.call(|p| p.pause_writing()) {
            report("protocol.pause_writing() failed", Some(e));
        }
    }

    fn maybe_resume(&self) {
        {
            let mut st = self.st.borrow_mut();
            if !st.writing_paused || st.buffer_size > st.low {
                return;
            }
            st.writing_paused = false;
        }
        if let Err(e) = self.call(|p| p.resume_writing()) {
            report("protocol.resume_writing() failed", Some(e));
        }
    }

    fn poll_drive(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<()> {
        {
            let mut st = self.st.borrow_mut();
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
        }
        self.poll_flush(cx);
        {
            let st = self.st.borrow();
            if st.closing && st.buffer.is_empty() {
                drop(st);
                if !self.lose() {
                    // The protocol is borrowed (held across an await):
                    // come back for its connection_lost.
                    self.retry.arm(cx.waker());
                    return Poll::Pending;
                }
                return Poll::Ready(());
            }
        }
        if buf.is_empty() {
            buf.resize(MAX_DATAGRAM, 0);
        }
        for _ in 0..RECV_BUDGET {
            if self.st.borrow().closing {
                return Poll::Pending;
            }
            // A protocol borrowed right now (held across an await) could not
            // take a datagram: leave them in the socket and come back.
            if self
                .proto
                .borrow()
                .as_ref()
                .is_some_and(|p| p.try_borrow_mut().is_err())
            {
                self.retry.arm(cx.waker());
                return Poll::Pending;
            }
            let got = {
                let io = self.io.borrow();
                let Some((reg, sock)) = io.as_ref() else {
                    return Poll::Pending;
                };
                match reg.poll_readable(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Ready(Ok(())) => match sock.recv_from(buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            reg.clear_readable();
                            continue;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => other,
                    },
                }
            };
            match got {
                Ok((n, from)) => {
                    let data = &buf[..n];
                    if let Err(e) = self.call(|p| p.datagram_received(data, from)) {
                        self.fatal("datagram_received", e);
                    }
                }
                Err(e) => self.error_received(e),
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Sends queued datagrams while the socket takes them.
    fn poll_flush(&self, cx: &mut Context<'_>) {
        loop {
            let next = self.st.borrow_mut().buffer.pop_front();
            let Some((data, addr)) = next else {
                return;
            };
            let writable = match self.io.borrow().as_ref() {
                Some((reg, _)) => reg.poll_writable(cx),
                None => return,
            };
            if writable.is_pending() {
                self.st.borrow_mut().buffer.push_front((data, addr));
                return;
            }
            match self.send_now(&data, addr) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some((reg, _)) = self.io.borrow().as_ref() {
                        reg.clear_writable();
                    }
                    self.st.borrow_mut().buffer.push_front((data, addr));
                    continue;
                }
                Err(e) => {
                    self.st.borrow_mut().buffer_size -= data.len();
                    self.error_received(e);
                }
                Ok(()) => {
                    self.st.borrow_mut().buffer_size -= data.len();
                }
            }
            self.maybe_resume();
        }
    }

    /// Releases the socket, calls `connection_lost(None)` once and lets the
    /// protocol go.
    /// Calls `connection_lost` once and lets the protocol go; `false` if the
    /// protocol is borrowed right now (the caller comes back), as the stream
    /// transport's `lose` does.
    fn lose(&self) -> bool {
        if self.st.borrow().lost {
            return true;
        }
        let io = self.io.borrow_mut().take();
        drop(io);
        if self.st.borrow().made {
            let busy = match self.proto.borrow().as_ref() {
                Some(p) => p.try_borrow_mut().is_err(),
                None => false,
            };
            if busy {
                return false;
            }
            let error = self.st.borrow_mut().error.take();
            if let Err(e) = self.call(|p| p.connection_lost(error)) {
                report("protocol.connection_lost() failed", Some(e));
            }
        }
        self.st.borrow_mut().lost = true;
        let proto = self.proto.borrow_mut().take();
        if let Some(p) = proto {
            let _ = asyncio_core::call_user(move || drop(p));
        }
        true
    }
}

/// Lets the protocol go if the driver's task is dropped first (the loop
/// closed).
struct Guard(Rc<Inner>);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.st.borrow().lost {
            return;
        }
        self.0.st.borrow_mut().lost = true;
        let io = self.0.io.borrow_mut().take();
        drop(io);
        let proto = self.0.proto.borrow_mut().take();
        if let Some(p) = proto {
            let _ = asyncio_core::call_user(move || drop(p));
        }
    }
}
