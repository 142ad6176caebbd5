//! hyper 1.x on asyncio's streams (feature `hyper`): [`HyperIo`], hyper's
//! I/O traits over a reader/writer pair, and [`LocalExecutor`], hyper's
//! executor as `create_task` on the running loop, so a server or client
//! needs no glue of its own and no tokio.
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
use std::task::{Context, Poll, ready};

use futures_io::{AsyncBufRead, AsyncWrite};

use crate::{StreamReader, StreamWriter};

/// A connection as hyper sees it: `hyper::rt::Read` and `hyper::rt::Write`
/// over a [`StreamReader`]/[`StreamWriter`] pair (what `start_server`'s
/// callback and `open_connection` give). Reading copies from the reader's
/// buffer, so no uninitialised memory is exposed.
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
        let data = ready!(Pin::new(&mut this.reader).poll_fill_buf(cx))?;
        let n = data.len().min(buf.remaining());
        buf.put_slice(&data[..n]);
        Pin::new(&mut this.reader).consume(n);
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
        asyncio_core::create_task(async move {
            fut.await;
        });
    }
}
