//! asyncio's networking odds and ends (issue 27 item 3): `async for line in
//! reader`, ... Each test is one guarantee, derived from CPython's
//! `test_streams.py`, `test_sock_lowlevel.py`, `test_staggered.py`.

mod common;

use std::time::Duration;

use asyncio_streams::{ReadUntilError, StreamWriter, open_connection};
use common::{run, serve};
use futures::StreamExt;

#[test]
fn lines_yield_each_line_and_end_at_eof_keeping_a_last_line_without_newline() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"a\nbb\n\nccc");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        let lines: Vec<_> = r.lines().map(Result::unwrap).collect().await;
        assert_eq!(lines, [&b"a\n"[..], b"bb\n", b"\n", b"ccc"]);
        server.close();
    });
}

#[test]
fn a_line_over_the_limit_is_an_error_item_and_the_lines_go_on_after_it() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(&[b'x'; 100]);
            w.write(b"\nshort\n");
        })
        .await;
        let opts = asyncio_streams::ConnectOptions::new().limit(10);
        let (mut r, _w) = asyncio_streams::open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        let items: Vec<_> = r.lines().collect().await;
        assert!(
            matches!(items[0], Err(ReadUntilError::LimitOverrun(_))),
            "{items:?}"
        );
        assert_eq!(items.last().unwrap().as_deref().unwrap(), b"short\n");
        server.close();
    });
}

#[test]
fn dropping_the_lines_in_the_middle_of_a_line_loses_nothing() {
    run(async {
        let (server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"hal");
            let _ = w.drain().await;
            asyncio_core::sleep(Duration::from_millis(50)).await;
            w.write(b"f\n");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        let cut = asyncio_core::timeout(Duration::from_millis(10), r.lines().next()).await;
        assert!(cut.is_err(), "the line is not complete yet");
        assert_eq!(r.lines().next().await.unwrap().unwrap(), b"half\n");
        server.close();
    });
}
