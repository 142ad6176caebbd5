//! tokio's I/O traits on the streams (feature `tokio`), so crates written
//! against `tokio::io` — tokio-util's codecs, `tokio::io::copy`, framing and
//! protocol crates — run on asyncio-rs connections. Only the traits are used:
//! no tokio runtime is started or needed.
//!
//! ```
//! use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
//!
//! asyncio::run(async {
//!     let server = asyncio::start_server(
//!         |r: asyncio::StreamReader, mut w: asyncio::StreamWriter| async move {
//!             let mut lines = r.lines();
//!             while let Ok(Some(line)) = lines.next_line().await {
//!                 w.write_all(format!("{}\n", line.to_uppercase()).as_bytes()).await.unwrap();
//!             }
//!         },
//!         "127.0.0.1",
//!         0,
//!     )
//!     .await
//!     .unwrap();
//!     let port = server.local_addr().unwrap().port();
//!     let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
//!     AsyncWriteExt::write_all(&mut w, b"hello\n").await.unwrap();
//!     let mut line = String::new();
//!     AsyncBufReadExt::read_line(&mut r, &mut line).await.unwrap();
//!     assert_eq!(line, "HELLO\n");
//! })
//! .unwrap();
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::ReadBuf;

use crate::{StreamReader, StreamWriter};

/// Reads straight into the caller's `ReadBuf`, uninitialised part included
/// (one copy), after whatever the reader had buffered.
impl tokio::io::AsyncRead for StreamReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // SAFETY: `poll_read_uninit` only writes into the slice (it never
        // de-initialises a byte), and reports how many bytes it wrote.
        let n = ready!(this.poll_read_uninit(cx, unsafe { buf.unfilled_mut() }))?;
        // SAFETY: the first `n` bytes of the unfilled part were just written.
        unsafe { buf.assume_init(n) };
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The reader's own buffer, as `futures_io::AsyncBufRead`.
impl tokio::io::AsyncBufRead for StreamReader {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        futures_io::AsyncBufRead::poll_fill_buf(self, cx)
    }

    fn consume(self: Pin<&mut Self>, amt: usize) {
        futures_io::AsyncBufRead::consume(self, amt)
    }
}

/// Writes as `write` + `drain` do (flow control at the high-water mark);
/// `poll_flush` waits until the buffer is on the wire; `poll_shutdown`
/// flushes, then half-closes (`write_eof`).
impl tokio::io::AsyncWrite for StreamWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(self, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(self, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(self, cx)
    }
}
