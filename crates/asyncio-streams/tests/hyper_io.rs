//! `HyperIo` (feature `hyper`): hyper's reads see what the reader had
//! already buffered before they read the socket into hyper's own buffer.
#![cfg(feature = "hyper")]

use std::convert::Infallible;
use std::time::Duration;

use asyncio::{HyperIo, StreamReader, StreamWriter};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};

#[test]
fn hyper_reads_the_bytes_the_reader_buffered_before_the_socket() {
    let body = asyncio::run(asyncio::timeout(Duration::from_secs(30), async {
        // A server that reads a preamble line itself (as a PROXY-protocol
        // header), then hands the rest of the connection to hyper.
        let server = asyncio::start_server(
            |mut r: StreamReader, w: StreamWriter| async move {
                let preamble = r.readline().await.unwrap();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let text = format!(
                        "{}|{}",
                        String::from_utf8_lossy(&preamble).trim(),
                        req.uri()
                    );
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(HyperIo::new(r, w), service)
                    .await;
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
        // The preamble and the request's first bytes in one segment: the
        // reader's `readline` buffers part of the request.
        w.write(b"PREAMBLE 1\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = r.readuntil(b"\r\n\r\n").await.unwrap();
        assert!(head.starts_with(b"HTTP/1.1 200"));
        let head = String::from_utf8_lossy(&head).to_lowercase();
        let len: usize = head
            .split("content-length: ")
            .nth(1)
            .and_then(|v| v.split("\r\n").next())
            .and_then(|v| v.parse().ok())
            .expect("a content-length");
        r.readexactly(len).await.unwrap()
    }))
    .unwrap()
    .unwrap();
    assert_eq!(body, b"PREAMBLE 1|/x");
}
