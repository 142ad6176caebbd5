//! What a user of open_connection/start_server relies on.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio_streams::{
    ReadExactlyError, ReadUntilError, ServerOptions, StreamReader, StreamWriter, WriterClosedError,
    open_connection, open_connection_with, open_unix_connection, start_server_with,
    start_unix_server,
};
use common::{echo, run, serve, until};
use futures::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[test]
fn echo_round_trips_lines() {
    run(async {
        let (server, port) = serve(echo).await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        for i in 0..100 {
            let line = format!("line {i}\n");
            w.write(line.as_bytes());
            w.drain().await.unwrap();
            assert_eq!(r.readline().await.unwrap(), line.as_bytes());
        }
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
    });
}

#[test]
fn port_zero_binds_a_free_port_and_sockets_report_it() {
    run(async {
        let (server, port) = serve(echo).await;
        assert_ne!(port, 0);
        assert_eq!(server.sockets().len(), 1);
        assert_eq!(server.sockets()[0].as_inet().unwrap().port(), port);
    });
}

#[test]
fn host_names_resolve_through_the_executor() {
    run(async {
        let (_server, port) = serve(echo).await;
        // "localhost" may resolve to ::1 first, which refuses: the next address is tried.
        let (mut r, mut w) = open_connection("localhost", port).await.unwrap();
        w.write(b"hi\n");
        assert_eq!(r.readline().await.unwrap(), b"hi\n");
        assert!(w.peer_addr().unwrap().as_inet().unwrap().ip().is_loopback());
    });
}

#[test]
fn unix_server_and_connection_echo_and_clean_up_the_socket_file() {
    let dir = std::env::temp_dir().join(format!("asyncio-streams-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let p = path.clone();
    run(async move {
        let server = start_unix_server(echo, &p).await.unwrap();
        assert_eq!(server.sockets()[0].as_pathname(), Some(p.as_path()));
        let (mut r, mut w) = open_unix_connection(&p).await.unwrap();
        w.write(b"over unix\n");
        assert_eq!(r.readline().await.unwrap(), b"over unix\n");
        w.close();
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
        assert!(!p.exists(), "closing the server removes its socket file");
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn read_returns_at_most_n_and_empty_at_eof() {
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"abcdef");
            w.close();
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.readexactly(2).await.unwrap(), b"ab");
        assert_eq!(r.read(3).await.unwrap(), b"cde");
        assert_eq!(r.read(100).await.unwrap(), b"f");
        assert_eq!(r.read(100).await.unwrap(), b"");
        assert!(r.at_eof());
        assert_eq!(r.read_to_eof().await.unwrap(), b"");
    });
}

#[test]
fn readuntil_includes_multibyte_separator() {
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            w.write(b"head\r\n\r\nbody");
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.readuntil(b"\r\n\r\n").await.unwrap(), b"head\r\n\r\n");
        match r.readuntil(b"\r\n").await {
            Err(ReadUntilError::Incomplete(e)) => {
                assert_eq!(e.partial, b"body");
                assert_eq!(e.expected, None);
            }
            other => panic!("expected IncompleteReadError, got {other:?}"),
        }
        assert!(matches!(
            r.readuntil(b"").await,
            Err(ReadUntilError::EmptySeparator)
        ));
    });
}

#[test]
fn write_after_close_is_reported_by_drain() {
    run(async {
        let (_server, port) = serve(echo).await;
        let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.close();
        assert!(w.is_closing());
        w.write(b"late");
        let err = w.drain().await.unwrap_err();
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<WriterClosedError>());
        assert!(matches!(
            inner,
            Some(WriterClosedError::WriteAfterClose | WriterClosedError::ConnectionLost)
        ));
    });
}

#[test]
fn write_after_write_eof_is_reported_by_drain() {
    run(async {
        let (_server, port) = serve(echo).await;
        let (_r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        assert!(w.can_write_eof());
        w.write_eof().unwrap();
        w.write(b"late");
        let err = w.drain().await.unwrap_err();
        let inner = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<WriterClosedError>());
        assert_eq!(inner, Some(&WriterClosedError::WriteAfterEof));
    });
}

#[test]
fn close_clients_closes_accepted_connections_and_wait_closed_returns() {
    run(async {
        let (server, port) = serve(echo).await;
        let mut clients = Vec::new();
        for _ in 0..3 {
            let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
            w.write(b"x\n");
            assert_eq!(r.readline().await.unwrap(), b"x\n");
            clients.push((r, w));
        }
        assert_eq!(server.active_connections(), 3);
        server.close();
        assert!(!server.is_serving());
        // The connections stay open after close() ...
        assert_eq!(server.active_connections(), 3);
        server.close_clients();
        server.wait_closed().await;
        for (mut r, _w) in clients {
            assert_eq!(r.read_to_eof().await.unwrap(), b"");
        }
    });
}

#[test]
fn abort_clients_drops_connections_at_once() {
    run(async {
        let (server, port) = serve(|mut r: StreamReader, w: StreamWriter| async move {
            let _keep_open = w; // dropping the writer would close the connection
            let _ = r.read_to_eof().await;
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        until(|| server.active_connections() == 1).await;
        server.close();
        server.abort_clients();
        server.wait_closed().await;
        assert_eq!(server.active_connections(), 0);
        // The peer sees the end of the stream (or a reset).
        let _ = r.read_to_eof().await;
    });
}

#[test]
fn serve_forever_returns_when_closed_and_refuses_a_second_caller() {
    run(async {
        let options = ServerOptions::new().start_serving(false);
        let server = start_server_with(echo, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        assert!(!server.is_serving());
        let s2 = server.clone();
        let forever = asyncio_core::create_task(async move { s2.serve_forever().await });
        asyncio_core::yield_now().await;
        assert!(server.is_serving());
        assert!(
            server.serve_forever().await.is_err(),
            "a second serve_forever fails"
        );
        let port = server.local_addr().unwrap().port();
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(b"ping\n");
        assert_eq!(r.readline().await.unwrap(), b"ping\n");
        server.close();
        forever.await.unwrap().unwrap();
        assert!(
            server.start_serving().is_err(),
            "a closed server cannot serve again"
        );
    });
}

#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    run(async {
        let options = ServerOptions::new().reuse_port(true);
        let a = start_server_with(echo, "127.0.0.1", 0, &options)
            .await
            .unwrap();
        let port = a.local_addr().unwrap().port();
        let b = start_server_with(echo, "127.0.0.1", port, &options)
            .await
            .unwrap();
        assert_eq!(b.local_addr().unwrap().port(), port);
        let without = start_server_with(echo, "127.0.0.1", port, &ServerOptions::new()).await;
        assert_eq!(without.unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
    });
}

#[test]
fn limit_option_reaches_the_reader() {
    run(async {
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let options = ServerOptions::new().limit(123);
        let server = start_server_with(
            move |r: StreamReader, _w| {
                s.set(r.limit());
                async {}
            },
            "127.0.0.1",
            0,
            &options,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let opts = asyncio_streams::ConnectOptions::new().limit(7);
        let (r, _w) = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        assert_eq!(r.limit(), 7);
        until(|| seen.get() == 123).await;
    });
}

#[test]
fn futures_io_traits_read_and_write() {
    run(async {
        let (_server, port) = serve(|mut r: StreamReader, mut w: StreamWriter| async move {
            let mut buf = Vec::new();
            AsyncReadExt::read_to_end(&mut r, &mut buf).await.unwrap();
            w.write_all(&buf).await.unwrap();
            AsyncWriteExt::close(&mut w).await.unwrap();
        })
        .await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        w.write_all(&big).await.unwrap();
        w.flush().await.unwrap();
        AsyncWriteExt::close(&mut w).await.unwrap(); // write_eof
        let mut first = String::new();
        let mut got = Vec::new();
        // AsyncBufRead: read_line stops at the first \n (byte 10).
        AsyncBufReadExt::read_until(&mut r, 10, &mut got)
            .await
            .unwrap();
        assert_eq!(got, &big[..11]);
        AsyncReadExt::read_to_end(&mut r, &mut got).await.unwrap();
        assert_eq!(got, big);
        assert!(
            AsyncBufReadExt::read_line(&mut r, &mut first)
                .await
                .unwrap()
                == 0
        );
    });
}

#[test]
fn handler_panic_goes_to_the_exception_handler_and_server_goes_on() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let seen = reports.clone();
    let lp = asyncio_core::EventLoop::new();
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        seen.borrow_mut().push(ctx.to_string());
    }));
    lp.run_until_complete(async {
        let (_server, port) = serve(|mut r: StreamReader, mut w: StreamWriter| async move {
            let line = r.readline().await.unwrap();
            if line == b"boom\n" {
                panic!("handler failed");
            }
            w.write(&line);
        })
        .await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(b"boom\n");
        assert_eq!(r.read_to_eof().await.unwrap(), b"");
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(b"ok\n");
        assert_eq!(r.readline().await.unwrap(), b"ok\n");
    })
    .unwrap();
    assert!(
        reports
            .borrow()
            .iter()
            .any(|m| m.contains("handler failed"))
    );
}

#[test]
fn readexactly_waits_for_all_bytes_across_writes() {
    run(async {
        let (_server, port) = serve(|_r, mut w: StreamWriter| async move {
            for chunk in [&b"ab"[..], b"cd", b"ef"] {
                w.write(chunk);
                w.drain().await.unwrap();
                asyncio_core::yield_now().await;
            }
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.readexactly(5).await.unwrap(), b"abcde");
        assert!(matches!(
            r.readexactly(2).await,
            Err(ReadExactlyError::Incomplete(e)) if e.partial == b"f"
        ));
    });
}

#[test]
fn a_callback_that_panics_before_its_future_leaves_the_server_accepting() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let seen = reports.clone();
    let lp = asyncio_core::EventLoop::new();
    lp.set_exception_handler(Some(move |ctx: &asyncio_core::ExceptionContext| {
        seen.borrow_mut().push(ctx.to_string());
    }));
    lp.run_until_complete(async {
        let calls = Rc::new(Cell::new(0));
        let (_server, port) = serve(move |_r: StreamReader, mut w: StreamWriter| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                panic!("callback failed");
            }
            async move { w.write(b"served") }
        })
        .await;
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(
            r.read_to_eof().await.unwrap(),
            b"",
            "the first client is closed"
        );
        let (mut r, _w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(r.read_to_eof().await.unwrap(), b"served");
    })
    .unwrap();
    assert!(
        reports
            .borrow()
            .iter()
            .any(|m| m.contains("callback failed"))
    );
}

#[test]
fn outside_a_loop_connecting_is_an_error_not_a_panic() {
    // A future polled by another executor: no asyncio-rs loop runs.
    let by_name = futures::executor::block_on(open_connection("localhost", 1));
    assert_eq!(by_name.unwrap_err().kind(), std::io::ErrorKind::Other);
    let by_ip = futures::executor::block_on(open_connection("127.0.0.1", 1));
    assert!(by_ip.is_err());
    let server = futures::executor::block_on(asyncio_streams::start_server(echo, "127.0.0.1", 0));
    assert_eq!(server.unwrap_err().kind(), std::io::ErrorKind::Other);
}

#[test]
fn dropping_the_last_server_handle_stops_listening() {
    run(async {
        let (server, port) = serve(echo).await;
        let clone = server.clone();
        drop(server);
        // A clone still serves.
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(b"still\n");
        assert_eq!(r.readline().await.unwrap(), b"still\n");
        drop(clone);
        let err = open_connection("127.0.0.1", port).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    });
}

#[test]
fn unix_server_replaces_a_stale_socket_file_but_not_a_regular_file() {
    let dir = std::env::temp_dir().join(format!("asyncio-streams-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join("stale.sock");
    let regular = dir.join("regular.file");
    // A socket file left behind by a process that is gone.
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    std::fs::write(&regular, b"data").unwrap();
    let (s, r) = (stale.clone(), regular.clone());
    run(async move {
        let server = start_unix_server(echo, &s).await.unwrap();
        let (mut rd, mut wr) = open_unix_connection(&s).await.unwrap();
        wr.write(b"fresh\n");
        assert_eq!(rd.readline().await.unwrap(), b"fresh\n");
        let err = start_unix_server(echo, &r).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(server);
    });
    assert_eq!(
        std::fs::read(&regular).unwrap(),
        b"data",
        "a regular file is left alone"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn writer_accessors_report_both_ends_and_nodelay_can_be_cleared() {
    run(async {
        let (_server, port) = serve(echo).await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        assert_eq!(w.peer_addr().unwrap().as_inet().unwrap().port(), port);
        assert_eq!(r.peer_addr().unwrap().as_inet().unwrap().port(), port);
        assert!(
            w.local_addr()
                .unwrap()
                .as_inet()
                .unwrap()
                .ip()
                .is_loopback()
        );
        w.set_nodelay(false).unwrap();
        w.writelines(["a", "b", "c\n"]);
        assert_eq!(w.write_buffer_limits(), (16 * 1024, 64 * 1024));
        assert_eq!(r.readline().await.unwrap(), b"abc\n");
        w.close();
        w.wait_closed().await.unwrap();
        assert!(w.peer_addr().is_err(), "no address once closed");
    });
}

/// Issue 28: one error type to match on for every read, and a `Debug` that
/// shows the partial bytes as text a person can read.
#[test]
fn readexactly_and_readline_errors_meet_in_one_read_error_that_shows_bytes_readably() {
    async fn read_frame(r: &mut StreamReader) -> Result<Vec<u8>, asyncio_streams::ReadError> {
        let header = r.readline().await?;
        let len: usize = String::from_utf8_lossy(&header).trim().parse().unwrap();
        Ok(r.readexactly(len).await?)
    }
    let err = run(async {
        let (server, port) = common::serve(|_r, mut w: StreamWriter| async move {
            w.write(b"5\nab\"c");
            let _ = w.drain().await;
        })
        .await;
        let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port)
            .await
            .unwrap();
        let err = read_frame(&mut r).await.unwrap_err();
        server.close();
        err
    });
    assert!(err.is_incomplete());
    assert_eq!(err.partial(), Some(&b"ab\"c"[..]));
    assert_eq!(
        format!("{err:?}"),
        r#"Incomplete(IncompleteReadError { partial: b"ab\"c", expected: Some(5) })"#
    );
}

/// Issue 28: a server callback may be `FnMut` (it counts connections without
/// a `Cell`), and `with_state` hands each connection a clone of the state.
#[test]
fn a_server_callback_may_be_fnmut_and_with_state_gives_each_connection_the_state() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let (numbers, seen) = run(async {
        let mut next = 0u32;
        let counting = asyncio_streams::start_server(
            move |_r, mut w: StreamWriter| {
                next += 1;
                let n = next;
                async move { w.write(n.to_string().as_bytes()) }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = counting.local_addr().unwrap().port();
        let mut numbers = Vec::new();
        for _ in 0..3 {
            let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port)
                .await
                .unwrap();
            numbers.push(String::from_utf8(r.read_to_eof().await.unwrap()).unwrap());
        }
        counting.close();

        let seen = Rc::new(RefCell::new(0));
        async fn note(seen: Rc<RefCell<u32>>, _r: StreamReader, _w: StreamWriter) {
            *seen.borrow_mut() += 1;
        }
        let stateful = asyncio_streams::start_server(
            asyncio_streams::with_state(seen.clone(), note),
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = stateful.local_addr().unwrap().port();
        for _ in 0..2 {
            let (mut r, _w) = asyncio_streams::open_connection("127.0.0.1", port)
                .await
                .unwrap();
            let _ = r.read_to_eof().await;
        }
        stateful.close();
        (numbers, seen.take())
    });
    assert_eq!(numbers, ["1", "2", "3"]);
    assert_eq!(seen, 2);
}

/// asyncio's `Server.get_loop()`: the loop the server was made on, which its
/// connections run on; it does not keep that loop open once its owner is gone.
#[test]
fn get_loop_is_the_loop_the_server_runs_on_and_does_not_keep_it_open() {
    let lp = asyncio_core::EventLoop::new();
    let server = lp
        .run_until_complete(async {
            let (server, port) = serve(echo).await;
            let here = asyncio_core::get_running_loop().unwrap();
            assert!(server.get_loop() == here);
            assert!(server.get_loop().is_running());
            // A connection handled by the server's loop works through it.
            let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
            w.write(b"ping\n");
            assert_eq!(r.readline().await.unwrap(), b"ping\n");
            server
        })
        .unwrap();
    let its_loop = server.get_loop();
    assert!(its_loop == lp && !its_loop.is_running());
    drop(lp); // the owner: the loop closes even though the server keeps a handle
    assert!(its_loop.is_closed());
    drop(its_loop);
    drop(server);
}
