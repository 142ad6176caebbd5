//! The errors of the streams: asyncio's `IncompleteReadError` and
//! `LimitOverrunError`, and the enums that the reading methods return.

use std::fmt;
use std::io;

/// The stream ended before the requested bytes arrived (asyncio's
/// `IncompleteReadError`).
///
/// The bytes that did arrive are in [`partial`](Self::partial) and are no
/// longer in the reader's buffer.
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(
///         |_r, mut w: asyncio::StreamWriter| async move { w.write(b"ab") },
///         "127.0.0.1",
///         0,
///     )
///     .await
///     .unwrap();
///     let port = server.local_addr().unwrap().port();
///     let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
///     r.readexactly(5).await.unwrap_err()
/// })
/// .unwrap();
/// match err {
///     asyncio::ReadExactlyError::Incomplete(e) => {
///         let e: asyncio::IncompleteReadError = e;
///         assert_eq!((e.partial.as_slice(), e.expected), (&b"ab"[..], Some(5)));
///     }
///     other => panic!("expected an incomplete read, got {other:?}"),
/// }
/// ```
///
/// Its `Debug` shows the bytes as a byte string (`partial: b"ab"`), not as a
/// list of numbers.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} bytes read on a total of {} expected bytes", .partial.len(), match .expected { Some(n) => n.to_string(), None => "undefined".to_owned() })]
pub struct IncompleteReadError {
    /// The bytes read before the end of the stream.
    pub partial: Vec<u8>,
    /// How many bytes were expected; `None` when reading up to a separator.
    pub expected: Option<usize>,
}

/// How many bytes of `partial` a `Debug` shows before it cuts them short.
const DEBUG_BYTES: usize = 64;

impl fmt::Debug for IncompleteReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Bytes<'a>(&'a [u8]);
        impl fmt::Debug for Bytes<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let shown = &self.0[..self.0.len().min(DEBUG_BYTES)];
                write!(f, "b\"{}\"", shown.escape_ascii())?;
                if shown.len() < self.0.len() {
                    write!(f, "... ({} bytes)", self.0.len())?;
                }
                Ok(())
            }
        }
        f.debug_struct("IncompleteReadError")
            .field("partial", &Bytes(&self.partial))
            .field("expected", &self.expected)
            .finish()
    }
}

/// A separator was not found within the reader's limit (asyncio's
/// `LimitOverrunError`).
///
/// [`readuntil`](crate::StreamReader::readuntil) leaves the data in the buffer,
/// so the caller may read it some other way;
/// [`readline`](crate::StreamReader::readline) discards it, as asyncio's does.
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(
///         |_r, mut w: asyncio::StreamWriter| async move { w.write(b"a line too long\n") },
///         "127.0.0.1",
///         0,
///     )
///     .await
///     .unwrap();
///     let port = server.local_addr().unwrap().port();
///     let opts = asyncio::ConnectOptions::new().limit(4);
///     let (mut r, _w) = asyncio::open_connection_with("127.0.0.1", port, &opts).await.unwrap();
///     r.readline().await.unwrap_err()
/// })
/// .unwrap();
/// assert!(matches!(err, asyncio::ReadUntilError::LimitOverrun(asyncio::LimitOverrunError { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {consumed} bytes to consume")]
pub struct LimitOverrunError {
    /// How many bytes of the buffer are to be consumed before the separator
    /// (or the whole buffer when no separator was found).
    pub consumed: usize,
    /// What went over the limit: the separator was found too far, or not found.
    pub message: &'static str,
}

/// The failure of [`readexactly`](crate::StreamReader::readexactly).
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await.unwrap();
///     let port = server.local_addr().unwrap().port();
///     let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
///     r.readexactly(1).await.unwrap_err()
/// })
/// .unwrap();
/// assert!(matches!(err, asyncio::ReadExactlyError::Incomplete(_)));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ReadExactlyError {
    /// End of stream before `n` bytes; the partial bytes are in the error.
    #[error(transparent)]
    Incomplete(#[from] IncompleteReadError),
    /// The connection failed (reset, closed by the loop...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The failure of [`readuntil`](crate::StreamReader::readuntil) and
/// [`readline`](crate::StreamReader::readline).
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(
///         |_r, mut w: asyncio::StreamWriter| async move { w.write(b"no newline") },
///         "127.0.0.1",
///         0,
///     )
///     .await
///     .unwrap();
///     let port = server.local_addr().unwrap().port();
///     let (mut r, _w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
///     r.readuntil(b"\n").await.unwrap_err()
/// })
/// .unwrap();
/// match err {
///     asyncio::ReadUntilError::Incomplete(e) => assert_eq!(e.partial, b"no newline"),
///     other => panic!("expected an incomplete read, got {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum ReadUntilError {
    /// End of stream before the separator; the partial bytes are in the error.
    #[error(transparent)]
    Incomplete(#[from] IncompleteReadError),
    /// The separator is not within the limit.
    #[error(transparent)]
    LimitOverrun(#[from] LimitOverrunError),
    /// The separator is empty (asyncio raises `ValueError`).
    #[error("the separator must contain at least one byte")]
    EmptySeparator,
    /// The connection failed (reset, closed by the loop...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The error to match on for any read of a stream: [`ReadUntilError`], into
/// which `?` also converts a [`ReadExactlyError`], so a function that calls
/// both `readline` and `readexactly` has one error type.
///
/// ```
/// async fn read_frame(r: &mut asyncio::StreamReader) -> Result<Vec<u8>, asyncio::ReadError> {
///     let header = r.readline().await?;
///     let len: usize = String::from_utf8_lossy(&header).trim().parse().unwrap_or(0);
///     Ok(r.readexactly(len).await?)
/// }
/// # let _ = read_frame;
/// ```
pub type ReadError = ReadUntilError;

impl From<ReadExactlyError> for ReadUntilError {
    fn from(e: ReadExactlyError) -> Self {
        match e {
            ReadExactlyError::Incomplete(e) => ReadUntilError::Incomplete(e),
            ReadExactlyError::Io(e) => ReadUntilError::Io(e),
        }
    }
}

impl ReadExactlyError {
    /// Whether the stream ended first (asyncio's `IncompleteReadError`).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, ReadExactlyError::Incomplete(_))
    }

    /// The bytes that came before the end of the stream, if that is the
    /// error.
    pub fn partial(&self) -> Option<&[u8]> {
        match self {
            ReadExactlyError::Incomplete(e) => Some(&e.partial),
            ReadExactlyError::Io(_) => None,
        }
    }
}

impl ReadUntilError {
    /// Whether the stream ended before the separator (asyncio's
    /// `IncompleteReadError`).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, ReadUntilError::Incomplete(_))
    }

    /// The bytes that came before the end of the stream, if that is the
    /// error (what `readline` returns as its last, unterminated line in
    /// asyncio).
    ///
    /// ```
    /// let err = asyncio::ReadUntilError::Incomplete(asyncio::IncompleteReadError {
    ///     partial: b"no newline".to_vec(),
    ///     expected: None,
    /// });
    /// assert!(err.is_incomplete());
    /// assert_eq!(err.partial(), Some(&b"no newline"[..]));
    /// assert_eq!(
    ///     format!("{err:?}"),
    ///     r#"Incomplete(IncompleteReadError { partial: b"no newline", expected: None })"#
    /// );
    /// ```
    pub fn partial(&self) -> Option<&[u8]> {
        match self {
            ReadUntilError::Incomplete(e) => Some(&e.partial),
            _ => None,
        }
    }
}

impl From<ReadExactlyError> for io::Error {
    fn from(e: ReadExactlyError) -> Self {
        match e {
            ReadExactlyError::Io(e) => e,
            ReadExactlyError::Incomplete(e) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
        }
    }
}

impl From<ReadUntilError> for io::Error {
    fn from(e: ReadUntilError) -> Self {
        match e {
            ReadUntilError::Io(e) => e,
            ReadUntilError::Incomplete(e) => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            ReadUntilError::LimitOverrun(e) => io::Error::new(io::ErrorKind::InvalidData, e),
            e @ ReadUntilError::EmptySeparator => io::Error::new(io::ErrorKind::InvalidInput, e),
        }
    }
}

/// The write buffer limits given to
/// [`set_write_buffer_limits`](crate::StreamWriter::set_write_buffer_limits)
/// are out of order (asyncio raises `ValueError`).
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await.unwrap();
///     let port = server.local_addr().unwrap().port();
///     let (_r, mut w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
///     w.set_write_buffer_limits(Some(10), Some(20)).unwrap_err()
/// })
/// .unwrap();
/// assert_eq!(err, asyncio::WriteBufferLimitsError { high: 10, low: 20 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("high ({high}) must be >= low ({low})")]
pub struct WriteBufferLimitsError {
    /// The high-water mark asked for.
    pub high: usize,
    /// The low-water mark asked for.
    pub low: usize,
}

/// Why a writer refused data or a drain failed although the connection did not
/// fail: the writer was closed, or its write side shut with `write_eof`.
///
/// ```
/// let err = asyncio::run(async {
///     let server = asyncio::start_server(|_r, _w| async {}, "127.0.0.1", 0).await.unwrap();
///     let port = server.local_addr().unwrap().port();
///     let (_r, mut w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
///     w.write_eof().unwrap();
///     w.write(b"too late"); // discarded
///     w.drain().await.unwrap_err()
/// })
/// .unwrap();
/// let closed = err.get_ref().unwrap().downcast_ref::<asyncio::WriterClosedError>();
/// assert_eq!(closed, Some(&asyncio::WriterClosedError::WriteAfterEof));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriterClosedError {
    /// `write` after `close` (or after the connection was lost).
    #[error("write() after the stream was closed: the data was discarded")]
    WriteAfterClose,
    /// `write` after `write_eof` (asyncio raises `RuntimeError`).
    #[error("write() after write_eof(): the data was discarded")]
    WriteAfterEof,
    /// The connection is closed (asyncio's drain raises `ConnectionResetError('Connection lost')`).
    #[error("connection lost")]
    ConnectionLost,
}

impl From<WriterClosedError> for io::Error {
    fn from(e: WriterClosedError) -> Self {
        let kind = match e {
            WriterClosedError::ConnectionLost => io::ErrorKind::ConnectionReset,
            _ => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, e)
    }
}

/// A blocking socket passed to a `sock_*` call (asyncio raises `ValueError`
/// "the socket must be non-blocking"); call `set_nonblocking(true)` first.
///
/// ```
/// let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap(); // still blocking
/// let err = asyncio::run(async move { asyncio::sock_recv(&a, 1).await })
///     .unwrap()
///     .unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// assert!(err.get_ref().unwrap().is::<asyncio::BlockingSocketError>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the socket must be non-blocking")]
pub struct BlockingSocketError;

impl From<BlockingSocketError> for io::Error {
    fn from(e: BlockingSocketError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// A stored connection failure, handed out again to every later caller (an
/// `io::Error` is not `Clone`).
#[derive(Debug, Clone)]
pub(crate) struct StoredError {
    kind: io::ErrorKind,
    message: String,
    /// A TLS failure keeps its type, so every later call can match on it.
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsError>,
}

impl StoredError {
    pub(crate) fn new(e: &io::Error) -> Self {
        StoredError {
            kind: e.kind(),
            message: e.to_string(),
            #[cfg(feature = "tls")]
            tls: crate::tls::TlsError::from_io(e).cloned(),
        }
    }

    pub(crate) fn to_io(&self) -> io::Error {
        #[cfg(feature = "tls")]
        if let Some(t) = &self.tls {
            return t.clone().into();
        }
        io::Error::new(self.kind, self.message.clone())
    }
}

/// Every address a connection was tried on failed (asyncio's
/// `OSError('Multiple exceptions: ...')`, or with `all_errors=True` its
/// `ExceptionGroup`): each address with its error, in the order they were
/// tried. It comes inside an `io::Error` whose kind is the first error's.
///
/// ```
/// let err = asyncio::run(async {
///     let opts = asyncio::ConnectOptions::new().all_errors(true);
///     asyncio::open_connection_with("127.0.0.1", 1, &opts).await.unwrap_err()
/// })
/// .unwrap();
/// let all = err.get_ref().unwrap().downcast_ref::<asyncio::ConnectErrors>().unwrap();
/// assert_eq!(all.errors.len(), 1);
/// assert_eq!(all.errors[0].1.kind(), std::io::ErrorKind::ConnectionRefused);
/// ```
#[derive(Debug)]
pub struct ConnectErrors {
    /// Each address tried and why it failed.
    pub errors: Vec<(std::net::SocketAddr, io::Error)>,
}

impl fmt::Display for ConnectErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Multiple exceptions: ")?;
        for (i, (addr, e)) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "[{addr}] {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectErrors {}
