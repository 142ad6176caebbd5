//! The TLS layer of a connection (asyncio's `SSLProtocol` between the
//! transport and the stream): reads feed the socket's bytes to rustls and
//! hand out the plaintext; writes encrypt into the connection's write
//! buffer, so flow control, `drain` and closing work as in plaintext.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use super::{Conn, io_error_again, set_waker};
use crate::error::WriterClosedError;
use crate::sock::Sock;
use crate::tls::{Feed, TlsError, TlsInfo, TlsSession};

/// A scratch buffer that grew past this is not kept.
const KEEP_SCRATCH: usize = 64 * 1024;

thread_local! {
    /// The records of one flush, before they go to the socket or the
    /// write buffer: one buffer per thread (a loop's connections take turns),
    /// so an idle connection holds none.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

struct SockRead<'a>(&'a Sock);

impl Read for SockRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

struct SockWrite<'a>(&'a Sock);

impl Write for SockWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Conn {
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.borrow().is_some()
    }

    pub(crate) fn tls_info(&self) -> Option<TlsInfo> {
        self.tls.borrow().as_ref().map(|s| s.info())
    }

    /// Makes the connection speak TLS from now on. `prefix` holds bytes
    /// already read from the socket (by the reader, before `start_tls`):
    /// they are the start of the peer's TLS stream; `eof` says the socket
    /// already ended.
    pub(crate) fn install_tls(
        &self,
        mut session: TlsSession,
        prefix: &[u8],
        eof: bool,
    ) -> io::Result<()> {
        if self.is_tls() {
            return Err(TlsError::AlreadyTls.into());
        }
        if self.st.borrow().closing {
            return Err(WriterClosedError::ConnectionLost.into());
        }
        let mut rest = prefix;
        while !rest.is_empty() {
            let mut feed = Feed {
                inner: &mut rest,
                records: &mut session.records,
                short: false,
            };
            if session.conn.read_tls(&mut feed)? == 0 {
                // rustls takes nothing more (the peer's close_notify came).
                break;
            }
            if let Err(e) = session.conn.process_new_packets() {
                return Err(session.error(e).into());
            }
        }
        if eof {
            session.conn.read_tls(&mut io::empty())?;
            session.eof = true;
        }
        *self.tls.borrow_mut() = Some(Box::new(session));
        self.flush_tls_output();
        Ok(())
    }

    /// Sends what rustls has to send (handshake messages, records, alerts):
    /// straight to the socket while the write buffer is empty, the rest
    /// through the buffer and its flusher.
    fn flush_tls_output(&self) {
        if let Err(e) = self.write_tls_direct() {
            self.teardown(Some(e));
            return;
        }
        let out = {
            let mut tls = self.tls.borrow_mut();
            let Some(s) = tls.as_mut() else { return };
            if !s.conn.wants_write() {
                return;
            }
            // Taken, not borrowed: a flush inside this one (the flusher
            // spawned by push_raw, run eagerly) finds an empty one.
            let mut out = SCRATCH.take();
            while s.conn.wants_write() {
                // Writing into a Vec cannot fail.
                if s.conn.write_tls(&mut out).is_err() {
                    break;
                }
            }
            out
        };
        self.push_raw(&out);
        let mut out = out;
        if out.capacity() <= KEEP_SCRATCH {
            out.clear();
            SCRATCH.set(out);
        }
    }

    /// Writes rustls's records to the socket while nothing is buffered ahead
    /// of them, until rustls has no more or the socket is full.
    fn write_tls_direct(&self) -> io::Result<()> {
        let st = self.st.borrow();
        if st.closed || st.pending() > 0 {
            return Ok(());
        }
        let guard = self.io.borrow();
        let Some(io) = guard.as_ref() else {
            return Ok(());
        };
        let mut tls = self.tls.borrow_mut();
        let Some(s) = tls.as_mut() else {
            return Ok(());
        };
        while s.conn.wants_write() {
            match s.conn.write_tls(&mut SockWrite(&io.sock)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is full: the rest goes through the buffer.
                    io.reg.clear_writable();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `write` on a TLS connection: encrypt, then send the records.
    pub(super) fn write_tls(&self, data: &[u8]) {
        let res = match self.tls.borrow_mut().as_mut() {
            Some(s) => s.conn.writer().write_all(data),
            None => Ok(()),
        };
        match res {
            Ok(()) => self.flush_tls_output(),
            Err(e) => self.teardown(Some(e)),
        }
    }

    /// Sends close_notify once (`write_eof` and `close`).
    pub(super) fn tls_close_notify(&self) {
        {
            let st = self.st.borrow();
            if st.closing {
                return;
            }
        }
        {
            let mut tls = self.tls.borrow_mut();
            let Some(s) = tls.as_mut() else { return };
            if s.close_notify_sent {
                return;
            }
            s.close_notify_sent = true;
            s.conn.send_close_notify();
        }
        self.flush_tls_output();
    }

    /// Reads one chunk of ciphertext from the socket into rustls and
    /// processes it; sends whatever the processing produced. `Ready(Ok)`
    /// once something was read (or the socket ended: the session's `eof`).
    fn poll_ingest(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let guard = self.io.borrow();
        let Some(io) = guard.as_ref() else {
            return Poll::Ready(Err(WriterClosedError::ConnectionLost.into()));
        };
        let mut tls = self.tls.borrow_mut();
        let s = tls.as_mut().expect("a TLS read has its session");
        if s.eof {
            return Poll::Ready(Ok(()));
        }
        loop {
            match io.reg.poll_readable(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    set_waker(&mut self.st.borrow_mut().read_waker, cx.waker());
                    return Poll::Pending;
                }
            }
            let mut feed = Feed {
                inner: SockRead(&io.sock),
                records: &mut s.records,
                short: false,
            };
            match s.conn.read_tls(&mut feed) {
                Ok(0) => {
                    s.eof = true;
                    break;
                }
                Ok(_) => {
                    if feed.short {
                        io.reg.clear_readable();
                    }
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => io.reg.clear_readable(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    drop(tls);
                    drop(guard);
                    let again = io_error_again(&e);
                    self.teardown(Some(e));
                    return Poll::Ready(Err(again));
                }
            }
        }
        let failed = match s.conn.process_new_packets() {
            Ok(state) => {
                if state.peer_has_closed() {
                    s.peer_closed = true;
                }
                None
            }
            Err(e) => Some(s.error(e)),
        };
        drop(tls);
        drop(guard);
        // Handshake messages, or the alert that tells the peer why it failed.
        self.flush_tls_output();
        if let Some(e) = failed {
            self.teardown(Some(e.clone().into()));
            return Poll::Ready(Err(e.into()));
        }
        Poll::Ready(Ok(()))
    }

    /// `poll_read` on a TLS connection: plaintext from rustls, reading
    /// ciphertext from the socket while rustls has none.
    pub(super) fn poll_read_tls(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            {
                let mut tls = self.tls.borrow_mut();
                let s = tls.as_mut().expect("a TLS read has its session");
                match s.conn.reader().read(buf) {
                    // 0: the peer's close_notify, a clean end of stream.
                    Ok(n) => return Poll::Ready(Ok(n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(s.ragged_eof());
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
                if s.eof {
                    return Poll::Ready(s.ragged_eof());
                }
            }
            std::task::ready!(self.poll_ingest(cx))?;
        }
    }

    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some(e) = self.error() {
                return Poll::Ready(Err(e));
            }
            if self.st.borrow().closed {
                return Poll::Ready(Err(WriterClosedError::ConnectionLost.into()));
            }
            {
                let tls = self.tls.borrow();
                let s = tls.as_ref().expect("a handshake has its session");
                if !s.conn.is_handshaking() {
                    return Poll::Ready(Ok(()));
                }
                if s.eof {
                    return Poll::Ready(Err(TlsError::HandshakeEof.into()));
                }
            }
            std::task::ready!(self.poll_ingest(cx))?;
        }
    }

    /// Runs the handshake to its end, or aborts the connection when it
    /// fails or takes longer than `timeout`.
    pub(crate) async fn handshake(&self, timeout: Duration) -> io::Result<()> {
        let mut sleep = pin!(asyncio_core::sleep(timeout));
        let res = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_handshake(cx) {
                return Poll::Ready(r);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(TlsError::HandshakeTimeout(timeout).into()));
            }
            Poll::Pending
        })
        .await;
        if let Err(e) = &res {
            let copy = match TlsError::from_io(e) {
                Some(t) => t.clone().into(),
                None => io_error_again(e),
            };
            self.teardown(Some(copy));
        }
        res
    }

    /// After close: waits for the peer's close_notify (or its end of stream)
    /// for up to the shutdown timeout in a task of its own, then releases
    /// the socket. `false` when there is nothing to wait for.
    pub(super) fn tls_shutdown_wait(&self) -> bool {
        let timeout = match self.tls.borrow().as_ref() {
            Some(s) if !s.peer_done() && !s.shutdown_timeout.is_zero() => s.shutdown_timeout,
            _ => return false,
        };
        if self.st.borrow().closed {
            return false;
        }
        let Some(me) = self.me.upgrade() else {
            return false;
        };
        asyncio_core::try_create_task(async move {
            let mut sleep = pin!(asyncio_core::sleep(timeout));
            std::future::poll_fn(|cx| {
                if me.poll_peer_closed(cx).is_ready() {
                    return Poll::Ready(());
                }
                sleep.as_mut().poll(cx)
            })
            .await;
            me.teardown(None);
        })
        .is_ok()
    }

    /// Reads and discards until the peer's close_notify, its end of
    /// stream, or an error.
    fn poll_peer_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut sink = [0u8; 1024];
        loop {
            {
                let mut tls = self.tls.borrow_mut();
                let Some(s) = tls.as_mut() else {
                    return Poll::Ready(());
                };
                loop {
                    match s.conn.reader().read(&mut sink) {
                        Ok(0) => return Poll::Ready(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return Poll::Ready(()),
                    }
                }
                if s.peer_done() {
                    return Poll::Ready(());
                }
            }
            if std::task::ready!(self.poll_ingest(cx)).is_err() {
                return Poll::Ready(());
            }
        }
    }
}
