//! `StreamWriter`: asyncio's writing half of a connection.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::conn::Conn;
use crate::error::WriteBufferLimitsError;
use crate::sock::StreamAddr;

/// The writing half of a connection (asyncio's `StreamWriter`).
///
/// [`write`](Self::write) never waits: it sends what the socket takes at once
/// and buffers the rest, which a background task flushes whenever the socket
/// is writable. [`drain`](Self::drain) is the flow control: it waits only
/// while the buffer is above its high-water mark (64 KiB by default), until it
/// is back down to the low-water mark (16 KiB).
///
/// Closing — [`close`](Self::close), or dropping the writer — flushes what is
/// buffered and then releases the socket; data written before is not lost as
/// long as the loop keeps running. [`abort`](Self::abort) drops the buffer.
///
/// Also implements `futures_io::AsyncWrite` (`poll_close` flushes and shuts
/// the write side, as [`write_eof`](Self::write_eof)).
///
/// ```
/// use asyncio::{open_connection, start_server, StreamReader, StreamWriter};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let server = start_server(|mut r: StreamReader, mut w: StreamWriter| async move {
///         let data = r.read_to_eof().await.unwrap_or_default();
///         w.write(&data);
///         w.close();
///     }, "127.0.0.1", 0).await?;
///     let port = server.local_addr().expect("bound to an IP address").port();
///     let (mut reader, mut writer) = open_connection("127.0.0.1", port).await?;
///     writer.writelines([&b"one "[..], b"two"]);
///     writer.drain().await?;
///     writer.write_eof()?; // the server's read_to_eof ends
///     assert_eq!(reader.read_to_eof().await?, b"one two");
///     writer.close();
///     writer.wait_closed().await?;
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
pub struct StreamWriter {
    conn: Rc<Conn>,
}

impl fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("buffered", &self.conn.buffer_size())
            .field("closing", &self.conn.is_closing())
            .finish_non_exhaustive()
    }
}

impl StreamWriter {
    pub(crate) fn new(conn: Rc<Conn>) -> Self {
        StreamWriter { conn }
    }

    /// Writes `data` (asyncio's `write`): sent at once if the socket takes it,
    /// otherwise buffered and flushed in the background. Never waits; follow
    /// with [`drain`](Self::drain) to respect flow control.
    ///
    /// A write after [`close`](Self::close) or [`write_eof`](Self::write_eof)
    /// is discarded and the next `drain` reports it
    /// ([`WriterClosedError`](crate::WriterClosedError)); after the
    /// connection failed, data is discarded and `drain` returns the failure.
    pub fn write(&mut self, data: &[u8]) {
        self.conn.write(data);
    }

    /// Writes each buffer in turn (asyncio's `writelines`).
    pub fn writelines<I>(&mut self, data: I)
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        for chunk in data {
            self.conn.write(chunk.as_ref());
        }
    }

    /// Waits until it is appropriate to write more (asyncio's `drain`): at
    /// once unless the buffer is above the high-water mark, otherwise until
    /// the flusher brought it down to the low-water mark.
    ///
    /// # Errors
    /// The connection's error (reset, broken pipe); a
    /// [`WriterClosedError`](crate::WriterClosedError) after a discarded write
    /// or once the connection is closed (`ConnectionReset`, as asyncio's
    /// "Connection lost").
    pub async fn drain(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.conn.poll_drain(cx)).await
    }

    /// Whether [`write_eof`](Self::write_eof) is supported: always, for TCP
    /// and Unix sockets and for a subprocess's stdin (where it closes the
    /// pipe once the buffer is flushed).
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes the write side once the buffer is flushed (asyncio's
    /// `write_eof`, a TCP half-close); reading goes on. Does nothing if
    /// closing or already called.
    ///
    /// # Errors
    /// The OS error of `shutdown` when the buffer is empty.
    pub fn write_eof(&mut self) -> io::Result<()> {
        self.conn.write_eof()
    }

    /// Closes the stream (asyncio's `close`): no more reading; what is
    /// buffered is flushed in the background, then the socket is released.
    /// Follow with [`wait_closed`](Self::wait_closed). Idempotent.
    pub fn close(&self) {
        self.conn.close();
    }

    /// Closes the stream at once, dropping what is buffered (asyncio's
    /// `transport.abort()`).
    pub fn abort(&self) {
        self.conn.abort();
    }

    /// Whether the stream is closed or closing (asyncio's `is_closing`).
    pub fn is_closing(&self) -> bool {
        self.conn.is_closing()
    }

    /// Waits until the stream is closed (asyncio's `wait_closed`): after
    /// [`close`](Self::close), once the buffer is flushed and the socket
    /// released.
    ///
    /// # Errors
    /// The error that ended the connection, if one did.
    pub async fn wait_closed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.conn.poll_closed(cx)).await
    }

    /// Bytes buffered and not yet written (asyncio's
    /// `transport.get_write_buffer_size()`).
    pub fn write_buffer_size(&self) -> usize {
        self.conn.buffer_size()
    }

    /// The `(low, high)` water marks (asyncio's
    /// `transport.get_write_buffer_limits()`).
    pub fn write_buffer_limits(&self) -> (usize, usize) {
        self.conn.limits()
    }

    /// Sets the flow-control water marks (asyncio's
    /// `transport.set_write_buffer_limits`): with only `high`, low is
    /// `high / 4`; with only `low`, high is `4 * low`; with neither, 64 KiB
    /// and 16 KiB.
    ///
    /// ```
    /// # asyncio::EventLoop::new().run_until_complete(async {
    /// # let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await.unwrap();
    /// # let port = server.local_addr().unwrap().port();
    /// let (_reader, mut writer) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
    /// writer.set_write_buffer_limits(Some(1024), None).unwrap();
    /// assert_eq!(writer.write_buffer_limits(), (256, 1024));
    /// assert!(writer.set_write_buffer_limits(Some(1), Some(2)).is_err());
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`WriteBufferLimitsError`] if `high < low`.
    pub fn set_write_buffer_limits(
        &mut self,
        high: Option<usize>,
        low: Option<usize>,
    ) -> Result<(), WriteBufferLimitsError> {
        self.conn.set_limits_from(high, low)
    }

    /// The remote address (asyncio's `get_extra_info('peername')`).
    ///
    /// # Errors
    /// Once the connection is closed.
    pub fn peer_addr(&self) -> io::Result<StreamAddr> {
        self.conn.with_sock(|s| s.peer_addr())
    }

    /// The local address (asyncio's `get_extra_info('sockname')`).
    ///
    /// # Errors
    /// Once the connection is closed.
    pub fn local_addr(&self) -> io::Result<StreamAddr> {
        self.conn.with_sock(|s| s.local_addr())
    }

    /// Upgrades the connection to TLS (asyncio 3.11's `StreamWriter.start_tls`):
    /// SMTP's and IMAP's STARTTLS, PostgreSQL's SSLRequest, an HTTP CONNECT
    /// tunnel. A [`ClientTls`](crate::ClientTls) makes this end the TLS
    /// client (give [`StartTlsOptions::server_hostname`](crate::StartTlsOptions::server_hostname)),
    /// a [`ServerTls`](crate::ServerTls) the server. Returns once the
    /// handshake is done; from then on `reader` and `self` read and write
    /// plaintext through TLS, with every method they had.
    ///
    /// Rust's halves are separate values, so the reader is passed in:
    /// whatever it already buffered past the last plaintext message (a
    /// client's ClientHello sent right behind its "STARTTLS" line) is the
    /// start of the TLS stream and is handed to TLS, not lost. Plaintext
    /// written before the call is sent before the handshake.
    ///
    /// ```
    /// use asyncio::{ClientTls, ServerTls, StartTlsOptions, StreamReader, StreamWriter};
    ///
    /// let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    /// let server_tls = ServerTls::builder()
    ///     .cert_pem(ck.cert.pem(), ck.key_pair.serialize_pem())
    ///     .build()
    ///     .unwrap();
    /// let client_tls = ClientTls::builder().add_root_pem(ck.cert.pem()).build().unwrap();
    /// asyncio::run(async move {
    ///     let server = asyncio::start_server(
    ///         move |mut r: StreamReader, mut w: StreamWriter| {
    ///             let tls = server_tls.clone();
    ///             async move {
    ///                 assert_eq!(r.readline().await.unwrap(), b"STARTTLS\n");
    ///                 w.write(b"OK\n");
    ///                 w.start_tls(&mut r, tls, &StartTlsOptions::new()).await.unwrap();
    ///                 let line = r.readline().await.unwrap();
    ///                 w.write(&line);
    ///             }
    ///         },
    ///         "127.0.0.1",
    ///         0,
    ///     )
    ///     .await?;
    ///     let port = server.local_addr().unwrap().port();
    ///     let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await?;
    ///     w.write(b"STARTTLS\n");
    ///     assert_eq!(r.readline().await.unwrap(), b"OK\n");
    ///     let opts = StartTlsOptions::new().server_hostname("localhost");
    ///     w.start_tls(&mut r, client_tls, &opts).await?;
    ///     w.write(b"secret\n");
    ///     assert_eq!(r.readline().await.unwrap(), b"secret\n");
    ///     assert!(w.tls_info().is_some());
    ///     std::io::Result::Ok(())
    /// })
    /// .unwrap()
    /// .unwrap();
    /// ```
    ///
    /// # Errors
    /// [`TlsError::AlreadyTls`](crate::TlsError::AlreadyTls) on a TLS
    /// stream; [`TlsError::ReaderMismatch`](crate::TlsError::ReaderMismatch)
    /// for the reader of another connection;
    /// [`TlsError::ServerHostnameRequired`](crate::TlsError::ServerHostnameRequired)
    /// as a client without a name; the handshake's failure (a
    /// [`TlsError`](crate::TlsError) inside the `io::Error`), after which the
    /// connection is closed.
    #[cfg(feature = "tls")]
    pub async fn start_tls(
        &mut self,
        reader: &mut crate::StreamReader,
        tls: impl Into<crate::tls::TlsContext>,
        options: &crate::StartTlsOptions,
    ) -> io::Result<()> {
        use crate::tls::{TlsError, TlsSession};
        if !Rc::ptr_eq(reader.conn(), &self.conn) {
            return Err(TlsError::ReaderMismatch.into());
        }
        if self.conn.is_tls() {
            return Err(TlsError::AlreadyTls.into());
        }
        let opts = &options.tls;
        let session = TlsSession::new(
            &tls.into(),
            opts.server_hostname.as_deref(),
            opts.shutdown_timeout(),
            opts.suppress_ragged_eofs,
        )?;
        let (prefix, eof) = reader.take_buffered();
        if let Err(e) = self.conn.install_tls(session, &prefix, eof) {
            self.conn.abort();
            return Err(e);
        }
        self.conn.handshake(opts.handshake_timeout()).await
    }

    /// What asyncio's `get_extra_info` tells of the TLS layer (peer
    /// certificates, version, cipher suite, ALPN protocol, SNI name);
    /// `None` on a plaintext stream.
    #[cfg(feature = "tls")]
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.conn.tls_info()
    }

    /// Sets or clears `TCP_NODELAY` (on by default, as asyncio does).
    ///
    /// # Errors
    /// On a Unix socket or a pipe (`Unsupported`) or a closed connection.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.conn.with_sock(|s| match s {
            crate::sock::Sock::Tcp(t) => t.set_nodelay(nodelay),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "TCP_NODELAY on a Unix socket or a pipe",
            )),
        })
    }
}

impl Drop for StreamWriter {
    /// Closes the stream, as asyncio's `StreamWriter.__del__` does; buffered
    /// data is still flushed.
    fn drop(&mut self) {
        self.conn.close();
    }
}

impl futures_io::AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.conn.poll_write_room(cx))?;
        self.conn.write(buf);
        // A write that failed at once tore the connection down.
        match self.conn.error() {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(buf.len())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.conn.poll_flushed(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.conn.poll_flushed(cx))?;
        Poll::Ready(self.conn.write_eof())
    }
}
