//! The stream transport (asyncio's `_SelectorSocketTransport` and the Unix
//! pipe transports): a handle over the shared connection core, and the
//! driver task that reads and calls the protocol.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use asyncio_core::PanicError;

use super::{ExtraInfo, Protocol, ProtocolCell, TransportError};
use crate::conn::Conn;
use crate::error::WriteBufferLimitsError;
use crate::sock::StreamAddr;

/// The protocol, shared between the transport and whoever created it.
pub(crate) type ProtoCell = Rc<RefCell<dyn Protocol>>;

/// The size hint given to a `BufferedProtocol`'s `get_buffer`: the default
/// high-water mark and a socket's usual receive buffer.
const READ_SIZE: usize = 64 * 1024;

/// A `Protocol`'s read buffer starts at this size and doubles, up to
/// [`MAX_READ`], while reads fill it; it is freed whenever the driver waits,
/// so an idle connection holds none (asyncio's transport allocates a new
/// `bytes` per read, up to 256 KiB).
const FIRST_READ: usize = 16 * 1024;
const MAX_READ: usize = 256 * 1024;

/// Reads (each with its protocol call) before the driver lets other tasks
/// run: a peer that sends without pause cannot starve the loop.
const READ_BUDGET: usize = 16;

/// What the transport plays: a socket, the read end of a pipe (reads only),
/// or the write end of a pipe (writes only, and no reading at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Socket,
    ReadPipe,
    WritePipe,
}

#[derive(Default)]
struct State {
    /// `pause_reading()` was called.
    reading_paused: bool,
    /// No more reading: the peer's EOF was seen.
    read_done: bool,
    /// `write_eof()` was called.
    eof_written: bool,
    /// The protocol was told `pause_writing` (or is owed it).
    writing_paused: bool,
    /// `pause_writing` is owed: the protocol was busy when the write buffer
    /// crossed the high-water mark.
    pause_owed: bool,
    /// `connection_made` was called, so `connection_lost` is owed.
    made: bool,
    /// `connection_lost` was called (or is not owed any more).
    lost: bool,
    /// The driver task's waker.
    waker: Option<Waker>,
}

pub(crate) struct Inner {
    conn: Rc<Conn>,
    role: Role,
    /// Taken once `connection_lost` ran: the protocol usually holds a
    /// clone of the transport, and this breaks the cycle.
    proto: RefCell<Option<ProtoCell>>,
    st: RefCell<State>,
    /// The driver's wait for a protocol borrowed across an await.
    retry: super::BusyRetry,
}

/// The outcome of a call into the protocol.
enum Call<R> {
    Done(R),
    Panicked(PanicError),
    /// The protocol is in one of its own methods (re-entered).
    Busy,
    /// `connection_lost` already ran.
    Gone,
}

/// A stream transport (asyncio's `asyncio.Transport`): the handle a
/// [`Protocol`] writes through and controls its connection with. It is a
/// cheap `Clone`; every clone is the same transport.
///
/// `write` never waits: what the socket does not take at once is buffered
/// and flushed in the background. When the buffer goes above the high-water
/// mark (64 KiB by default) the protocol's `pause_writing` is called, and
/// `resume_writing` once it is back down to the low-water mark (16 KiB).
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use asyncio::{Protocol, Transport};
///
/// #[derive(Default)]
/// struct Upper { t: Option<Transport> }
/// impl Protocol for Upper {
///     fn connection_made(&mut self, t: &Transport) { self.t = Some(t.clone()) }
///     fn data_received(&mut self, data: &[u8]) {
///         self.t.as_ref().unwrap().write(&data.to_ascii_uppercase()).unwrap();
///     }
/// }
///
/// #[derive(Default)]
/// struct Client { got: Vec<u8>, lost: bool }
/// impl Protocol for Client {
///     fn data_received(&mut self, data: &[u8]) { self.got.extend_from_slice(data) }
///     fn connection_lost(&mut self, _exc: Option<std::io::Error>) { self.lost = true }
/// }
///
/// let got = asyncio::run(async {
///     let server = asyncio::create_server(Upper::default, "127.0.0.1", 0).await?;
///     let port = server.local_addr().unwrap().port();
///     let (transport, client) =
///         asyncio::create_connection(Client::default, "127.0.0.1", port).await?;
///     transport.write(b"hello").unwrap();
///     while client.borrow().got.len() < 5 {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     transport.close();
///     while !client.borrow().lost {
///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     server.close();
///     std::io::Result::Ok(client.take().got)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, b"HELLO");
/// ```
#[derive(Clone)]
pub struct Transport {
    inner: Rc<Inner>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("closing", &self.is_closing())
            .field("buffered", &self.get_write_buffer_size())
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Makes the transport over `conn`, calls `connection_made`, and starts
    /// the driver task.
    pub(crate) fn start(conn: Rc<Conn>, proto: ProtoCell, role: Role) -> io::Result<Transport> {
        let inner = Rc::new(Inner {
            conn,
            role,
            proto: RefCell::new(Some(proto)),
            st: RefCell::new(State::default()),
            retry: super::BusyRetry::default(),
        });
        let transport = Transport {
            inner: inner.clone(),
        };
        inner.st.borrow_mut().made = true;
        match inner.call(|p| p.connection_made(&transport)) {
            Call::Done(()) | Call::Busy | Call::Gone => {}
            Call::Panicked(e) => inner.fatal("connection_made", e),
        }
        inner.deliver_owed_pause();
        // Made before the task, so that a task dropped before its first
        // poll (the loop closing) still lets the protocol go.
        let guard = DriverGuard(inner.clone());
        let spawned = asyncio_core::try_create_task(async move {
            let guard = guard;
            let mut buf = Vec::new();
            std::future::poll_fn(|cx| guard.0.poll_drive(cx, &mut buf)).await;
        });
        if let Err(e) = spawned {
            let e = io::Error::other(e);
            inner.conn.fail(io::Error::new(e.kind(), e.to_string()));
            inner.lose();
            return Err(e);
        }
        Ok(transport)
    }

    /// Sends `data` (asyncio's `transport.write`): at once what the socket
    /// takes, the rest buffered and flushed in the background. Never waits.
    /// After `close()` or once the connection is lost the data is dropped
    /// (asyncio only logs a warning).
    ///
    /// # Errors
    /// [`TransportError::WriteAfterEof`] after [`write_eof`](Self::write_eof);
    /// [`TransportError::NotWritable`] on the read end of a pipe.
    pub fn write(&self, data: &[u8]) -> Result<(), TransportError> {
        if self.inner.conn.sendfile_active() {
            return Err(TransportError::SendfileInProgress);
        }
        self.write_during_sendfile(data)
    }

    /// `write` without the sendfile-in-progress refusal: `sendfile`'s
    /// fallback writes the file's chunks through it.
    pub(crate) fn write_during_sendfile(&self, data: &[u8]) -> Result<(), TransportError> {
        if self.inner.role == Role::ReadPipe {
            return Err(TransportError::NotWritable);
        }
        if self.inner.st.borrow().eof_written {
            return Err(TransportError::WriteAfterEof);
        }
        if data.is_empty() || self.inner.conn.is_closing() {
            return Ok(());
        }
        self.inner.conn.write(data);
        self.inner.maybe_pause();
        Ok(())
    }

    /// Sends each buffer in turn, as one write (asyncio's `writelines`).
    ///
    /// # Errors
    /// As [`write`](Self::write).
    pub fn writelines<I>(&self, data: I) -> Result<(), TransportError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut all = Vec::new();
        for d in data {
            all.extend_from_slice(d.as_ref());
        }
        self.write(&all)
    }

    /// Shuts the write side once the buffer is flushed (asyncio's
    /// `write_eof`); the peer sees the end of the stream and reading goes
    /// on. For the write end of a pipe, which has no half-close, this closes
    /// it once flushed. Does nothing if closing or already called.
    ///
    /// # Errors
    /// The OS's error from `shutdown(2)`.
    pub fn write_eof(&self) -> io::Result<()> {
        {
            let mut st = self.inner.st.borrow_mut();
            if st.eof_written || self.inner.conn.is_closing() {
                return Ok(());
            }
            st.eof_written = true;
        }
        self.inner.conn.write_eof()
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: always `true`
    /// here (a TLS stream sends close_notify).
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the transport (asyncio's `close`): no more data is received;
    /// what is buffered is still sent, then the connection is released and
    /// the protocol's `connection_lost(None)` is called. Idempotent.
    pub fn close(&self) {
        self.inner.conn.close();
        self.inner.wake();
    }

    /// Closes at once, dropping buffered data (asyncio's `abort`); the
    /// protocol's `connection_lost(None)` follows.
    pub fn abort(&self) {
        self.inner.conn.abort();
        self.inner.wake();
    }

    /// Whether the transport is closing or closed (asyncio's `is_closing`).
    pub fn is_closing(&self) -> bool {
        self.inner.conn.is_closing()
    }

    /// Stops calling `data_received` until [`resume_reading`](Self::resume_reading)
    /// (asyncio's `pause_reading`); the kernel's buffers then push back on
    /// the peer. Does nothing if closing or already paused.
    pub fn pause_reading(&self) {
        if self.is_closing() {
            return;
        }
        self.inner.st.borrow_mut().reading_paused = true;
    }

    /// Calls `data_received` again (asyncio's `resume_reading`). Does
    /// nothing if closing or not paused.
    pub fn resume_reading(&self) {
        if self.is_closing() {
            return;
        }
        let was = std::mem::replace(&mut self.inner.st.borrow_mut().reading_paused, false);
        if was {
            self.inner.wake();
        }
    }

    /// Whether the transport is receiving (asyncio's `is_reading`): not
    /// paused and not closing.
    pub fn is_reading(&self) -> bool {
        self.inner.role != Role::WritePipe
            && !self.inner.st.borrow().reading_paused
            && !self.is_closing()
    }

    /// Sets the write buffer's water marks (asyncio's
    /// `set_write_buffer_limits`): with only `high`, low is `high / 4`; with
    /// only `low`, high is `4 * low`; with neither, 64 KiB and 16 KiB. The
    /// protocol is told `pause_writing` at once if the buffer is already
    /// above the new high-water mark.
    ///
    /// # Errors
    /// [`WriteBufferLimitsError`] if `high < low` (asyncio's `ValueError`).
    pub fn set_write_buffer_limits(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), WriteBufferLimitsError> {
        self.inner.conn.set_limits_from(high, low)?;
        self.inner.maybe_pause();
        self.inner.wake();
        Ok(())
    }

    /// The water marks, `(low, high)` (asyncio's `get_write_buffer_limits`).
    pub fn get_write_buffer_limits(&self) -> (usize, usize) {
        self.inner.conn.limits()
    }

    /// Bytes buffered and not yet sent (asyncio's `get_write_buffer_size`).
    pub fn get_write_buffer_size(&self) -> usize {
        self.inner.conn.buffer_size()
    }

    /// asyncio's `get_extra_info(name)`: `"peername"` and `"sockname"` (an
    /// [`ExtraInfo::Address`]), `"socket"` for a socket and `"pipe"` for a
    /// pipe (an [`ExtraInfo::Fd`]); `None` for another name or once the
    /// connection is released.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        let pipe = self.inner.role != Role::Socket;
        match name {
            "peername" if !pipe => self.peername().ok().map(ExtraInfo::Address),
            "sockname" if !pipe => self.sockname().ok().map(ExtraInfo::Address),
            "socket" if !pipe => self.inner.conn.raw_fd().map(ExtraInfo::Fd),
            "pipe" if pipe => self.inner.conn.raw_fd().map(ExtraInfo::Fd),
            _ => None,
        }
    }

    /// The peer's address (`get_extra_info("peername")`).
    ///
    /// # Errors
    /// Once the connection is released; for a pipe.
    pub fn peername(&self) -> io::Result<StreamAddr> {
        self.inner.conn.with_sock(|s| s.peer_addr())
    }

    /// The local address (`get_extra_info("sockname")`).
    ///
    /// # Errors
    /// As [`peername`](Self::peername).
    pub fn sockname(&self) -> io::Result<StreamAddr> {
        self.inner.conn.with_sock(|s| s.local_addr())
    }

    /// Hands the connection to another protocol (asyncio's
    /// `transport.set_protocol`): every call from the next one on
    /// (`data_received`, `eof_received`, `pause_writing`, `connection_lost`…)
    /// goes to `protocol`, whose `connection_made` is not called, as in
    /// asyncio. It may be called from inside the old protocol's own method.
    /// Once `connection_lost` has run there is nothing left to hand over:
    /// the protocol is not kept (keeping it would keep alive, through the
    /// transport it usually holds, a connection that is gone).
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// use asyncio::{Protocol, Transport};
    ///
    /// #[derive(Default)]
    /// struct Log(Vec<u8>);
    /// impl Protocol for Log {
    ///     fn data_received(&mut self, data: &[u8]) { self.0.extend_from_slice(data) }
    /// }
    ///
    /// asyncio::run(async {
    ///     let (a, b) = std::os::unix::net::UnixStream::pair()?;
    ///     let (transport, first) = asyncio::connect_accepted_socket(Log::default, a)?;
    ///     let second = Rc::new(RefCell::new(Log::default()));
    ///     transport.set_protocol(second.clone());
    ///     std::io::Write::write_all(&mut &b, b"after")?;
    ///     while second.borrow().0.is_empty() {
    ///         asyncio::sleep(std::time::Duration::from_millis(1)).await;
    ///     }
    ///     assert!(first.borrow().0.is_empty());
    ///     transport.close();
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    pub fn set_protocol<P: Protocol>(&self, protocol: ProtocolCell<P>) {
        let protocol: ProtoCell = protocol;
        let replaced = if self.inner.st.borrow().lost {
            Some(protocol)
        } else {
            self.inner.proto.borrow_mut().replace(protocol)
        };
        // The old protocol (or the refused one) may be the last handle on a
        // user value: dropped through the gate, outside the borrows.
        if let Some(p) = replaced
            && let Err(e) = asyncio_core::call_user(move || drop(p))
        {
            report("a protocol panicked when dropped", Some(e));
        }
    }

    /// The protocol that receives the transport's events (asyncio's
    /// `transport.get_protocol()`), type-erased; `None` once
    /// `connection_lost` has run. The creator also has it typed: the
    /// [`ProtocolCell`] that `create_connection` returned.
    pub fn get_protocol(&self) -> Option<Rc<RefCell<dyn Protocol>>> {
        self.inner.proto.borrow().clone()
    }
}

/// Upgrades the connection of `transport` to TLS (asyncio's
/// `loop.start_tls(transport, protocol, sslcontext, server_side=...,
/// server_hostname=...)`), for protocols such as SMTP's or IMAP's STARTTLS:
/// reading pauses, the TLS handshake runs over the connection (as a client
/// with a [`ClientTls`](crate::ClientTls), as a server with a
/// [`ServerTls`](crate::ServerTls)), then `protocol` receives the
/// connection's events in clear and its writes are encrypted.
///
/// As asyncio, `protocol`'s `connection_made` is not called, and the protocol
/// should stop using the old handle; unlike asyncio the returned transport is
/// the same transport (a clone), now speaking TLS, rather than a new object
/// layered on the old one. Bytes the peer sent before the upgrade and the
/// driver already delivered stay delivered to the old protocol, so a peer
/// must wait for the go-ahead before its handshake, as STARTTLS peers do.
///
/// # Errors
/// `Unsupported` for a pipe's transport;
/// [`TlsError::AlreadyTls`](crate::TlsError::AlreadyTls)
/// on a TLS connection; a closed transport; the handshake's failure, after
/// which the connection is closed and the old protocol gets
/// `connection_lost`.
#[cfg(feature = "tls")]
pub async fn start_tls<P: Protocol>(
    transport: &Transport,
    protocol: ProtocolCell<P>,
    tls: impl Into<crate::tls::TlsContext>,
    options: &crate::StartTlsOptions,
) -> io::Result<Transport> {
    use crate::tls::{TlsError, TlsSession};
    let inner = &transport.inner;
    if inner.role != Role::Socket {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "start_tls needs a socket's transport, not a pipe's",
        ));
    }
    if inner.conn.is_tls() {
        return Err(TlsError::AlreadyTls.into());
    }
    if transport.is_closing() {
        return Err(io::Error::new(
            io::ErrorKind::NotConnected,
            "start_tls on a transport that is closing",
        ));
    }
    let opts = &options.tls;
    let session = TlsSession::new(
        &tls.into(),
        opts.server_hostname.as_deref(),
        opts.shutdown_timeout(),
        opts.suppress_ragged_eofs,
    )?;
    let was_reading = transport.is_reading();
    transport.pause_reading();
    if let Err(e) = inner.conn.install_tls(session, &[], false) {
        inner.conn.abort();
        inner.wake();
        return Err(e);
    }
    if let Err(e) = inner.conn.handshake(opts.handshake_timeout()).await {
        // The connection is closed: the driver tells the old protocol.
        inner.wake();
        return Err(e);
    }
    transport.set_protocol(protocol);
    if was_reading {
        transport.resume_reading();
    }
    Ok(transport.clone())
}

impl Transport {
    /// The connection core, for `sendfile`.
    pub(crate) fn conn(&self) -> &Rc<Conn> {
        &self.inner.conn
    }

    /// Whether this is a socket's transport (not a pipe's).
    pub(crate) fn is_socket(&self) -> bool {
        self.inner.role == Role::Socket
    }
}

impl Inner {
    fn wake(&self) {
        let w = self.st.borrow().waker.clone();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Calls the protocol through the gate.
    fn call<R>(&self, f: impl FnOnce(&mut dyn Protocol) -> R) -> Call<R> {
        let Some(p) = self.proto.borrow().clone() else {
            return Call::Gone;
        };
        let Ok(mut guard) = p.try_borrow_mut() else {
            return Call::Busy;
        };
        let proto: &mut dyn Protocol = &mut *guard;
        match asyncio_core::call_user(move || f(proto)) {
            Ok(r) => Call::Done(r),
            Err(e) => Call::Panicked(e),
        }
    }

    /// A fatal error of the protocol (asyncio's `_fatal_error`): reported,
    /// and the connection released with the panic as its error.
    fn fatal(&self, method: &str, panic: PanicError) {
        report(
            &format!("Fatal error: protocol.{method}() call failed"),
            Some(panic.clone()),
        );
        self.conn.fail(io::Error::other(panic));
    }

    /// The write buffer crossed the high-water mark: tell the protocol
    /// (asyncio's `_maybe_pause_protocol`).
    fn maybe_pause(&self) {
        {
            let mut st = self.st.borrow_mut();
            if st.writing_paused || !self.conn.is_paused() || self.conn.is_closed() {
                return;
            }
            st.writing_paused = true;
            st.pause_owed = true;
        }
        self.deliver_owed_pause();
    }

    fn deliver_owed_pause(&self) {
        if !self.st.borrow().pause_owed {
            return;
        }
        match self.call(|p| p.pause_writing()) {
            Call::Busy => {
                // Inside one of the protocol's methods: the driver calls it
                // when that method returns (it looks after each call it
                // makes). If user code holds the protocol borrowed across an
                // await instead, the driver looks again once it may be free.
                let waker = self.st.borrow().waker.clone();
                if let Some(w) = waker {
                    self.retry.arm(&w);
                }
                return;
            }
            Call::Panicked(e) => report("protocol.pause_writing() failed", Some(e)),
            Call::Done(()) | Call::Gone => {}
        }
        self.st.borrow_mut().pause_owed = false;
    }

    /// The write buffer is back at the low-water mark: tell the protocol
    /// (asyncio's `_maybe_resume_protocol`).
    fn poll_resume(&self, cx: &mut Context<'_>) {
        if !self.st.borrow().writing_paused || self.conn.poll_unpaused(cx).is_pending() {
            return;
        }
        if self.conn.is_closed() {
            return;
        }
        match self.call(|p| p.resume_writing()) {
            Call::Busy => {
                self.retry.arm(cx.waker());
                return;
            }
            Call::Panicked(e) => report("protocol.resume_writing() failed", Some(e)),
            Call::Done(()) | Call::Gone => {}
        }
        self.st.borrow_mut().writing_paused = false;
    }

    /// Calls `connection_lost` once and lets the protocol go. `false` if the
    /// protocol is busy (the driver comes back).
    fn lose(&self) -> bool {
        let made = {
            let st = self.st.borrow();
            if st.lost {
                return true;
            }
            st.made
        };
        if made {
            let err = self.conn.error();
            match self.call(move |p| p.connection_lost(err)) {
                Call::Busy => return false,
                Call::Panicked(e) => report("protocol.connection_lost() failed", Some(e)),
                Call::Done(()) | Call::Gone => {}
            }
        }
        self.st.borrow_mut().lost = true;
        let proto = self.proto.borrow_mut().take();
        if let Some(p) = proto
            && let Err(e) = asyncio_core::call_user(move || drop(p))
        {
            report("a protocol panicked when dropped", Some(e));
        }
        true
    }

    /// The driver task's body.
    fn poll_drive(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<()> {
        {
            let mut st = self.st.borrow_mut();
            match &st.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => st.waker = Some(cx.waker().clone()),
            }
        }
        self.deliver_owed_pause();
        let mut budget = READ_BUDGET;
        loop {
            if self.conn.is_closed() {
                return if self.lose() {
                    Poll::Ready(())
                } else {
                    // The protocol is borrowed: connection_lost once it is free.
                    self.retry.arm(cx.waker());
                    Poll::Pending
                };
            }
            self.poll_resume(cx);
            if self.role == Role::WritePipe
                && !self.conn.is_closing()
                && self.conn.poll_read_ready(cx).is_ready()
            {
                // The write end of a pipe turns "readable" (EPOLLERR) only
                // when its reader is gone (asyncio's write pipe transport
                // watches for it the same way): with data still buffered
                // that is a broken pipe, without it a plain end.
                if self.conn.buffer_size() > 0 {
                    self.conn.fail(io::Error::from(io::ErrorKind::BrokenPipe));
                } else {
                    self.conn.abort();
                }
                continue;
            }
            let readable = {
                let st = self.st.borrow();
                self.role != Role::WritePipe
                    && !st.reading_paused
                    && !st.read_done
                    && !self.conn.is_closing()
            };
            if !readable || self.read_once(cx, buf).is_pending() {
                // Idle until the next wake-up: no buffer held meanwhile.
                *buf = Vec::new();
                break;
            }
            self.deliver_owed_pause();
            budget -= 1;
            if budget == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        // Woken when the connection is released.
        if self.conn.poll_closed(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// One read and the protocol call it makes. The protocol stays
    /// borrowed from the read to its call, so nothing else can call it in
    /// between; what follows a failure (a report, releasing the
    /// connection) runs after the borrow ends.
    fn read_once(&self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<()> {
        let Some(p) = self.proto.borrow().clone() else {
            return Poll::Pending;
        };
        let Ok(mut guard) = p.try_borrow_mut() else {
            // Borrowed across an await: read (and deliver) once it is free.
            self.retry.arm(cx.waker());
            return Poll::Pending;
        };
        let outcome = if guard.__as_buffered().is_some() {
            // Only ask a BufferedProtocol for room when a read would make
            // progress.
            if self.conn.poll_read_ready(cx).is_pending() {
                return Poll::Pending;
            }
            let proto: &mut dyn Protocol = &mut *guard;
            let got = asyncio_core::call_user(move || {
                proto
                    .__as_buffered()
                    .map(|b| b.get_buffer(READ_SIZE))
                    .unwrap_or_default()
            });
            match got {
                Err(e) => Outcome::Fatal("get_buffer", e),
                Ok([]) => Outcome::EmptyBuffer,
                Ok(room) => match self.conn.poll_read(cx, room) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => Outcome::Eof,
                    Poll::Ready(Ok(n)) => {
                        let proto: &mut dyn Protocol = &mut *guard;
                        match asyncio_core::call_user(move || {
                            if let Some(b) = proto.__as_buffered() {
                                b.buffer_updated(n);
                            }
                        }) {
                            Ok(()) => Outcome::Delivered,
                            Err(e) => Outcome::Fatal("buffer_updated", e),
                        }
                    }
                    Poll::Ready(Err(e)) => Outcome::Failed(e),
                },
            }
        } else {
            if buf.is_empty() {
                buf.resize(FIRST_READ, 0);
            }
            match self.conn.poll_read(cx, buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => Outcome::Eof,
                Poll::Ready(Ok(n)) => {
                    if n == buf.len() && buf.len() < MAX_READ {
                        // A full read: more is waiting, read more at once.
                        buf.resize(buf.len() * 2, 0);
                    }
                    let data = &buf[..n];
                    let proto: &mut dyn Protocol = &mut *guard;
                    match asyncio_core::call_user(move || proto.data_received(data)) {
                        Ok(()) => Outcome::Delivered,
                        Err(e) => Outcome::Fatal("data_received", e),
                    }
                }
                Poll::Ready(Err(e)) => Outcome::Failed(e),
            }
        };
        // The end of the stream, unless the connection began closing
        // (its reads then end too; the driver sees the close next).
        let outcome = match outcome {
            Outcome::Eof if !self.conn.is_closing() => {
                self.st.borrow_mut().read_done = true;
                let proto: &mut dyn Protocol = &mut *guard;
                match asyncio_core::call_user(move || proto.eof_received()) {
                    Ok(keep_open) if keep_open && self.role == Role::Socket => Outcome::Delivered,
                    // asyncio's read pipe transport closes whatever
                    // eof_received returns.
                    Ok(_) => Outcome::CloseAfterEof,
                    Err(e) => Outcome::Fatal("eof_received", e),
                }
            }
            other => other,
        };
        drop(guard);
        match outcome {
            Outcome::Delivered | Outcome::Eof => {}
            Outcome::CloseAfterEof => self.conn.close(),
            Outcome::Fatal(method, e) => self.fatal(method, e),
            Outcome::EmptyBuffer => {
                report(
                    "Fatal error: protocol.get_buffer() returned an empty buffer",
                    None,
                );
                self.conn.fail(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "get_buffer() returned an empty buffer",
                ));
            }
            Outcome::Failed(e) => {
                if !self.conn.is_closed() {
                    self.conn.fail(e);
                }
            }
        }
        Poll::Ready(())
    }
}

/// What one read came to, acted on once the protocol is no longer borrowed.
enum Outcome {
    Delivered,
    Eof,
    CloseAfterEof,
    Fatal(&'static str, PanicError),
    EmptyBuffer,
    Failed(io::Error),
}

/// Lets the protocol go if the driver ends without `connection_lost` (its
/// task was cancelled: the loop closed), so the protocol's clone of the
/// transport does not keep both alive for ever.
struct DriverGuard(Rc<Inner>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if self.0.st.borrow().lost {
            return;
        }
        self.0.st.borrow_mut().lost = true;
        self.0.conn.abort();
        let proto = self.0.proto.borrow_mut().take();
        if let Some(p) = proto {
            let _ = asyncio_core::call_user(move || drop(p));
        }
    }
}

/// Reports to the running loop's exception handler.
pub(crate) fn report(message: &str, panic: Option<PanicError>) {
    if let Ok(lp) = asyncio_core::get_running_loop() {
        let mut ctx = asyncio_core::ExceptionContext::new(message);
        ctx.panic = panic;
        lp.call_exception_handler(&ctx);
    }
}
