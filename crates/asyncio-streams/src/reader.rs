//! `StreamReader`: asyncio's reading half of a connection.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::conn::Conn;
use crate::error::{IncompleteReadError, LimitOverrunError, ReadExactlyError, ReadUntilError};

/// asyncio's default buffer limit for `readline`/`readuntil` (64 KiB).
///
/// ```
/// // A line longer than this fails `readline` unless the connection says otherwise
/// // (`ConnectOptions::limit`, `ServerOptions::limit`), as asyncio's `limit=`.
/// assert_eq!(asyncio::DEFAULT_LIMIT, 64 * 1024);
/// ```
pub const DEFAULT_LIMIT: usize = 64 * 1024;

/// The first read of a connection allocates this much; the size doubles
/// (up to [`MAX_READ`]) each time a read fills all the room it had, so bulk
/// transfers soon read large chunks while small messages cost a small,
/// cheap allocation (the buffer is given back whenever the reader waits
/// with nothing buffered).
const FIRST_READ: usize = 2 * 1024;
const MAX_READ: usize = 64 * 1024;

/// Idle readers' first-size buffers kept per thread for the next reader
/// that needs one, so a connection that goes idle after each message does
/// not pay an allocation and a zero-fill per message, while an idle
/// connection still holds no buffer.
const SPARES: usize = 32;

thread_local! {
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A first-size buffer: a spare one if the thread has it.
fn first_buffer() -> Vec<u8> {
    SPARE_BUFFERS
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| vec![0; FIRST_READ])
}

/// Keeps a first-size buffer for the next reader (dropped past [`SPARES`]).
fn give_back(buf: Vec<u8>) {
    if buf.len() == FIRST_READ {
        let _ = SPARE_BUFFERS.try_with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < SPARES {
                s.push(buf);
            }
        });
    }
}

/// `AsyncRead` reads of at least this size go straight into the caller's
/// buffer when nothing is buffered.
const BYPASS: usize = 8 * 1024;

/// A buffer that grew past this (a large `readexactly`) is given back once
/// empty, so an idle connection holds little memory.
const KEEP_CAPACITY: usize = 256 * 1024;

/// The reading half of a connection (asyncio's `StreamReader`), made by
/// [`open_connection`](crate::open_connection) or handed to a
/// [`start_server`](crate::start_server) callback.
///
/// Every method keeps the bytes it has read in the reader's buffer until it
/// returns them, so a read that is cancelled (its future dropped) loses
/// nothing: the next read sees the same bytes.
///
/// Also implements `futures_io::AsyncRead` and `AsyncBufRead`.
///
/// ```
/// use asyncio::{open_connection, start_server, StreamReader, StreamWriter};
///
/// asyncio::EventLoop::new().run_until_complete(async {
///     let server = start_server(|_r: StreamReader, mut w: StreamWriter| async move {
///         w.write(b"hello\nworld");
///         w.close();
///     }, "127.0.0.1", 0).await?;
///     let port = server.local_addr().expect("bound to an IP address").port();
///     let (mut reader, _writer) = open_connection("127.0.0.1", port).await?;
///     assert_eq!(reader.readline().await?, b"hello\n");
///     assert_eq!(reader.read_to_eof().await?, b"world");
///     assert!(reader.at_eof());
///     std::io::Result::Ok(())
/// }).unwrap().unwrap();
/// ```
pub struct StreamReader {
    conn: Rc<Conn>,
    /// Initialized storage; the unread bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
    eof: bool,
    /// How much room the next allocation or growth gives a read.
    read_size: usize,
}

impl fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &(self.end - self.start))
            .field("limit", &self.limit)
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return hay.iter().position(|&b| b == needle[0]);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl StreamReader {
    pub(crate) fn new(conn: Rc<Conn>, limit: usize) -> Self {
        StreamReader {
            conn,
            buf: Vec::new(),
            start: 0,
            end: 0,
            limit,
            eof: false,
            read_size: FIRST_READ,
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > KEEP_CAPACITY {
                self.buf = Vec::new();
            }
        }
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let out = self.data()[..n].to_vec();
        self.consume(n);
        out
    }

    /// Reads one chunk from the socket into the buffer; `Ok(0)` at EOF.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grow = self.buf.len().max(self.read_size);
                if self.buf.is_empty() && grow == FIRST_READ {
                    // The bytes a spare holds are never read: only what a
                    // read puts in `buf[end..]` becomes data.
                    self.buf = first_buffer();
                } else {
                    self.buf.resize(self.buf.len() + grow, 0);
                }
            }
        }
        let end = self.end;
        let room = self.buf.len() - end;
        match self.conn.poll_read(cx, &mut self.buf[end..]) {
            Poll::Ready(Ok(0)) => {
                self.eof = true;
                Poll::Ready(Ok(0))
            }
            Poll::Ready(Ok(n)) => {
                self.end += n;
                if n == room {
                    self.read_size = (self.read_size * 2).min(MAX_READ);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                if self.start == self.end {
                    // Idle with nothing buffered: give the memory back, so an
                    // idle connection costs little.
                    give_back(std::mem::take(&mut self.buf));
                    self.start = 0;
                    self.end = 0;
                }
                Poll::Pending
            }
            other => other,
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Reads until end of stream, keeping every byte in the buffer (so a
    /// caller cut short loses nothing); [`take_all`](Self::take_all) then
    /// takes them.
    pub(crate) async fn fill_to_eof(&mut self) -> io::Result<()> {
        while self.fill().await? > 0 {}
        Ok(())
    }

    /// Takes every buffered byte.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        let n = self.end - self.start;
        self.take(n)
    }

    /// Reads up to `n` bytes (asyncio's `read(n)`): what is buffered, or else
    /// what the next chunk from the socket brings; an empty vector at end of
    /// stream or when `n` is 0. For `read(-1)` use
    /// [`read_to_eof`](Self::read_to_eof).
    ///
    /// # Errors
    /// The connection's error (reset, or the loop closed).
    pub async fn read(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        if self.start == self.end {
            self.fill().await?;
        }
        let n = n.min(self.end - self.start);
        Ok(self.take(n))
    }

    /// Reads until end of stream (asyncio's `read()` / `read(-1)`).
    ///
    /// # Errors
    /// The connection's error; the bytes read so far stay buffered.
    pub async fn read_to_eof(&mut self) -> io::Result<Vec<u8>> {
        while self.fill().await? > 0 {}
        let n = self.end - self.start;
        Ok(self.take(n))
    }

    /// Reads exactly `n` bytes (asyncio's `readexactly`).
    ///
    /// # Errors
    /// [`ReadExactlyError::Incomplete`] if the stream ends first, with the
    /// bytes that came ([`IncompleteReadError::partial`]), which leave the
    /// buffer; the connection's error otherwise (the bytes stay buffered).
    pub async fn readexactly(&mut self, n: usize) -> Result<Vec<u8>, ReadExactlyError> {
        while self.end - self.start < n {
            if self.eof {
                let have = self.end - self.start;
                return Err(IncompleteReadError {
                    partial: self.take(have),
                    expected: Some(n),
                }
                .into());
            }
            self.fill().await?;
        }
        Ok(self.take(n))
    }

    /// Reads up to and including `separator` (asyncio's `readuntil`).
    ///
    /// # Errors
    /// - [`ReadUntilError::Incomplete`]: end of stream before the separator;
    ///   the bytes read are in the error and leave the buffer.
    /// - [`ReadUntilError::LimitOverrun`]: the separator is not within the
    ///   reader's limit; the data **stays in the buffer**, as in asyncio, so
    ///   the caller may `read` it.
    /// - [`ReadUntilError::EmptySeparator`]: `separator` is empty.
    /// - [`ReadUntilError::Io`]: the connection's error.
    pub async fn readuntil(&mut self, separator: &[u8]) -> Result<Vec<u8>, ReadUntilError> {
        let seplen = separator.len();
        if seplen == 0 {
            return Err(ReadUntilError::EmptySeparator);
        }
        // Where to search from next: the bytes before it hold no separator.
        let mut offset = 0;
        let isep = loop {
            let data = self.data();
            if data.len() >= seplen {
                if let Some(i) = find(&data[offset..], separator) {
                    break offset + i;
                }
                offset = data.len() + 1 - seplen;
                if offset > self.limit {
                    return Err(LimitOverrunError {
                        consumed: offset,
                        message: "Separator is not found, and chunk exceed the limit",
                    }
                    .into());
                }
            }
            if self.eof {
                let have = self.end - self.start;
                return Err(IncompleteReadError {
                    partial: self.take(have),
                    expected: None,
                }
                .into());
            }
            // `poll_fill` straight, not the `fill` future around it: a
            // connection waiting in `readline` holds this state, and the
            // extra level would hold `self` once more.
            std::future::poll_fn(|cx| self.poll_fill(cx)).await?;
        };
        if isep > self.limit {
            return Err(LimitOverrunError {
                consumed: isep,
                message: "Separator is found, but chunk is longer than limit",
            }
            .into());
        }
        Ok(self.take(isep + seplen))
    }

    /// Reads one line, up to and including `\n` (asyncio's `readline`). At end
    /// of stream it returns what is left, possibly without `\n`, then empty
    /// vectors.
    ///
    /// # Errors
    /// [`ReadUntilError::LimitOverrun`] if the line is longer than the limit:
    /// as asyncio's `readline` (which raises `ValueError`), the line is
    /// discarded up to its `\n` if that is buffered, or else the whole buffer
    /// is, so the stream stays usable and the next call reads on from there.
    /// [`ReadUntilError::Io`] for the connection's error.
    pub async fn readline(&mut self) -> Result<Vec<u8>, ReadUntilError> {
        match self.readuntil(b"\n").await {
            Ok(line) => Ok(line),
            Err(ReadUntilError::Incomplete(e)) => Ok(e.partial),
            Err(ReadUntilError::LimitOverrun(e)) => {
                let rest = &self.data()[e.consumed..];
                if rest.starts_with(b"\n") {
                    self.consume(e.consumed + 1);
                } else {
                    let n = self.end - self.start;
                    self.consume(n);
                }
                Err(e.into())
            }
            Err(other) => Err(other),
        }
    }

    /// The lines of the stream as a [`Stream`](futures_core::Stream)
    /// (asyncio's `async for line in reader`): each item is what
    /// [`readline`](Self::readline) returns, and the stream ends at the end
    /// of the data (asyncio stops at the empty line `readline` returns
    /// there). An error is an item; the next item reads on (after a line
    /// over the limit, from past it, as `readline` does). Dropping the
    /// stream in the middle of a line loses nothing: the bytes stay in the
    /// reader's buffer.
    ///
    /// ```
    /// use asyncio::StreamExt;
    ///
    /// let lines = asyncio::run(async {
    ///     let server = asyncio::start_server(
    ///         |_r, mut w: asyncio::StreamWriter| async move { w.write(b"one\ntwo\nthree") },
    ///         "127.0.0.1",
    ///         0,
    ///     )
    ///     .await?;
    ///     let port = server.local_addr().unwrap().port();
    ///     let (mut reader, _w) = asyncio::open_connection("127.0.0.1", port).await?;
    ///     let mut lines = Vec::new();
    ///     let mut stream = reader.lines();
    ///     while let Some(line) = stream.next().await {
    ///         lines.push(line?);
    ///     }
    ///     server.close();
    ///     std::io::Result::Ok(lines)
    /// })
    /// .unwrap()
    /// .unwrap();
    /// assert_eq!(lines, [&b"one\n"[..], b"two\n", b"three"]);
    /// ```
    pub fn lines(&mut self) -> Lines<'_> {
        Lines {
            state: LinesState::Idle(self),
        }
    }

    /// Whether the buffer is empty and the stream has ended (asyncio's
    /// `at_eof`). The end of stream is noticed by reading: this checks the
    /// socket without waiting when nothing is buffered.
    pub fn at_eof(&mut self) -> bool {
        if self.start == self.end && !self.eof {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = self.poll_fill(&mut cx);
        }
        self.eof && self.start == self.end
    }

    /// Takes every buffered byte out of the reader, and whether the stream
    /// ended: what `start_tls` hands to the TLS layer.
    #[cfg(feature = "tls")]
    pub(crate) fn take_buffered(&mut self) -> (Vec<u8>, bool) {
        let n = self.end - self.start;
        (self.take(n), self.eof)
    }

    #[cfg(feature = "tls")]
    pub(crate) fn conn(&self) -> &Rc<Conn> {
        &self.conn
    }

    /// The buffer limit of `readline`/`readuntil` (asyncio's `limit=`).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The remote address (asyncio's `get_extra_info('peername')`).
    ///
    /// # Errors
    /// Once the connection is closed.
    pub fn peer_addr(&self) -> io::Result<crate::StreamAddr> {
        self.conn.with_sock(|s| s.peer_addr())
    }
}

impl StreamReader {
    /// The read behind the I/O traits of other crates (hyper's, tokio's):
    /// what is buffered if anything is, else one read from the connection
    /// straight into `out`, which may be uninitialised, so the bytes are
    /// copied once (kernel or TLS session to the caller), never through the
    /// reader's own buffer. `Ok(0)` at end of stream or for an empty `out`.
    #[cfg(any(feature = "hyper", feature = "tokio"))]
    pub(crate) fn poll_read_uninit(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        if self.start < self.end {
            let n = out.len().min(self.end - self.start);
            for (slot, byte) in out[..n].iter_mut().zip(self.data()) {
                slot.write(*byte);
            }
            self.consume(n);
            return Poll::Ready(Ok(n));
        }
        if self.eof || out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // SAFETY: `MaybeUninit<u8>` and `u8` have the same layout, and the
        // slice is only ever written through: `Conn::poll_read` hands it to
        // the kernel's `recv` or to rustls's `Reader::read`, both of which
        // copy into it and never read from it, and the caller treats as
        // initialised only the `n` bytes the read reports (tokio's
        // `TcpStream` and hyper-util's `TokioIo` read the same way).
        let bytes = unsafe { &mut *(out as *mut [std::mem::MaybeUninit<u8>] as *mut [u8]) };
        match std::task::ready!(self.conn.poll_read(cx, bytes)) {
            Ok(0) => {
                self.eof = true;
                Poll::Ready(Ok(0))
            }
            other => Poll::Ready(other),
        }
    }
}

impl futures_io::AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.start == this.end {
            if this.eof || out.is_empty() {
                return Poll::Ready(Ok(0));
            }
            if out.len() >= BYPASS {
                // Large reads bypass the buffer.
                return match this.conn.poll_read(cx, out) {
                    Poll::Ready(Ok(0)) => {
                        this.eof = true;
                        Poll::Ready(Ok(0))
                    }
                    other => other,
                };
            }
            if std::task::ready!(this.poll_fill(cx))? == 0 {
                return Poll::Ready(Ok(0));
            }
        }
        let n = out.len().min(this.end - this.start);
        out[..n].copy_from_slice(&this.data()[..n]);
        this.consume(n);
        Poll::Ready(Ok(n))
    }
}

impl futures_io::AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.start == this.end && !this.eof {
            std::task::ready!(this.poll_fill(cx))?;
        }
        Poll::Ready(Ok(this.data()))
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        let this = self.get_mut();
        let amt = amt.min(this.end - this.start);
        this.consume(amt);
    }
}

/// A line being read, with the reader it gives back.
type LineFuture<'a> =
    Pin<Box<dyn Future<Output = (Result<Vec<u8>, ReadUntilError>, &'a mut StreamReader)> + 'a>>;

enum LinesState<'a> {
    Idle(&'a mut StreamReader),
    Reading(LineFuture<'a>),
    Done,
}

/// The lines of a [`StreamReader`], from [`StreamReader::lines`].
pub struct Lines<'a> {
    state: LinesState<'a>,
}

impl fmt::Debug for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("done", &matches!(self.state, LinesState::Done))
            .finish_non_exhaustive()
    }
}

impl futures_core::Stream for Lines<'_> {
    type Item = Result<Vec<u8>, ReadUntilError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match std::mem::replace(&mut self.state, LinesState::Done) {
                LinesState::Done => return Poll::Ready(None),
                LinesState::Idle(reader) => {
                    self.state = LinesState::Reading(Box::pin(async move {
                        let line = reader.readline().await;
                        (line, reader)
                    }));
                }
                LinesState::Reading(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = LinesState::Reading(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((Ok(line), _)) if line.is_empty() => return Poll::Ready(None),
                    Poll::Ready((line, reader)) => {
                        self.state = LinesState::Idle(reader);
                        return Poll::Ready(Some(line));
                    }
                },
            }
        }
    }
}
