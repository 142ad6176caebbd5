//! `loop.sock_sendfile` and `loop.sendfile`: a file's bytes into a socket,
//! with `sendfile(2)` on Linux (no copy through user space) and a read and
//! send loop elsewhere, or when `sendfile(2)` cannot be used.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsFd;
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;

use socket2::SockRef;

use crate::transports::Transport;

/// How much the fallback reads at a time.
const CHUNK: usize = 64 * 1024;

/// `sendfile(2)` cannot be used for this file and socket (or on this
/// platform) and the caller said `fallback(false)` (asyncio's
/// `SendfileNotAvailableError`).
#[derive(Debug, thiserror::Error)]
#[error("sendfile is not available: {reason}")]
pub struct SendfileNotAvailableError {
    /// Why.
    pub reason: &'static str,
}

impl From<SendfileNotAvailableError> for io::Error {
    fn from(e: SendfileNotAvailableError) -> Self {
        io::Error::new(io::ErrorKind::Unsupported, e)
    }
}

/// Options of a sendfile: where in the file to start, how much to send,
/// and whether a read and send loop may stand in for `sendfile(2)`.
#[derive(Debug, Clone, Copy)]
pub struct SendfileOptions {
    offset: u64,
    count: Option<u64>,
    fallback: bool,
}

impl Default for SendfileOptions {
    fn default() -> Self {
        SendfileOptions {
            offset: 0,
            count: None,
            fallback: true,
        }
    }
}

impl SendfileOptions {
    /// From the start of the file to its end, with the fallback allowed
    /// (asyncio's defaults).
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to start in the file (`offset=`).
    pub fn offset(mut self, offset: u64) -> Self {
        self.offset = offset;
        self
    }

    /// How many bytes at most (`count=`); by default to the end of the file.
    pub fn count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// Whether a read and send loop may stand in where `sendfile(2)` cannot
    /// be used (`fallback=`, on by default).
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }
}

/// One `sendfile(2)`: up to `count` bytes of `file` from `*offset` into
/// `sock`; advances `*offset`.
#[cfg(target_os = "linux")]
fn sendfile_once(sock: RawFd, file: RawFd, offset: &mut u64, count: u64) -> io::Result<usize> {
    let mut off = libc::off_t::try_from(*offset).map_err(io::Error::other)?;
    // Linux sends at most this much per call anyway.
    let count = usize::try_from(count.min(0x7fff_f000)).expect("fits in usize");
    // SAFETY: sendfile(2) reads from `file` and writes to `sock`, two
    // descriptors the caller keeps open for the call, and updates `off`,
    // which we own; it touches no other memory of ours.
    let n = unsafe { libc::sendfile(sock, file, &mut off, count) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    *offset = u64::try_from(off).expect("sendfile leaves a non-negative offset");
    Ok(usize::try_from(n).expect("non-negative"))
}

/// Whether `e`, before any byte went, says `sendfile(2)` cannot be used
/// here (the file or the socket is of a kind it does not take).
#[cfg(target_os = "linux")]
fn not_available(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ENOTSOCK)
    )
}

/// How many bytes to send: `count`, or up to the end of the file.
fn amount(file: &File, options: &SendfileOptions) -> io::Result<u64> {
    Ok(match options.count {
        Some(c) => c,
        None => file.metadata()?.len().saturating_sub(options.offset),
    })
}

/// Sends `file` (from `options`' offset, `count` bytes or to its end) into
/// the connected stream socket `sock` (asyncio's `loop.sock_sendfile`):
/// with `sendfile(2)` on Linux, else (and where it cannot be used, if the
/// fallback is allowed) by reading the file and sending what it read.
/// Returns the bytes sent; the file's position is left just past them, as
/// asyncio leaves it. The socket must be non-blocking.
///
/// ```
/// use std::io::Read;
/// let path = std::env::temp_dir().join(format!("asyncio-doc-sendfile-{}", std::process::id()));
/// std::fs::write(&path, b"the file's bytes").unwrap();
/// let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// a.set_nonblocking(true).unwrap();
/// let file = std::fs::File::open(&path).unwrap();
/// let sent = asyncio::run(async move {
///     asyncio::sock_sendfile(&a, &file, asyncio::SendfileOptions::new().offset(4)).await
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(sent, 12);
/// let mut got = [0; 12];
/// b.read_exact(&mut got).unwrap();
/// assert_eq!(&got, b"file's bytes");
/// std::fs::remove_file(&path).unwrap();
/// ```
///
/// # Errors
/// [`BlockingSocketError`](crate::BlockingSocketError) for a blocking
/// socket; [`SendfileNotAvailableError`] (as `Unsupported`) where
/// `sendfile(2)` cannot be used and the fallback is off; the OS's error.
pub async fn sock_sendfile<S: AsFd>(
    sock: &S,
    file: &File,
    options: SendfileOptions,
) -> io::Result<u64> {
    let s = SockRef::from(sock);
    if !s.nonblocking()? {
        return Err(crate::error::BlockingSocketError.into());
    }
    let total = amount(file, &options)?;
    let mut pos = SeekOnDrop::new(file, options.offset);
    let mut left = total;
    let outcome =
        sock_sendfile_inner(sock, file, &mut pos.offset, &mut left, options.fallback).await;
    pos.finish()?;
    outcome.map(|()| total - left)
}

/// Leaves the file's position just past what was sent, as asyncio's
/// `finally: file.seek(offset + total_sent)`: also when the future is
/// dropped (cancelled) in the middle.
struct SeekOnDrop<'a> {
    file: &'a File,
    offset: u64,
    done: bool,
}

impl<'a> SeekOnDrop<'a> {
    fn new(file: &'a File, offset: u64) -> Self {
        SeekOnDrop {
            file,
            offset,
            done: false,
        }
    }

    fn finish(mut self) -> io::Result<()> {
        self.done = true;
        let mut file = self.file;
        file.seek(SeekFrom::Start(self.offset)).map(drop)
    }
}

impl Drop for SeekOnDrop<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut file = self.file;
            let _ = file.seek(SeekFrom::Start(self.offset));
        }
    }
}

/// Marks a transport's connection as sending a file while alive (a dropped
/// `sendfile` future clears it too).
struct SendfileMark<'a>(&'a crate::conn::Conn);

impl<'a> SendfileMark<'a> {
    fn new(conn: &'a crate::conn::Conn) -> Self {
        conn.set_sendfile(true);
        SendfileMark(conn)
    }
}

impl Drop for SendfileMark<'_> {
    fn drop(&mut self) {
        self.0.set_sendfile(false);
    }
}

async fn sock_sendfile_inner<S: AsFd>(
    sock: &S,
    file: &File,
    offset: &mut u64,
    left: &mut u64,
    fallback: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let fd = sock.as_fd().as_raw_fd();
        // Registered with the loop only once the socket is full, as the
        // other sock_* calls.
        let mut reg: Option<asyncio_core::IoRegistration> = None;
        let mut sent_any = false;
        while *left > 0 {
            match sendfile_once(fd, file.as_raw_fd(), offset, *left) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    sent_any = true;
                    *left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let r = match &reg {
                        Some(r) => {
                            r.clear_writable();
                            r
                        }
                        None => reg.insert(asyncio_core::IoRegistration::new(fd)?),
                    };
                    r.writable().await?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if !sent_any && not_available(&e) => {
                    drop(reg);
                    return read_and_send(sock, file, offset, left, fallback).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        read_and_send(sock, file, offset, left, fallback).await
    }
}

/// The fallback: read a chunk, send it, until done or the file ends.
async fn read_and_send<S: AsFd>(
    sock: &S,
    file: &File,
    offset: &mut u64,
    left: &mut u64,
    fallback: bool,
) -> io::Result<()> {
    if !fallback {
        return Err(SendfileNotAvailableError {
            reason: "sendfile(2) cannot send this file into this socket here",
        }
        .into());
    }
    let mut buf = vec![0; CHUNK];
    while *left > 0 {
        let want = usize::try_from((*left).min(CHUNK as u64)).expect("at most CHUNK");
        let n = file.read_at(&mut buf[..want], *offset)?;
        if n == 0 {
            return Ok(());
        }
        crate::sock_ops::sock_sendall(sock, &buf[..n]).await?;
        *offset += n as u64;
        *left -= n as u64;
    }
    Ok(())
}

/// Sends `file` through a transport (asyncio's `loop.sendfile`): the
/// transport's buffered writes are flushed first, then the file goes
/// straight from the file into the socket with `sendfile(2)` on Linux; over
/// TLS, for a pipe, elsewhere, or where `sendfile(2)` cannot be used, it is
/// read and written through the transport (if the fallback is allowed).
/// Returns the bytes sent; the file's position is left just past them.
/// Do not write to the transport until it returns.
///
/// ```
/// # use std::{cell::RefCell, rc::Rc};
/// # struct Quiet;
/// # impl asyncio::Protocol for Quiet {}
/// let path = std::env::temp_dir().join(format!("asyncio-doc-tsendfile-{}", std::process::id()));
/// std::fs::write(&path, vec![b'z'; 100_000]).unwrap();
/// let p = path.clone();
/// let got = asyncio::run(async move {
///     let server = asyncio::start_server(
///         // The writer is kept: dropping it would close the connection.
///         |mut r: asyncio::StreamReader, w| async move {
///             let _w = w;
///             r.read_to_eof().await.unwrap().len()
///         },
///         "127.0.0.1",
///         0,
///     )
///     .await?;
///     let port = server.local_addr().unwrap().port();
///     let (t, _) = asyncio::create_connection(|| Quiet, "127.0.0.1", port).await?;
///     let file = std::fs::File::open(&p)?;
///     let sent = asyncio::sendfile(&t, &file, asyncio::SendfileOptions::new()).await?;
///     t.close();
///     server.close();
///     std::io::Result::Ok(sent)
/// })
/// .unwrap()
/// .unwrap();
/// assert_eq!(got, 100_000);
/// std::fs::remove_file(&path).unwrap();
/// ```
///
/// # Errors
/// As [`sock_sendfile`]; the connection's error; `ConnectionReset` if it
/// is closed.
pub async fn sendfile(
    transport: &Transport,
    file: &File,
    options: SendfileOptions,
) -> io::Result<u64> {
    let conn = transport.conn().clone();
    if transport.is_closing() {
        return Err(crate::error::WriterClosedError::ConnectionLost.into());
    }
    if conn.sendfile_active() {
        return Err(crate::transports::TransportError::SendfileInProgress.into());
    }
    let _mark = SendfileMark::new(&conn);
    std::future::poll_fn(|cx| conn.poll_flushed(cx)).await?;
    let total = amount(file, &options)?;
    let mut pos = SeekOnDrop::new(file, options.offset);
    let offset = &mut pos.offset;
    let mut left = total;
    let native = cfg!(target_os = "linux") && !conn.speaks_tls() && transport.is_socket();
    let mut outcome = if native {
        native_sendfile(&conn, file, offset, &mut left).await
    } else {
        Err(SendfileNotAvailableError {
            reason: "TLS, a pipe, or no sendfile(2) here",
        }
        .into())
    };
    if let Err(e) = &outcome
        && e.get_ref()
            .is_some_and(|i| i.is::<SendfileNotAvailableError>())
        && left == total
    {
        outcome = if options.fallback {
            write_through(transport, file, offset, &mut left).await
        } else {
            Err(SendfileNotAvailableError {
                reason: "TLS, a pipe, or no sendfile(2) here",
            }
            .into())
        };
    }
    pos.finish()?;
    outcome.map(|()| total - left)
}

async fn native_sendfile(
    conn: &crate::conn::Conn,
    file: &File,
    offset: &mut u64,
    left: &mut u64,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let file_fd = file.as_raw_fd();
        while *left > 0 {
            let got = std::future::poll_fn(|cx| {
                conn.poll_write_raw(cx, |sock| sendfile_once(sock, file_fd, offset, *left))
            })
            .await;
            match got {
                Ok(0) => return Ok(()),
                Ok(n) => *left -= n as u64,
                Err(e) if not_available(&e) => {
                    return Err(SendfileNotAvailableError {
                        reason: "sendfile(2) refused this file",
                    }
                    .into());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (conn, file, offset, left);
        Err(SendfileNotAvailableError {
            reason: "no sendfile(2) here",
        }
        .into())
    }
}

/// The fallback through the transport: each chunk is written and the
/// buffer flushed before the next is read.
async fn write_through(
    transport: &Transport,
    file: &File,
    offset: &mut u64,
    left: &mut u64,
) -> io::Result<()> {
    let conn = transport.conn().clone();
    let mut buf = vec![0; CHUNK];
    while *left > 0 {
        let want = usize::try_from((*left).min(CHUNK as u64)).expect("at most CHUNK");
        let n = file.read_at(&mut buf[..want], *offset)?;
        if n == 0 {
            return Ok(());
        }
        // This sendfile's own write, past the refusal others get.
        transport
            .write_during_sendfile(&buf[..n])
            .map_err(io::Error::from)?;
        std::future::poll_fn(|cx| conn.poll_flushed(cx)).await?;
        *offset += n as u64;
        *left -= n as u64;
    }
    Ok(())
}
