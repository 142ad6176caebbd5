//! TLS bad input and faults: each gives a typed error on the side that sees
//! it, and the server goes on serving. Server-side errors are read through
//! `start_tls` in the handler, which returns the handshake's failure.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use asyncio_streams::{
    ConnectOptions, Server, ServerOptions, ServerTls, StartTlsOptions, StreamReader, StreamWriter,
    TlsError, open_connection_with, start_server_with,
};
use common::run;
use futures::StreamExt;
use tls_support::{blocking_client, blocking_server, drain, pki, records_for};

fn client_opts(tls: &asyncio_streams::ClientTls) -> ConnectOptions {
    ConnectOptions::new()
        .ssl(tls.clone())
        .server_hostname("localhost")
}

type Reports = futures::channel::mpsc::UnboundedReceiver<Result<(), std::io::Error>>;

/// A plaintext server whose handler upgrades at once with `start_tls` and
/// reports what the upgrade and a first read gave.
async fn upgrading_server(tls: ServerTls, opts: StartTlsOptions) -> (Server, u16, Reports) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    let (server, port) = common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
        let (tls, opts, tx) = (tls.clone(), opts.clone(), tx.clone());
        async move {
            let res = async {
                w.start_tls(&mut r, tls, &opts).await?;
                r.read(100).await.map(drop)
            }
            .await;
            let _ = tx.unbounded_send(res);
        }
    })
    .await;
    // Returned, not forgotten: the test keeps it serving, and its end
    // closes it (a forgotten server leaked its loop: LeakSanitizer).
    (server, port, rx)
}

fn tls_error(res: Result<(), std::io::Error>) -> TlsError {
    let err = res.expect_err("the peer misbehaved: an error is expected");
    TlsError::from_io(&err)
        .cloned()
        .unwrap_or_else(|| panic!("a TlsError was expected, got {err:?}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    asyncio_core::to_thread(f).await.unwrap()
}

#[test]
fn a_plaintext_client_on_a_tls_port_is_not_tls_to_the_server() {
    let p = pki();
    run(async move {
        let (_server, port, mut reports) = upgrading_server(p.server, StartTlsOptions::new()).await;
        blocking(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .unwrap();
            drain(s)
        })
        .await;
        assert_eq!(tls_error(reports.next().await.unwrap()), TlsError::NotTls);
    });
}

#[test]
fn a_tls_client_on_a_plaintext_port_is_told_the_peer_is_not_tls() {
    let p = pki();
    run(async move {
        let (_server, port) = common::serve(|_r, mut w: StreamWriter| async move {
            w.write(b"220 mail.example.com ESMTP ready\r\n");
            w.close();
        })
        .await;
        let err = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap_err();
        assert_eq!(TlsError::from_io(&err), Some(&TlsError::NotTls), "{err:?}");
    });
}

#[test]
fn a_client_that_stalls_mid_handshake_is_dropped_by_the_handshake_timeout() {
    let p = pki();
    let client = p.client.clone();
    run(async move {
        let opts = StartTlsOptions::new().ssl_handshake_timeout(Duration::from_millis(200));
        let (_server, port, mut reports) = upgrading_server(p.server, opts).await;
        let closed = blocking(move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            // Half a ClientHello, then nothing.
            let mut tls = blocking_client(&client, s.try_clone().unwrap(), "localhost");
            let mut hello = Vec::new();
            tls.conn.write_tls(&mut hello).unwrap();
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).is_ok()
        })
        .await;
        assert!(closed, "the server closes the stalled connection");
        assert_eq!(
            tls_error(reports.next().await.unwrap()),
            TlsError::HandshakeTimeout(Duration::from_millis(200))
        );
    });
}

#[test]
fn a_server_that_never_answers_times_the_client_handshake_out() {
    let p = pki();
    run(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let opts = client_opts(&p.client).ssl_handshake_timeout(Duration::from_millis(200));
        let err = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::HandshakeTimeout(Duration::from_millis(200)))
        );
        drop(listener);
    });
}

#[test]
fn a_tls_server_drops_a_stalled_client_and_keeps_serving() {
    let p = pki();
    run(async move {
        let opts = ServerOptions::new()
            .ssl(p.server)
            .ssl_handshake_timeout(Duration::from_millis(200));
        let server = start_server_with(
            |mut r: StreamReader, mut w: StreamWriter| async move {
                let line = r.readline().await.unwrap_or_default();
                w.write(&line);
            },
            "127.0.0.1",
            0,
            &opts,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let stalled = blocking(move || {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            drain(s)
        });
        let good = async {
            let (mut r, mut w) =
                open_connection_with("127.0.0.1", port, &client_opts(&p.client)).await?;
            w.write(b"still serving\n");
            r.readline().await.map_err(std::io::Error::from)
        };
        let (stalled_got, good_got) = futures::join!(stalled, good);
        assert_eq!(good_got.unwrap(), b"still serving\n");
        assert!(
            stalled_got.is_empty(),
            "a stalled client is closed without a word"
        );
        server.close();
        server.wait_closed().await;
    });
}

/// A blocking TLS server thread: handshake, then `then` on the raw socket.
fn misbehaving_server(
    tls: ServerTls,
    then: impl FnOnce(asyncio_streams::rustls::ServerConnection, TcpStream) + Send + 'static,
) -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (sock, _) = listener.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let (conn, sock) = blocking_server(&tls, sock);
        then(conn, sock);
    });
    (port, t)
}

#[test]
fn a_record_cut_short_by_the_peer_is_a_truncated_record() {
    let p = pki();
    run(async move {
        let (port, t) = misbehaving_server(p.server, |mut conn, mut sock| {
            let records = records_for(&mut conn, b"hello, this is cut");
            sock.write_all(&records[..records.len() - 5]).unwrap();
        });
        let (mut r, _w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        let err = r.read_to_eof().await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(TlsError::from_io(&err), Some(&TlsError::TruncatedRecord));
        blocking(move || t.join().unwrap()).await;
    });
}

#[test]
fn an_end_without_close_notify_reads_as_eof_unless_asked_otherwise() {
    let p = pki();
    run(async move {
        for suppress in [true, false] {
            let (port, t) = misbehaving_server(p.server.clone(), |mut conn, mut sock| {
                let records = records_for(&mut conn, b"all of it");
                sock.write_all(&records).unwrap();
                // Closed without close_notify.
            });
            let opts = client_opts(&p.client).suppress_ragged_eofs(suppress);
            let (mut r, _w) = open_connection_with("127.0.0.1", port, &opts)
                .await
                .unwrap();
            assert_eq!(r.read(100).await.unwrap(), b"all of it");
            let end = r.read(100).await;
            if suppress {
                // asyncio's behaviour: an ordinary end of stream.
                assert_eq!(end.unwrap(), b"");
            } else {
                let err = end.unwrap_err();
                assert_eq!(TlsError::from_io(&err), Some(&TlsError::MissingCloseNotify));
            }
            blocking(move || t.join().unwrap()).await;
        }
    });
}

#[test]
fn a_garbage_record_after_the_handshake_is_a_protocol_error() {
    let p = pki();
    run(async move {
        let (port, t) = misbehaving_server(p.server, |_conn, mut sock| {
            let mut garbage = vec![0x17, 0x03, 0x03, 0x00, 0x20];
            garbage.extend([0xab; 32]);
            sock.write_all(&garbage).unwrap();
            drain(sock);
        });
        let (mut r, w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        let err = r.read(100).await.unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Protocol(
                    asyncio_streams::rustls::Error::DecryptError
                ))
            ),
            "{err:?}"
        );
        // The connection is over, and says why.
        assert!(w.is_closing());
        assert!(TlsError::from_io(&w.wait_closed().await.unwrap_err()).is_some());
        blocking(move || t.join().unwrap()).await;
    });
}

#[test]
fn a_renegotiation_attempt_is_a_protocol_error_on_the_server() {
    let p = pki();
    let client = p.client.clone();
    run(async move {
        let (_server, port, mut reports) = upgrading_server(p.server, StartTlsOptions::new()).await;
        blocking(move || {
            let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut tls = blocking_client(&client, sock, "localhost");
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            // A second ClientHello on the established connection.
            let mut again = blocking_client(&client, tls.sock.try_clone().unwrap(), "localhost");
            let mut hello = Vec::new();
            again.conn.write_tls(&mut hello).unwrap();
            tls.sock.write_all(&hello).unwrap();
            drain(tls.sock)
        })
        .await;
        assert!(matches!(
            tls_error(reports.next().await.unwrap()),
            TlsError::Protocol(_)
        ));
    });
}

#[test]
fn close_gives_up_waiting_for_close_notify_after_the_shutdown_timeout() {
    let p = pki();
    let client = p.client.clone();
    run(async move {
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let opts = ServerOptions::new()
            .ssl(p.server)
            .ssl_shutdown_timeout(Duration::from_millis(200));
        let server = start_server_with(
            move |_r, w: StreamWriter| {
                let tx = tx.clone();
                async move {
                    w.close();
                    // The client never answers our close_notify.
                    let _ = tx.unbounded_send(w.wait_closed().await.is_ok());
                }
            },
            "127.0.0.1",
            0,
            &opts,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut tls = blocking_client(&client, sock, "localhost");
            while tls.conn.is_handshaking() {
                tls.conn.complete_io(&mut tls.sock).unwrap();
            }
            // Keep the socket open, silent, until the test is done.
            let _ = hold.recv_timeout(Duration::from_secs(20));
        });
        assert_eq!(rx.next().await, Some(true));
        assert_eq!(server.active_connections(), 0);
        release.send(()).unwrap();
        blocking(move || peer.join().unwrap()).await;
    });
}
