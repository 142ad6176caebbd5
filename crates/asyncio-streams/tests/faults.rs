//! Bad input, faults and load: each test is one guarantee.

mod common;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Write};
use std::rc::Rc;
use std::time::Duration;

use asyncio_streams::{
    ReadExactlyError, ReadUntilError, ServerOptions, StreamReader, StreamWriter, open_connection,
    start_server_with,
};
use common::{echo, run, serve, until};

/// A blocking client socket that resets (RST) its connection when dropped.
fn resetting_client(port: u16) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    socket2::SockRef::from(&s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    s
}

fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

#[test]
fn connection_refused_is_a_typed_error() {
    run(async {
        // Bind then close a port so nothing listens on it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = open_connection("127.0.0.1", port).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

#[test]
fn peer_reset_mid_read_is_an_error_not_a_hang() {
    run(async {
        let outcome = Rc::new(RefCell::new(None));
        let got_hello = Rc::new(Cell::new(false));
        let (o, g) = (outcome.clone(), got_hello.clone());
        let (_server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let (o, g) = (o.clone(), g.clone());
            async move {
                let _w = w;
                let first = r.readexactly(5).await.map_err(std::io::Error::from);
                g.set(first.ok().as_deref() == Some(&b"hello"[..]));
                // The peer resets while we wait for more.
                let more = r.read(100).await;
                *o.borrow_mut() = Some(more.map_err(|e| e.kind()));
            }
        })
        .await;
        let mut client = resetting_client(port);
        client.write_all(b"hello").unwrap();
        // The handler read "hello"; in the same step it went on to wait in read(100).
        until(|| got_hello.get()).await;
        assert!(outcome.borrow().is_none(), "the handler waits for more");
        drop(client);
        until(|| outcome.borrow().is_some()).await;
        let got = outcome.borrow_mut().take().unwrap();
        match got {
            Err(kind) => assert!(is_reset(kind), "unexpected error kind {kind:?}"),
            Ok(bytes) => assert_eq!(bytes, b"", "a reset may also read as EOF"),
        }
    });
}

#[test]
fn peer_reset_mid_write_fails_drain() {
    run(async {
        let outcome = Rc::new(RefCell::new(None));
        let o = outcome.clone();
        let blocked = Rc::new(Cell::new(false));
        let b = blocked.clone();
        let (_server, port) = serve(move |_r: StreamReader, mut w: StreamWriter| {
            let o = o.clone();
            let b = b.clone();
            async move {
                let chunk = vec![7u8; 64 * 1024];
                // Bounded: 1 GiB would be far more than any socket buffers.
                for _ in 0..16 * 1024 {
                    w.write(&chunk);
                    // Above the high-water mark: this drain waits for the peer.
                    b.set(w.write_buffer_size() > 64 * 1024);
                    if let Err(e) = w.drain().await {
                        *o.borrow_mut() = Some(e.kind());
                        return;
                    }
                }
                panic!("1 GiB written to a peer that reset");
            }
        })
        .await;
        let client = resetting_client(port);
        // The handler is blocked in drain() with data buffered: reset now.
        until(|| blocked.get()).await;
        drop(client);
        until(|| outcome.borrow().is_some()).await;
        let kind = outcome.borrow_mut().take().unwrap();
        assert!(is_reset(kind), "unexpected error kind {kind:?}");
    });
}

#[test]
fn half_close_peer_reads_to_eof_and_can_still_answer() {
    run(async {
        let (_server, port) = serve(|mut r: StreamReader, mut w: StreamWriter| async move {
            let all = r.read_to_eof().await.unwrap();
            assert!(r.at_eof());
            w.write(format!("got {} bytes", all.len()).as_bytes());
            w.close();
            w.wait_closed().await.unwrap();
        })
        .await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(&[1u8; 100_000]);
        w.write_eof().unwrap();
        assert!(!w.is_closing(), "write_eof is a half-close");
        assert_eq!(r.read_to_eof().await.unwrap(), b"got 100000 bytes");
    });
}

#[test]
fn line_longer_than_limit_is_an_error_and_the_stream_stays_usable() {
    run(async {
        let options = ServerOptions::new().limit(16);
        let results = Rc::new(RefCell::new(Vec::new()));
        let res = results.clone();
        let server = start_server_with(
            move |mut r: StreamReader, w: StreamWriter| {
                let res = res.clone();
                async move {
                    let _keep_open = w; // dropping the writer closes the connection
                    for _ in 0..3 {
                        let line = r.readline().await;
                        let done = matches!(&line, Ok(l) if l.is_empty());
                        res.borrow_mut().push(line.map_err(|e| match e {
                            ReadUntilError::LimitOverrun(e) => e.consumed,
                            other => panic!("unexpected {other:?}"),
                        }));
                        if done {
                            break;
                        }
                    }
                }
            },
            "127.0.0.1",
            0,
            &options,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        let mut msg = vec![b'x'; 40];
        msg.extend_from_slice(b"\nshort\n");
        w.write(&msg); // one write: the handler reads it in one chunk
        w.write_eof().unwrap();
        until(|| results.borrow().len() == 3).await;
        let results = results.borrow();
        assert_eq!(results[0], Err(40), "the separator is found past the limit");
        assert_eq!(results[1].as_deref(), Ok(&b"short\n"[..]));
        assert_eq!(results[2].as_deref(), Ok(&b""[..]));
    });
}

#[test]
fn readuntil_past_the_limit_leaves_the_data_in_the_buffer() {
    run(async {
        let options = asyncio_streams::ConnectOptions::new().limit(8);
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"0123456789abcdef;tail");
        })
        .await;
        let (mut r, _w) = asyncio_streams::open_connection_with("127.0.0.1", port, &options)
            .await
            .unwrap();
        let err = loop {
            // Until the whole message is in: the separator must be seen.
            match r.readuntil(b";").await {
                Err(ReadUntilError::LimitOverrun(e)) if e.consumed == 16 => break e,
                Err(ReadUntilError::LimitOverrun(_)) => asyncio_core::yield_now().await,
                other => panic!("expected LimitOverrunError, got {other:?}"),
            }
        };
        assert_eq!(err.consumed, 16);
        // Nothing was consumed: the caller can take the data some other way.
        assert_eq!(r.readexactly(17).await.unwrap(), b"0123456789abcdef;");
        assert_eq!(r.read_to_eof().await.unwrap(), b"tail");
    });
}

#[test]
fn readexactly_at_eof_returns_the_partial_bytes_in_the_error() {
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"only7by");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        match r.readexactly(10).await {
            Err(ReadExactlyError::Incomplete(e)) => {
                assert_eq!(e.partial, b"only7by");
                assert_eq!(e.expected, Some(10));
            }
            other => panic!("expected IncompleteReadError, got {other:?}"),
        }
        assert!(r.at_eof());
    });
}

#[test]
fn slow_client_does_not_block_fast_ones() {
    run(async {
        let (_server, port) = serve(echo).await;
        let fast_done = Rc::new(asyncio_sync::Event::new());
        // The slow client sends one byte at a time and finishes its line only
        // after the fast client is done: if the server waited on the slow
        // client, the fast one could never finish.
        let fd = fast_done.clone();
        let slow = asyncio_core::create_task(async move {
            let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
            for b in b"slow" {
                w.write(&[*b]);
                w.drain().await.unwrap();
                asyncio_core::sleep(Duration::from_millis(1)).await;
            }
            fd.wait().await;
            w.write(b"\n");
            r.readline().await.unwrap()
        });
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        for i in 0..200 {
            let line = format!("fast {i}\n");
            w.write(line.as_bytes());
            w.drain().await.unwrap();
            assert_eq!(r.readline().await.unwrap(), line.as_bytes());
        }
        assert!(!slow.to_ref().done());
        fast_done.set();
        assert_eq!(slow.await.unwrap(), b"slow\n");
    });
}

#[test]
fn client_that_never_reads_keeps_server_memory_bounded_by_the_high_water_mark() {
    const CHUNK: usize = 16 * 1024;
    const TOTAL: usize = 64 * 1024 * 1024;
    run(async {
        let max_buffered = Rc::new(Cell::new(0usize));
        let written = Rc::new(Cell::new(0usize));
        let in_drain = Rc::new(Cell::new(false));
        let (m, wr, d) = (max_buffered.clone(), written.clone(), in_drain.clone());
        let (_server, port) = serve(move |_r: StreamReader, mut w: StreamWriter| {
            let (m, wr, d) = (m.clone(), wr.clone(), d.clone());
            async move {
                let chunk = vec![1u8; CHUNK];
                while wr.get() < TOTAL {
                    w.write(&chunk);
                    wr.set(wr.get() + CHUNK);
                    m.set(m.get().max(w.write_buffer_size()));
                    d.set(true);
                    w.drain().await.unwrap();
                    d.set(false);
                }
                w.close();
                w.wait_closed().await.unwrap();
            }
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        // The handler ends up parked in drain() with its buffer above the mark.
        until(|| in_drain.get() && max_buffered.get() > 64 * 1024).await;
        let stalled_at = written.get();
        assert!(
            stalled_at < TOTAL,
            "the writer stalled instead of buffering everything"
        );
        assert!(
            max_buffered.get() <= 64 * 1024 + CHUNK,
            "buffer grew to {} bytes",
            max_buffered.get()
        );
        // Reading it all: no byte lost, and the writer resumes.
        let all = r.read_to_eof().await.unwrap();
        assert_eq!(all.len(), TOTAL);
        assert!(max_buffered.get() <= 64 * 1024 + CHUNK);
    });
}

#[test]
fn graceful_close_loses_no_written_byte() {
    const SIZE: usize = 8 * 1024 * 1024;
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
            w.write(&data); // far more than the socket takes at once
            w.close(); // no drain: close flushes first
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        let got = r.read_to_eof().await.unwrap();
        assert_eq!(got.len(), SIZE);
        assert!(got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
    });
}

#[test]
fn dropping_the_writer_still_flushes_what_was_written() {
    const SIZE: usize = 4 * 1024 * 1024;
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(&vec![3u8; SIZE]);
            drop(w);
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.read_to_eof().await.unwrap(), vec![3u8; SIZE]);
    });
}

#[test]
fn cancelled_readline_loses_no_data_and_the_stream_still_closes() {
    run(async {
        let sent = Rc::new(Cell::new(false));
        let s = sent.clone();
        let (_server, port) = serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let s = s.clone();
            async move {
                w.write(b"part");
                s.set(w.write_buffer_size() == 0); // in the client's socket now
                // Wait for the client's go-ahead before finishing the line.
                let _ = r.readline().await;
                w.write(b"ial line\n");
                let _ = r.read_to_eof().await;
            }
        })
        .await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        until(|| sent.get()).await;
        // readline is cancelled while it holds "part" and waits for more (the
        // readable event is pending, so the loop delivers it before the timer).
        let timed_out = asyncio_core::timeout(Duration::from_millis(30), r.readline()).await;
        assert!(timed_out.is_err());
        w.write(b"go\n");
        assert_eq!(r.readline().await.unwrap(), b"partial line\n");
        w.close();
        w.wait_closed().await.unwrap();
    });
}

#[test]
fn cancelled_drain_leaves_the_stream_closable_and_loses_no_byte() {
    const SIZE: usize = 16 * 1024 * 1024;
    run(async {
        let received = Rc::new(Cell::new(None));
        let rec = received.clone();
        let gate = Rc::new(asyncio_sync::Event::new());
        let g = gate.clone();
        let (_server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let (rec, g) = (rec.clone(), g.clone());
            async move {
                let _keep_open = w; // dropping the writer closes the connection
                g.wait().await; // do not read until the client's drain was cancelled
                rec.set(Some(r.read_to_eof().await.unwrap().len()));
            }
        })
        .await;
        let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(&vec![9u8; SIZE]);
        let timed_out = asyncio_core::timeout(Duration::from_millis(30), w.drain()).await;
        assert!(
            timed_out.is_err(),
            "drain waits while the peer does not read"
        );
        w.close();
        gate.set();
        w.wait_closed().await.unwrap();
        until(|| received.get().is_some()).await;
        assert_eq!(received.get(), Some(SIZE));
    });
}

#[test]
fn cancelling_a_task_blocked_in_drain_still_delivers_what_it_wrote() {
    const SIZE: usize = 16 * 1024 * 1024;
    run(async {
        let gate = Rc::new(asyncio_sync::Event::new());
        let received = Rc::new(Cell::new(None));
        let (g, rec) = (gate.clone(), received.clone());
        let (_server, port) = serve(move |mut r: StreamReader, w: StreamWriter| {
            let (g, rec) = (g.clone(), rec.clone());
            async move {
                let _keep_open = w;
                g.wait().await; // read only once the writer task was cancelled
                rec.set(Some(
                    r.read_to_eof().await.map(|d| d.len()).map_err(|e| e.kind()),
                ));
            }
        })
        .await;
        let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        let in_drain = Rc::new(Cell::new(false));
        let d = in_drain.clone();
        let writer_task = asyncio_core::create_task(async move {
            w.write(&vec![5u8; SIZE]);
            d.set(true);
            let _ = w.drain().await; // the peer does not read: blocks
            unreachable!("drain cannot finish before the peer reads");
        });
        until(|| in_drain.get()).await;
        asyncio_core::yield_now().await;
        assert!(writer_task.to_ref().cancel());
        // The task's future is dropped with its writer, which closes the
        // stream the graceful way: the buffered bytes are still flushed.
        until(|| writer_task.to_ref().done()).await;
        assert!(writer_task.to_ref().cancelled());
        gate.set();
        until(|| received.get().is_some()).await;
        assert_eq!(received.get(), Some(Ok(SIZE)));
    });
}
