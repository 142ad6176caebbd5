//! hyper 1.x on asyncio's streams (feature `hyper`): [`HyperIo`], hyper's
//! I/O traits over a reader/writer pair (TCP, Unix or TLS alike),
//! [`LocalExecutor`], hyper's executor as `create_task` on the running loop,
//! and [`LoopTimer`], hyper's timer on the loop's timers, so a server or
//! client needs no glue of its own and no tokio.
//!
//! ```
//! use std::convert::Infallible;
//! use asyncio::{HyperIo, StreamReader, StreamWriter};
//! use http_body_util::Full;
//! use hyper::body::{Bytes, Incoming};
//!
//! async fn hello(_: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
//!     Ok(hyper::Response::new(Full::new(Bytes::from("hello\n"))))
//! }
//!
//! async fn serve(r: StreamReader, w: StreamWriter) {
//!     let conn = hyper::server::conn::http1::Builder::new()
//!         .serve_connection(HyperIo::new(r, w), hyper::service::service_fn(hello));
//!     if let Err(e) = conn.await {
//!         eprintln!("connection error: {e}");
//!     }
//! }
//!
//! asyncio::run(async {
//!     let server = asyncio::start_server(serve, "127.0.0.1", 0).await.unwrap();
//!     let port = server.local_addr().unwrap().port();
//!     let (r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
//!     let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(r, w)).await.unwrap();
//!     asyncio::create_task(conn);
//!     let req = hyper::Request::get("/").body(http_body_util::Empty::<Bytes>::new()).unwrap();
//!     let resp = sender.send_request(req).await.unwrap();
//!     assert_eq!(resp.status(), 200);
//! })
//! .unwrap();
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::AsyncWrite;

use crate::{StreamReader, StreamWriter};

/// A connection as hyper sees it: `hyper::rt::Read` and `hyper::rt::Write`
/// over a [`StreamReader`]/[`StreamWriter`] pair (what `start_server`'s
/// callback and `open_connection` give), plain or TLS.
///
/// Reads go straight from the socket (or the TLS session) into hyper's own
/// buffer, through hyper's uninitialised-buffer API: one copy, none through
/// the reader's buffer (bytes the reader had already buffered, say after a
/// `readline`, come first). Writes go through the writer, so `drain`'s flow
/// control and the write buffer limits apply.
#[derive(Debug)]
pub struct HyperIo {
    reader: StreamReader,
    writer: StreamWriter,
}

impl HyperIo {
    /// Joins a reader and a writer into one connection for hyper.
    pub fn new(reader: StreamReader, writer: StreamWriter) -> Self {
        HyperIo { reader, writer }
    }

    /// The reader and the writer back.
    pub fn into_inner(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `poll_read_uninit` only writes into the slice (it never
        // de-initialises a byte), and reports how many bytes it wrote.
        let n = std::task::ready!(this.reader.poll_read_uninit(cx, unsafe { buf.as_mut() }))?;
        // SAFETY: those `n` bytes at the cursor's start were just written.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_close(cx)
    }
}

/// hyper's executor (for HTTP/2's background work): each future becomes a
/// task of the running loop, as `create_task`. The futures need not be
/// `Send`.
///
/// # Panics
/// When hyper hands it a future outside a running loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalExecutor;

impl<F> hyper::rt::Executor<F> for LocalExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        // The future itself is the task: `async move { fut.await }` would
        // hold it twice (captured, and being awaited).
        drop(asyncio_core::create_task(fut));
    }
}

/// hyper's timer (`hyper::rt::Timer`) on the running loop's timers, as
/// [`sleep_until`](asyncio_core::sleep_until): what HTTP/1's
/// `header_read_timeout` and HTTP/2's keep-alive pings need. Give it to a
/// builder with `.timer(LoopTimer)`.
///
/// Its sleeps are `Send` and `Sync` as hyper asks, but, like every asyncio
/// timer, wait only when polled on a thread whose loop is running.
///
/// ```
/// use std::time::Duration;
/// use asyncio::LoopTimer;
/// use hyper::rt::Timer;
///
/// asyncio::run(async {
///     LoopTimer.sleep(Duration::from_millis(1)).await;
/// })
/// .unwrap();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopTimer;

/// One sleep of [`LoopTimer`]: the loop's own [`Sleep`](asyncio_core::Sleep).
#[derive(Debug)]
struct LoopSleep(asyncio_core::Sleep);

impl Future for LoopSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for LoopSleep {}

impl hyper::rt::Timer for LoopTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep(asyncio_core::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(LoopSleep(asyncio_core::sleep_until(deadline)))
    }
}
