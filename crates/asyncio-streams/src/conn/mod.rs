//! One connection's shared state: the socket and its readiness registration,
//! and the write side (asyncio's transport): the write buffer, flow control,
//! the background flusher, and closing.
//!
//! Writes go to the socket at once when nothing is buffered; what the socket
//! does not take is buffered and a flusher task, spawned when the buffer
//! becomes non-empty and ending when it is empty again, writes it whenever the
//! socket is writable. The flusher holds the connection alive, so data written
//! and then closed (or dropped) is still sent, as long as the loop runs.
//! `close()` with data buffered lets the flusher finish and then releases the
//! socket; `abort()` and connection errors release it at once.

use std::cell::RefCell;
use std::io;
use std::net::Shutdown;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use asyncio_core::IoRegistration;

use crate::error::{StoredError, WriterClosedError};
use crate::sock::Sock;

#[cfg(feature = "tls")]
mod tls;

/// asyncio's default high-water mark of a transport's write buffer.
pub(crate) const DEFAULT_HIGH: usize = 64 * 1024;

/// A buffer that grew past this is given back to the allocator once empty, so
/// an idle connection holds little memory.
const KEEP_CAPACITY: usize = 64 * 1024;

/// The socket and its registration. The registration is declared first so it
/// leaves `epoll` before the socket closes.
struct Io {
    reg: IoRegistration,
    sock: Sock,
}

struct State {
    buf: Vec<u8>,
    /// Bytes of `buf` already written.
    pos: usize,
    high: usize,
    low: usize,
    /// Above the high-water mark; drains wait until the low-water mark.
    paused: bool,
    /// `close()` or `abort()` was called (or the connection was lost).
    closing: bool,
    eof_requested: bool,
    eof_sent: bool,
    /// The socket is released.
    closed: bool,
    /// Boxed: set at most once, on a failure, and larger than every other
    /// field together (its message, and with TLS the typed error); every
    /// idle connection would carry its room.
    error: Option<Box<StoredError>>,
    misuse: Option<WriterClosedError>,
    flusher: bool,
    /// Tasks in `drain`, `flush` or `wait_closed`.
    waiters: Vec<Waker>,
    /// The reader's last waker, woken when the connection closes (the
    /// registration that holds it is then dropped).
    read_waker: Option<Waker>,
    flush_waker: Option<Waker>,
    /// The server that counts this connection, and its key there: told
    /// once when the socket is released. (Not a boxed closure: that would be
    /// one more allocation for every connection a server accepts.)
    on_close: Option<(Weak<crate::server::Inner>, usize)>,
    /// A transport's `sendfile` writes straight into the socket: other
    /// writes are refused meanwhile (asyncio's "sendfile is in progress").
    sendfile: bool,
}

impl State {
    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

fn add_waker(list: &mut Vec<Waker>, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

fn set_waker(slot: &mut Option<Waker>, w: &Waker) {
    match slot {
        Some(x) if x.will_wake(w) => {}
        _ => *slot = Some(w.clone()),
    }
}

pub(crate) struct Conn {
    io: RefCell<Option<Io>>,
    st: RefCell<State>,
    /// This connection, for the tasks it spawns (the flusher, a TLS
    /// shutdown) from paths that only have `&self`.
    me: Weak<Conn>,
    /// The TLS layer, once the connection speaks TLS: reads decrypt what
    /// the socket brings, writes encrypt into the write buffer.
    #[cfg(feature = "tls")]
    tls: RefCell<Option<Box<crate::tls::TlsSession>>>,
}

impl Conn {
    /// Marks a transport's `sendfile` as running (or not).
    pub(crate) fn set_sendfile(&self, on: bool) {
        self.st.borrow_mut().sendfile = on;
    }

    /// Whether a transport's `sendfile` is running.
    pub(crate) fn sendfile_active(&self) -> bool {
        self.st.borrow().sendfile
    }

    pub(crate) fn new(sock: Sock, reg: IoRegistration) -> Rc<Conn> {
        Rc::new_cyclic(|me| Conn {
            me: me.clone(),
            #[cfg(feature = "tls")]
            tls: RefCell::new(None),
            io: RefCell::new(Some(Io { reg, sock })),
            st: RefCell::new(State {
                buf: Vec::new(),
                pos: 0,
                high: DEFAULT_HIGH,
                low: DEFAULT_HIGH / 4,
                paused: false,
                closing: false,
                eof_requested: false,
                eof_sent: false,
                closed: false,
                error: None,
                misuse: None,
                flusher: false,
                waiters: Vec::new(),
                read_waker: None,
                flush_waker: None,
                on_close: None,
                sendfile: false,
            }),
        })
    }

    /// Registers the server to tell, once, when the socket is released (the
    /// server's count of its connections), with the connection's key there.
    pub(crate) fn set_on_close(&self, server: Weak<crate::server::Inner>, key: usize) {
        self.st.borrow_mut().on_close = Some((server, key));
    }

    pub(crate) fn with_sock<T>(&self, f: impl FnOnce(&Sock) -> io::Result<T>) -> io::Result<T> {
        match &*self.io.borrow() {
            Some(io) => f(&io.sock),
            None => Err(WriterClosedError::ConnectionLost.into()),
        }
    }

    // ----- reading -----

    /// Reads what the socket has into `buf`; `Ok(0)` at end of stream, and
    /// once the writer closed the connection (asyncio's reader then sees EOF).
    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        {
            let st = self.st.borrow();
            if st.closing || st.closed {
                return Poll::Ready(match &st.error {
                    Some(e) => Err(e.to_io()),
                    None => Ok(0),
                });
            }
        }
        #[cfg(feature = "tls")]
        if self.tls.borrow().is_some() {
            return self.poll_read_tls(cx, buf);
        }
        let guard = self.io.borrow();
        let Some(io) = guard.as_ref() else {
            return Poll::Ready(Ok(0));
        };
        loop {
            // Only read when the loop says the socket is readable: a short
            // read cleared the readiness, which saves the read that would
            // return EAGAIN (the registration keeps the readiness once the
            // peer closed, so an end of file is never missed).
            match io.reg.poll_readable(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    set_waker(&mut self.st.borrow_mut().read_waker, cx.waker());
                    return Poll::Pending;
                }
            }
            match io.sock.read(buf) {
                Ok(n) => {
                    if n > 0 && n < buf.len() {
                        io.reg.clear_readable();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.reg.clear_readable(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    drop(guard);
                    let again = io_error_again(&e);
                    self.teardown(Some(e));
                    return Poll::Ready(Err(again));
                }
            }
        }
    }

    // ----- writing -----

    /// asyncio's `transport.write`: sends at once what the socket takes,
    /// buffers the rest and makes sure the flusher runs.
    pub(crate) fn write(&self, data: &[u8]) {
        {
            let mut st = self.st.borrow_mut();
            if st.eof_requested && !st.closed {
                st.misuse = Some(WriterClosedError::WriteAfterEof);
                return;
            }
            if st.closing {
                if st.error.is_none() && st.misuse.is_none() {
                    st.misuse = Some(WriterClosedError::WriteAfterClose);
                }
                return;
            }
            if data.is_empty() {
                return;
            }
        }
        #[cfg(feature = "tls")]
        if self.tls.borrow().is_some() {
            self.write_tls(data);
            return;
        }
        self.push_raw(data);
    }

    /// Sends bytes as they are (plaintext, or records already encrypted):
    /// at once what the socket takes, the rest through the flusher. Also
    /// while closing (a TLS close_notify); nothing once the socket is gone.
    fn push_raw(&self, mut data: &[u8]) {
        let mut st = self.st.borrow_mut();
        if st.closed || data.is_empty() {
            return;
        }
        if st.pending() == 0 {
            let guard = self.io.borrow();
            let io = guard
                .as_ref()
                .expect("a connection that is not closing has its socket");
            loop {
                match io.sock.write(data) {
                    Ok(n) => {
                        if n < data.len() {
                            // A short write: the socket's buffer is full.
                            io.reg.clear_writable();
                        }
                        data = &data[n..];
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.reg.clear_writable(),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        drop(guard);
                        drop(st);
                        self.teardown(Some(e));
                        return;
                    }
                }
                break;
            }
            drop(guard);
            if data.is_empty() {
                return;
            }
            st.buf.clear();
            st.pos = 0;
        } else if st.pos > 0 && st.pos >= st.buf.len() / 2 {
            let pos = st.pos;
            st.buf.drain(..pos);
            st.pos = 0;
        }
        st.buf.extend_from_slice(data);
        if st.pending() > st.high {
            st.paused = true;
        }
        if !st.flusher {
            st.flusher = true;
            drop(st);
            let me = self.me.upgrade().expect("a connection in use is alive");
            // No borrow is held: under an eager factory the flusher runs now.
            let spawned = asyncio_core::try_create_task(async move {
                std::future::poll_fn(|cx| me.poll_flusher(cx)).await;
            });
            if let Err(e) = spawned {
                self.teardown(Some(io::Error::other(e)));
            }
        }
    }

    /// The flusher task's body: writes the buffer out whenever the socket is
    /// writable, then performs a pending close or write_eof.
    fn poll_flusher(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut wake = Vec::new();
        let outcome = loop {
            let mut st = self.st.borrow_mut();
            if st.closed {
                st.flusher = false;
                return Poll::Ready(());
            }
            if st.pending() == 0 {
                st.flusher = false;
                st.pos = 0;
                st.buf.clear();
                if st.buf.capacity() > KEEP_CAPACITY {
                    st.buf = Vec::new();
                }
                wake.append(&mut st.waiters);
                break if st.closing {
                    Done::Close
                } else if st.eof_requested && !st.eof_sent {
                    st.eof_sent = true;
                    Done::Eof
                } else {
                    Done::Nothing
                };
            }
            let guard = self.io.borrow();
            let io = guard.as_ref().expect("an open connection has its socket");
            // Write only when the loop says the socket is writable (a short
            // write cleared it: the kernel buffer is full).
            match io.reg.poll_writable(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => break Done::Failed(e),
                Poll::Pending => {
                    set_waker(&mut st.flush_waker, cx.waker());
                    drop(st);
                    drop(guard);
                    wake.into_iter().for_each(Waker::wake);
                    return Poll::Pending;
                }
            }
            match io.sock.write(&st.buf[st.pos..]) {
                Ok(n) => {
                    if n < st.pending() {
                        // A short write: the socket's buffer is full.
                        io.reg.clear_writable();
                    }
                    st.pos += n;
                    if st.paused && st.pending() <= st.low {
                        st.paused = false;
                        wake.append(&mut st.waiters);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.reg.clear_writable(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Done::Failed(e),
            }
        };
        // Those who wait on this connection hear first, then teardown's hook
        // (a server's wait_closed), so a handler's own wait_closed returns
        // before its server's does.
        wake.into_iter().for_each(Waker::wake);
        match outcome {
            Done::Close => self.finish_close(),
            Done::Eof => {
                if let Err(e) = self.with_sock(|s| s.shutdown(Shutdown::Write)) {
                    self.teardown(Some(e));
                }
            }
            Done::Nothing => {}
            Done::Failed(e) => {
                self.st.borrow_mut().flusher = false;
                self.teardown(Some(e));
            }
        }
        Poll::Ready(())
    }

    /// asyncio's `drain`: ready unless the buffer is above the high-water
    /// mark, then until it is back down to the low-water mark.
    pub(crate) fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.st.borrow_mut();
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.to_io()));
        }
        if let Some(m) = st.misuse.take() {
            return Poll::Ready(Err(m.into()));
        }
        if st.closed {
            return Poll::Ready(Err(WriterClosedError::ConnectionLost.into()));
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        add_waker(&mut st.waiters, cx.waker());
        Poll::Pending
    }

    /// Ready once the whole buffer is written (`AsyncWrite::poll_flush`).
    pub(crate) fn poll_flushed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.st.borrow_mut();
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.to_io()));
        }
        if st.pending() == 0 {
            return Poll::Ready(Ok(()));
        }
        add_waker(&mut st.waiters, cx.waker());
        Poll::Pending
    }

    /// The connection's error, if it failed.
    pub(crate) fn error(&self) -> Option<io::Error> {
        self.st.borrow().error.as_deref().map(StoredError::to_io)
    }

    /// Whether `poll_write` should wait (the buffer is above the high-water mark).
    pub(crate) fn poll_write_room(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.st.borrow_mut();
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.to_io()));
        }
        if st.eof_requested {
            return Poll::Ready(Err(WriterClosedError::WriteAfterEof.into()));
        }
        if st.closing {
            return Poll::Ready(Err(WriterClosedError::WriteAfterClose.into()));
        }
        if !st.paused {
            return Poll::Ready(Ok(()));
        }
        add_waker(&mut st.waiters, cx.waker());
        Poll::Pending
    }

    /// Ready once the socket is released; the connection's error if it failed.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            return Poll::Ready(match &st.error {
                Some(e) => Err(e.to_io()),
                None => Ok(()),
            });
        }
        add_waker(&mut st.waiters, cx.waker());
        Poll::Pending
    }

    /// asyncio's `transport.close()`: no more reading; the buffer is flushed,
    /// then the socket is released.
    pub(crate) fn close(&self) {
        #[cfg(feature = "tls")]
        self.tls_close_notify();
        let (now, reader) = {
            let mut st = self.st.borrow_mut();
            if st.closing {
                return;
            }
            st.closing = true;
            (st.pending() == 0, st.read_waker.take())
        };
        if let Some(w) = reader {
            w.wake();
        }
        if now {
            self.finish_close();
        }
    }

    /// The end of a close once the buffer is flushed: a TLS connection
    /// first waits (up to its shutdown timeout) for the peer's close_notify,
    /// as asyncio's SSL transport does; then the socket is released.
    fn finish_close(&self) {
        #[cfg(feature = "tls")]
        if self.tls_shutdown_wait() {
            return;
        }
        self.teardown(None);
    }

    /// asyncio's `transport.abort()`: releases the socket now, dropping the
    /// buffer.
    pub(crate) fn abort(&self) {
        self.teardown(None);
    }

    /// asyncio's `transport.write_eof()`: shuts the write side once the buffer
    /// is flushed.
    pub(crate) fn write_eof(&self) -> io::Result<()> {
        let pipe = self.with_sock(|s| Ok(s.is_pipe())).unwrap_or(false);
        #[cfg(feature = "tls")]
        if !self.st.borrow().eof_requested {
            self.tls_close_notify();
        }
        {
            let mut st = self.st.borrow_mut();
            if st.closing || st.eof_requested {
                return Ok(());
            }
            st.eof_requested = true;
            if pipe {
                // A pipe has no half-close: the end of its data is closing it
                // once the buffer is flushed (asyncio's pipe transport does
                // the same).
                drop(st);
                self.close();
                return Ok(());
            }
            if st.pending() > 0 {
                return Ok(());
            }
            st.eof_sent = true;
        }
        self.with_sock(|s| s.shutdown(Shutdown::Write))
    }

    /// Ready when a read would make progress: the socket is readable, the
    /// connection is closing or gone, or TLS (whose reads decrypt what is
    /// already buffered) is on. A transport asks this before it asks a
    /// `BufferedProtocol` for a buffer, so `get_buffer` is called only when
    /// data (or the end) is there.
    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.st.borrow().closing {
            return Poll::Ready(());
        }
        #[cfg(feature = "tls")]
        if self.tls.borrow().is_some() {
            return Poll::Ready(());
        }
        let guard = self.io.borrow();
        let Some(io) = guard.as_ref() else {
            return Poll::Ready(());
        };
        match io.reg.poll_readable(cx) {
            Poll::Ready(_) => Poll::Ready(()),
            Poll::Pending => {
                set_waker(&mut self.st.borrow_mut().read_waker, cx.waker());
                Poll::Pending
            }
        }
    }

    /// Whether the write buffer is above the high-water mark (a transport's
    /// protocol is then told `pause_writing`).
    pub(crate) fn is_paused(&self) -> bool {
        self.st.borrow().paused
    }

    /// Ready once the write buffer is no longer above the high-water mark
    /// (it went down to the low-water mark) or the connection is gone.
    pub(crate) fn poll_unpaused(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.st.borrow_mut();
        if !st.paused || st.closed {
            return Poll::Ready(());
        }
        add_waker(&mut st.waiters, cx.waker());
        Poll::Pending
    }

    /// Whether the socket is released.
    pub(crate) fn is_closed(&self) -> bool {
        self.st.borrow().closed
    }

    /// Releases the socket now with `error` as the connection's outcome
    /// (a transport's fatal error: its protocol failed).
    pub(crate) fn fail(&self, error: io::Error) {
        self.teardown(Some(error));
    }

    /// The raw descriptor, while the socket is held.
    pub(crate) fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.io.borrow().as_ref().map(|io| io.sock.fd())
    }

    /// Whether TLS is on (its records must go through the write buffer).
    pub(crate) fn speaks_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.is_tls()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Runs `op` on the raw socket once it is writable, for a sendfile that
    /// bypasses the write buffer (which the caller flushed first).
    /// `WouldBlock` from `op` clears the readiness and waits again.
    #[cfg(target_os = "linux")]
    pub(crate) fn poll_write_raw<T>(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(std::os::fd::RawFd) -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        loop {
            let guard = self.io.borrow();
            let Some(io) = guard.as_ref() else {
                return Poll::Ready(Err(self
                    .error()
                    .unwrap_or_else(|| WriterClosedError::ConnectionLost.into())));
            };
            std::task::ready!(io.reg.poll_writable(cx))?;
            match op(io.sock.fd()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.reg.clear_writable(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.st.borrow().closing
    }

    pub(crate) fn buffer_size(&self) -> usize {
        self.st.borrow().pending()
    }

    pub(crate) fn limits(&self) -> (usize, usize) {
        let st = self.st.borrow();
        (st.low, st.high)
    }

    /// Sets the water marks from asyncio's `set_write_buffer_limits`
    /// arguments: with only `high`, low is `high / 4`; with only `low`, high
    /// is `4 * low`; with neither, the defaults. Shared by the stream writer
    /// and the transport.
    pub(crate) fn set_limits_from(
        &self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), crate::error::WriteBufferLimitsError> {
        let (high, low) = match (high, low) {
            (Some(h), Some(l)) => (h, l),
            (Some(h), None) => (h, h / 4),
            (None, Some(l)) => (l.saturating_mul(4), l),
            (None, None) => (DEFAULT_HIGH, DEFAULT_HIGH / 4),
        };
        if high < low {
            return Err(crate::error::WriteBufferLimitsError { high, low });
        }
        self.set_limits(high, low);
        Ok(())
    }

    pub(crate) fn set_limits(&self, high: usize, low: usize) {
        let wake = {
            let mut st = self.st.borrow_mut();
            st.high = high;
            st.low = low;
            if st.pending() > high {
                st.paused = true;
                Vec::new()
            } else if st.paused && st.pending() <= low {
                st.paused = false;
                std::mem::take(&mut st.waiters)
            } else {
                Vec::new()
            }
        };
        wake.into_iter().for_each(Waker::wake);
    }

    /// Releases the socket, records `error` (the first one wins), and wakes
    /// everyone who waits on this connection.
    fn teardown(&self, error: Option<io::Error>) {
        let (io, wakers, on_close) = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return;
            }
            st.closed = true;
            st.closing = true;
            st.paused = false;
            if let Some(e) = &error
                && st.error.is_none()
            {
                st.error = Some(Box::new(StoredError::new(e)));
            }
            st.buf = Vec::new();
            st.pos = 0;
            let mut wakers = std::mem::take(&mut st.waiters);
            wakers.extend(st.read_waker.take());
            wakers.extend(st.flush_waker.take());
            (self.io.borrow_mut().take(), wakers, st.on_close.take())
        };
        drop(io);
        wakers.into_iter().for_each(Waker::wake);
        if let Some((server, key)) = on_close {
            crate::server::Inner::client_closed(&server, key);
        }
    }
}

enum Done {
    Close,
    Eof,
    Nothing,
    Failed(io::Error),
}

fn io_error_again(e: &io::Error) -> io::Error {
    io::Error::new(e.kind(), e.to_string())
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some((server, key)) = self.st.get_mut().on_close.take() {
            crate::server::Inner::client_closed(&server, key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every open connection holds one `Conn` (in an `Rc`) for as long as it
    /// lives, idle or not: a field that only a failure fills (the stored
    /// error, its message and its TLS error) is boxed, not carried by all.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_connections_shared_state_carries_no_room_for_a_failure_it_has_not_had() {
        assert_eq!(std::mem::size_of::<Option<Box<StoredError>>>(), 8);
        // The TLS session's slot is 16 bytes more; the socket's registration
        // holds a pointer to the readiness it shares with the loop (8 bytes,
        // which spare the hot path a table look-up per read).
        let most = if cfg!(feature = "tls") { 224 } else { 208 };
        assert!(
            std::mem::size_of::<Conn>() <= most,
            "Conn grew to {} bytes",
            std::mem::size_of::<Conn>()
        );
    }
}
