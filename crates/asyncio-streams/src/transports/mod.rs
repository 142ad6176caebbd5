//! asyncio's low-level layer: transports and protocols.
//!
//! A *protocol* is the user's object whose methods the loop calls
//! (`connection_made`, `data_received`, `eof_received`, `connection_lost`,
//! and `pause_writing`/`resume_writing` for flow control); a *transport* is
//! the handle the protocol writes through and controls the connection with
//! (`write`, `write_eof`, `close`, `abort`, `pause_reading`, ...). Loop
//! functions of asyncio's names make them: [`create_connection`],
//! [`create_server`], [`create_unix_connection`], [`create_unix_server`],
//! [`connect_accepted_socket`]; for UDP, [`create_datagram_endpoint`] with a
//! [`DatagramProtocol`] and a [`DatagramTransport`].
//!
//! # One connection core under the streams and the transports
//!
//! CPython builds its streams on this layer: a `StreamReaderProtocol` feeds
//! a `StreamReader`'s buffer from `data_received`. asyncio-rs does not
//! rebuild its streams on the transports; both share one connection core
//! (the crate's `Conn`: the socket and its registration, the write buffer,
//! the water marks, the flusher task, closing, TLS). A transport adds a
//! *driver* task on top of that core that reads whenever the socket is
//! readable and calls the protocol; a `StreamReader` reads only inside its
//! own calls (the pull model described in `docs/semantics.md`). The reasons:
//! the streams' pull model keeps an idle connection's memory at about a
//! kilobyte and makes a cancelled read lose nothing, which a push model
//! through `data_received` would give up; and `ex_5_2_tcp_echo`, which runs
//! on the streams, keeps its path unchanged (no extra task, no copy from a
//! protocol's buffer into the reader's). The write side, where asyncio's
//! flow control lives, is literally the same code for both, so
//! `StreamWriter::drain` and a protocol's `pause_writing`/`resume_writing`
//! see the same water marks.
//!
//! # Calls into the protocol
//!
//! Every protocol method is user code: it runs through asyncio-core's gate
//! ([`asyncio_core::call_user`]), so a panic never unwinds through the
//! transport. A panic in `connection_made`, `data_received`, `get_buffer`,
//! `buffer_updated` or `eof_received` is a fatal error of the connection, as
//! an exception there is in asyncio: it is reported to the loop's exception
//! handler, the connection is aborted, and `connection_lost` gets the panic
//! as its error. A panic in `pause_writing`, `resume_writing` or
//! `connection_lost` is only reported.
//!
//! A protocol method may call back into its transport (write, close, abort,
//! pause reading) and may create tasks or connections. The one call asyncio
//! makes *inside* a transport method is `pause_writing`, from the `write`
//! that crossed the high-water mark; when that `write` runs inside one of the
//! same protocol's methods (the protocol is busy: Rust cannot lend it out
//! twice), `pause_writing` is called as soon as that method returns, before
//! any other call into the protocol.

mod create;
mod datagram;
mod stream;
mod subprocess;

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

/// How long a driver waits before it looks again at a protocol that user
/// code holds borrowed across an await.
const BUSY_RETRY: Duration = Duration::from_millis(1);

/// A driver's wait for a protocol that user code holds borrowed outside its
/// methods (a `RefCell` borrow kept across an await): nothing signals the
/// end of a borrow, so the driver looks again after [`BUSY_RETRY`] instead
/// of at once, which would keep the loop turning at full speed for as long
/// as the borrow lasts. One timer at a time per transport.
#[derive(Default)]
pub(crate) struct BusyRetry(Rc<Cell<bool>>);

impl BusyRetry {
    /// Wakes `waker` after [`BUSY_RETRY`] (unless a retry is already armed).
    pub(crate) fn arm(&self, waker: &Waker) {
        if self.0.replace(true) {
            return;
        }
        let armed = self.0.clone();
        let waker = waker.clone();
        match asyncio_core::get_running_loop() {
            Ok(lp) => {
                // The timer runs to its end: its handle is not needed.
                let _ = lp.call_later(BUSY_RETRY, move || {
                    armed.set(false);
                    waker.wake();
                });
            }
            Err(_) => {
                self.0.set(false);
                waker.wake();
            }
        }
    }
}

pub use create::{
    ProtocolCell, connect_accepted_socket, connect_read_pipe, connect_write_pipe,
    create_connection, create_connection_with, create_server, create_server_from_listener,
    create_server_with, create_unix_connection, create_unix_connection_with, create_unix_server,
    create_unix_server_from_listener, create_unix_server_with,
};
pub use datagram::{
    DatagramError, DatagramOptions, DatagramProtocol, DatagramTransport, create_datagram_endpoint,
};
pub use stream::Transport;
#[cfg(feature = "tls")]
pub use stream::start_tls;
pub use subprocess::{
    SubprocessProtocol, SubprocessTransport, subprocess_exec, subprocess_exec_with,
    subprocess_shell,
};

use crate::sock::StreamAddr;

/// The callbacks of a stream protocol (asyncio's `asyncio.Protocol`).
///
/// The loop calls them in this order: `connection_made` once, then
/// `data_received` any number of times, then `eof_received` at most once
/// (when the peer shut its write side), then `connection_lost` once.
/// `pause_writing` and `resume_writing` come in pairs, between
/// `connection_made` and `connection_lost`, when the transport's write buffer
/// goes above its high-water mark and back down to its low-water mark.
/// Every method has a default that does nothing (`eof_received`'s returns
/// `false`), as in asyncio's base class.
///
/// ```
/// use asyncio::{Protocol, Transport};
///
/// /// Echoes every byte back, as asyncio's `EchoServerProtocol`.
/// struct Echo {
///     transport: Option<Transport>,
/// }
///
/// impl Protocol for Echo {
///     fn connection_made(&mut self, transport: &Transport) {
///         self.transport = Some(transport.clone());
///     }
///     fn data_received(&mut self, data: &[u8]) {
///         let t = self.transport.as_ref().expect("connection_made comes first");
///         t.write(data).expect("write_eof was never called");
///     }
/// }
/// # let _ = Echo { transport: None };
/// ```
pub trait Protocol: 'static {
    /// The connection is made; `transport` is its handle (keep a clone to
    /// write later).
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Bytes arrived. Called only between `connection_made` and
    /// `eof_received`/`connection_lost`.
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The peer shut its write side (it sent EOF). Returning `false` (the
    /// default) closes the transport; returning `true` keeps it half-open,
    /// so the protocol may still write and must close it itself.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is gone: `None` after `close()`, `abort()` or an EOF
    /// that closed it; the error after a failure (a reset, or a fatal error
    /// of the protocol itself). Called once, last.
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// The transport's write buffer went above its high-water mark: stop
    /// writing until `resume_writing`.
    fn pause_writing(&mut self) {}

    /// The write buffer went back down to the low-water mark.
    fn resume_writing(&mut self) {}

    /// Not for implementors: how [`Buffered`] hands the transport its
    /// buffered half. Leave the default.
    #[doc(hidden)]
    fn __as_buffered(&mut self) -> Option<&mut dyn BufferedProtocol> {
        None
    }
}

/// A stream protocol that receives into its own buffer (asyncio's
/// `asyncio.BufferedProtocol`): the transport asks `get_buffer` for room and
/// reads the socket straight into it, then says how much it wrote with
/// `buffer_updated` — no copy through a buffer of the transport's.
///
/// Wrap it in [`Buffered`] to hand it to [`create_connection`] or
/// [`create_server`] (Rust cannot tell the two kinds of protocol apart by
/// their type alone, which is how asyncio tells them apart).
///
/// ```
/// use asyncio::{BufferedProtocol, Transport};
///
/// /// Counts the bytes received, reading them into one reused buffer.
/// struct Counter { buf: Vec<u8>, total: usize }
///
/// impl BufferedProtocol for Counter {
///     fn get_buffer(&mut self, _sizehint: usize) -> &mut [u8] {
///         &mut self.buf
///     }
///     fn buffer_updated(&mut self, nbytes: usize) {
///         self.total += nbytes;
///     }
/// }
/// # let _ = Counter { buf: vec![0; 4096], total: 0 };
/// ```
pub trait BufferedProtocol: 'static {
    /// As [`Protocol::connection_made`].
    fn connection_made(&mut self, transport: &Transport) {
        let _ = transport;
    }

    /// Room for the next read: a non-empty buffer (an empty one is a fatal
    /// error of the connection, as in asyncio). `sizehint` is how much the
    /// transport would like to read at most; any length is accepted.
    fn get_buffer(&mut self, sizehint: usize) -> &mut [u8];

    /// The first `nbytes` bytes of the buffer `get_buffer` returned hold new
    /// data.
    fn buffer_updated(&mut self, nbytes: usize);

    /// As [`Protocol::eof_received`].
    fn eof_received(&mut self) -> bool {
        false
    }

    /// As [`Protocol::connection_lost`].
    fn connection_lost(&mut self, exc: Option<io::Error>) {
        let _ = exc;
    }

    /// As [`Protocol::pause_writing`].
    fn pause_writing(&mut self) {}

    /// As [`Protocol::resume_writing`].
    fn resume_writing(&mut self) {}
}

/// A [`BufferedProtocol`] made usable where a [`Protocol`] is expected:
/// `create_connection(|| Buffered(MyProtocol::new()), ...)`. The transport
/// then reads into the protocol's buffer.
#[derive(Debug, Default)]
pub struct Buffered<P>(pub P);

impl<P: BufferedProtocol> Protocol for Buffered<P> {
    fn connection_made(&mut self, transport: &Transport) {
        self.0.connection_made(transport);
    }

    /// Copies `data` through `get_buffer`/`buffer_updated` (a transport never
    /// calls it: it reads into the buffer directly).
    fn data_received(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let buf = self.0.get_buffer(data.len());
            let n = buf.len().min(data.len());
            if n == 0 {
                return;
            }
            buf[..n].copy_from_slice(&data[..n]);
            self.0.buffer_updated(n);
            data = &data[n..];
        }
    }

    fn eof_received(&mut self) -> bool {
        self.0.eof_received()
    }

    fn connection_lost(&mut self, exc: Option<io::Error>) {
        self.0.connection_lost(exc);
    }

    fn pause_writing(&mut self) {
        self.0.pause_writing();
    }

    fn resume_writing(&mut self) {
        self.0.resume_writing();
    }

    fn __as_buffered(&mut self) -> Option<&mut dyn BufferedProtocol> {
        Some(&mut self.0)
    }
}

/// One item of a transport's [`Transport::get_extra_info`] (asyncio's
/// `get_extra_info(name)`): typed instead of Python's any object.
#[derive(Debug, Clone)]
pub enum ExtraInfo {
    /// `'peername'` or `'sockname'`: an address.
    Address(StreamAddr),
    /// `'socket'` or `'pipe'`: the raw descriptor (borrowed: it is closed by
    /// the transport).
    Fd(RawFd),
}

/// A transport refused a call that its state does not allow.
///
/// ```
/// asyncio::run(async {
///     let server = asyncio::create_server(|| Quiet, "127.0.0.1", 0).await?;
///     let port = server.local_addr().unwrap().port();
///     let (t, _p) = asyncio::create_connection(|| Quiet, "127.0.0.1", port).await?;
///     t.write_eof()?;
///     assert_eq!(t.write(b"late"), Err(asyncio::TransportError::WriteAfterEof));
///     t.close();
///     server.close();
///     std::io::Result::Ok(())
/// })
/// .unwrap()
/// .unwrap();
/// # struct Quiet;
/// # impl asyncio::Protocol for Quiet {}
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// `write` after `write_eof` (asyncio's `RuntimeError('Cannot call
    /// write() after write_eof()')`).
    #[error("cannot call write() after write_eof()")]
    WriteAfterEof,
    /// `write` on the read end of a pipe (asyncio's read pipe transport has
    /// no `write`).
    #[error("the read end of a pipe cannot be written")]
    NotWritable,
    /// `write` while the transport's [`sendfile`](crate::sendfile) runs
    /// (asyncio's `RuntimeError('unable to write; sendfile is in
    /// progress')`): the file's bytes go straight into the socket, and a
    /// write would land in their middle.
    #[error("unable to write; sendfile is in progress")]
    SendfileInProgress,
}

impl From<TransportError> for io::Error {
    fn from(e: TransportError) -> Self {
        io::Error::other(e)
    }
}
