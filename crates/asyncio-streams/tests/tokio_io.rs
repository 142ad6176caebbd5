//! tokio's I/O traits on the streams (feature `tokio`): tokio-util's codecs
//! over asyncio-rs connections, with no tokio runtime.
#![cfg(feature = "tokio")]

use std::time::Duration;

use asyncio::{StreamReader, StreamWriter};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec, LinesCodec};

fn run<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(asyncio::timeout(Duration::from_secs(30), fut))
        .unwrap()
        .unwrap()
}

#[test]
fn framed_read_with_lines_codec_reads_the_lines_of_a_connection() {
    let lines = run(async {
        let server = asyncio::start_server(
            |_r: StreamReader, mut w: StreamWriter| async move {
                // Lines split across writes, and a last one without newline.
                w.write(b"first\nsec");
                w.drain().await.unwrap();
                w.write(b"ond\r\nthird");
                w.close();
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let (r, _w) = asyncio::open_connection("127.0.0.1", server.local_addr().unwrap().port())
            .await
            .unwrap();
        let mut framed = FramedRead::new(r, LinesCodec::new());
        let mut lines = Vec::new();
        while let Some(line) = framed.next().await {
            lines.push(line.unwrap());
        }
        lines
    });
    assert_eq!(lines, ["first", "second", "third"]);
}

#[test]
fn length_delimited_frames_round_trip_through_framed_write_and_framed_read() {
    let frames = run(async {
        // An echo server speaking length-delimited frames both ways.
        let server = asyncio::start_server(
            |r: StreamReader, w: StreamWriter| async move {
                let mut input = FramedRead::new(r, LengthDelimitedCodec::new());
                let mut output = FramedWrite::new(w, LengthDelimitedCodec::new());
                while let Some(Ok(frame)) = input.next().await {
                    output.send(frame.freeze()).await.unwrap();
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let (r, w) = asyncio::open_connection("127.0.0.1", server.local_addr().unwrap().port())
            .await
            .unwrap();
        let mut out = FramedWrite::new(w, LengthDelimitedCodec::new());
        let mut input = FramedRead::new(r, LengthDelimitedCodec::new());
        let sent = [
            Bytes::from_static(b""),
            Bytes::from_static(b"x"),
            Bytes::from(vec![7u8; 300_000]),
        ];
        for f in &sent {
            out.send(f.clone()).await.unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..sent.len() {
            got.push(input.next().await.unwrap().unwrap().freeze());
        }
        assert_eq!(got, sent);
        got.len()
    });
    assert_eq!(frames, 3);
}

#[test]
fn tokio_reads_see_the_bytes_the_reader_had_buffered_first() {
    let (line, rest) = run(async {
        let server = asyncio::start_server(
            |_r: StreamReader, mut w: StreamWriter| async move {
                w.write(b"header\nbody bytes");
                w.close();
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let (mut r, _w) =
            asyncio::open_connection("127.0.0.1", server.local_addr().unwrap().port())
                .await
                .unwrap();
        let line = r.readline().await.unwrap();
        let mut rest = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut rest)
            .await
            .unwrap();
        (line, rest)
    });
    assert_eq!(line, b"header\n");
    assert_eq!(rest, b"body bytes");
}
