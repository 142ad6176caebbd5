//! hyper 1.x's I/O traits over an asyncio-rs connection.
//!
//! hyper reads and writes through its own `hyper::rt::Read`/`Write` traits.
//! `smol-hyper`'s `FuturesIo` adapts one object that implements both of
//! futures-io's `AsyncRead` and `AsyncWrite`; asyncio's streams come as two
//! objects (a reader and a writer), so these few lines adapt the pair
//! directly. Reading goes through `AsyncBufRead`, so no `unsafe` is needed to
//! fill hyper's uninitialized buffer: bytes are copied from the reader's
//! buffer with `put_slice`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use asyncio::{StreamReader, StreamWriter};
use futures_io::{AsyncBufRead, AsyncWrite};

/// A connection as hyper sees it.
pub(crate) struct HyperIo {
    reader: StreamReader,
    writer: StreamWriter,
}

impl HyperIo {
    pub(crate) fn new(reader: StreamReader, writer: StreamWriter) -> Self {
        HyperIo { reader, writer }
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
