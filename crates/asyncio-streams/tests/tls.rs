//! TLS on the streams: asyncio's `ssl=` options, `start_tls`, and the reader
//! and writer keeping every plaintext behaviour. Each test is one guarantee.

mod common;
mod tls_support;

use std::io::{Read, Write};
use std::time::Duration;

use asyncio_streams::{
    ClientTls, ConnectOptions, ReadUntilError, ServerOptions, ServerTls, StartTlsOptions,
    StreamReader, StreamWriter, TlsError, open_connection, open_connection_with,
    open_unix_connection_with, rustls, start_server_with, start_unix_server_with,
};
use common::run;
use tls_support::{Ca, blocking_client, pki};

async fn tls_server<F, Fut>(tls: ServerTls, cb: F) -> (asyncio_streams::Server, u16)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: std::future::Future + 'static,
{
    let server = start_server_with(cb, "127.0.0.1", 0, &ServerOptions::new().ssl(tls))
        .await
        .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port)
}

fn client_opts(tls: &ClientTls) -> ConnectOptions {
    ConnectOptions::new()
        .ssl(tls.clone())
        .server_hostname("localhost")
}

async fn echo_lines(mut r: StreamReader, mut w: StreamWriter) {
    while let Ok(line) = r.readline().await {
        if line.is_empty() {
            break;
        }
        w.write(&line);
        if w.drain().await.is_err() {
            break;
        }
    }
    w.close();
    let _ = w.wait_closed().await;
}

#[test]
fn tls_stream_keeps_readline_readuntil_readexactly() {
    let p = pki();
    run(async move {
        let (server, port) = tls_server(p.server, |_r, mut w: StreamWriter| async move {
            w.write(b"line one\nfield;rest-of-it");
            w.write(&[7u8; 5000]);
            w.close();
        })
        .await;
        let (mut r, _w) =
            open_connection_with("localhost", port, &ConnectOptions::new().ssl(p.client))
                .await
                .unwrap();
        assert_eq!(r.readline().await.unwrap(), b"line one\n");
        assert_eq!(r.readuntil(b";").await.unwrap(), b"field;");
        assert_eq!(r.readexactly(10).await.unwrap(), b"rest-of-it");
        assert_eq!(r.readexactly(5000).await.unwrap(), vec![7u8; 5000]);
        // The server's close sent close_notify: a clean end of stream.
        assert_eq!(r.read_to_eof().await.unwrap(), b"");
        assert!(r.at_eof());
        server.close();
    });
}

#[test]
fn echo_over_tls_round_trips_many_lines() {
    let p = pki();
    run(async move {
        let (server, port) = tls_server(p.server, echo_lines).await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        for i in 0..200 {
            let line = format!("message {i}\n");
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
fn readline_limit_overrun_works_over_tls() {
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(p.server, |_r, mut w: StreamWriter| async move {
            w.write(b"a line much too long\nshort\n");
        })
        .await;
        let opts = client_opts(&p.client).limit(8);
        let (mut r, _w) = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        assert!(matches!(
            r.readline().await,
            Err(ReadUntilError::LimitOverrun(_))
        ));
        assert_eq!(r.readline().await.unwrap(), b"short\n");
    });
}

#[test]
fn drain_respects_water_marks_and_every_byte_arrives_over_tls() {
    let p = pki();
    run(async move {
        let (server, port) = tls_server(
            p.server,
            |mut r: StreamReader, mut w: StreamWriter| async move {
                let all = r.read_to_eof().await.unwrap();
                w.write(format!("{}\n", all.len()).as_bytes());
                let sum: u64 = all.iter().map(|&b| u64::from(b)).sum();
                w.write(format!("{sum}\n").as_bytes());
                w.close();
            },
        )
        .await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        w.set_write_buffer_limits(Some(16 * 1024), None).unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
        let mut paused = false;
        for _ in 0..64 {
            w.write(&chunk);
            paused |= w.write_buffer_size() > 16 * 1024;
            w.drain().await.unwrap();
            assert!(w.write_buffer_size() <= 16 * 1024 / 4 || !paused);
        }
        assert!(
            paused,
            "4 MiB written at once must go above a 16 KiB high-water mark"
        );
        w.write_eof().unwrap();
        assert_eq!(
            r.readline().await.unwrap(),
            format!("{}\n", 64 * 64 * 1024).as_bytes()
        );
        let sum: u64 = chunk.iter().map(|&b| u64::from(b)).sum::<u64>() * 64;
        assert_eq!(r.readline().await.unwrap(), format!("{sum}\n").as_bytes());
        server.close();
    });
}

#[test]
fn write_eof_is_close_notify_and_the_other_direction_goes_on() {
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(
            p.server,
            |mut r: StreamReader, mut w: StreamWriter| async move {
                // A clean end of stream (close_notify), then the reply.
                let got = r.read_to_eof().await.unwrap();
                w.write(b"got ");
                w.write(&got);
                w.close();
            },
        )
        .await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        assert!(w.can_write_eof());
        w.write(b"request");
        w.write_eof().unwrap();
        assert_eq!(r.read_to_eof().await.unwrap(), b"got request");
        w.close();
        w.wait_closed().await.unwrap();
    });
}

#[test]
fn async_read_and_async_write_work_over_tls() {
    use futures::{AsyncReadExt, AsyncWriteExt};
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(
            p.server,
            |mut r: StreamReader, mut w: StreamWriter| async move {
                let mut buf = Vec::new();
                r.read_to_end(&mut buf).await.unwrap();
                w.write_all(&buf).await.unwrap();
                AsyncWriteExt::close(&mut w).await.unwrap();
            },
        )
        .await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        w.write_all(b"through futures-io").await.unwrap();
        // poll_close: flush, then close_notify.
        AsyncWriteExt::close(&mut w).await.unwrap();
        let mut back = String::new();
        r.read_to_string(&mut back).await.unwrap();
        assert_eq!(back, "through futures-io");
    });
}

#[test]
fn close_and_wait_closed_end_a_tls_connection_cleanly() {
    let p = pki();
    run(async move {
        let (tx, rx) = std::sync::mpsc::channel();
        let (server, port) = tls_server(p.server, move |mut r: StreamReader, w: StreamWriter| {
            let tx = tx.clone();
            async move {
                // The client's close sends close_notify: Ok(EOF), not an error.
                let end = r.read_to_eof().await.map(|b| b.len());
                tx.send(format!("{end:?}")).unwrap();
                w.close();
                let _ = w.wait_closed().await;
            }
        })
        .await;
        let (_r, w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        w.close();
        assert!(w.is_closing());
        w.wait_closed().await.unwrap();
        server.close();
        server.wait_closed().await;
        assert_eq!(rx.recv().unwrap(), "Ok(0)");
    });
}

#[test]
fn server_hostname_connects_by_ip_and_checks_the_name() {
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(p.server, echo_lines).await;
        // The certificate names localhost only: by IP it does not match...
        let err = open_connection_with(
            "127.0.0.1",
            port,
            &ConnectOptions::new().ssl(p.client.clone()),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Certificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                )) | Some(TlsError::Certificate(
                    rustls::CertificateError::NotValidForName
                ))
            ),
            "{err:?}"
        );
        // ...and with server_hostname it does.
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        w.write(b"hi\n");
        assert_eq!(r.readline().await.unwrap(), b"hi\n");
    });
}

#[test]
fn a_wrong_hostname_is_a_certificate_error() {
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(p.server, echo_lines).await;
        let opts = ConnectOptions::new()
            .ssl(p.client)
            .server_hostname("example.com");
        let err = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Certificate(_))),
            "{err:?}"
        );
    });
}

#[test]
fn a_certificate_from_an_untrusted_ca_is_an_unknown_issuer() {
    let p = pki();
    let other = Ca::new("other");
    let stranger = ClientTls::builder()
        .add_root_pem(other.pem())
        .build()
        .unwrap();
    run(async move {
        let (_server, port) = tls_server(p.server, echo_lines).await;
        let err = open_connection_with("127.0.0.1", port, &client_opts(&stranger))
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::Certificate(
                rustls::CertificateError::UnknownIssuer
            )),
            "{err:?}"
        );
    });
}

#[test]
fn a_self_signed_certificate_without_its_ca_is_rejected() {
    let p = pki();
    let selfsigned = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = ServerTls::builder()
        .cert_pem(selfsigned.cert.pem(), selfsigned.key_pair.serialize_pem())
        .build()
        .unwrap();
    run(async move {
        let (_server, port) = tls_server(server, echo_lines).await;
        let err = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap_err();
        assert!(
            matches!(TlsError::from_io(&err), Some(TlsError::Certificate(_))),
            "{err:?}"
        );
    });
}

#[test]
fn an_expired_certificate_is_rejected() {
    let ca = Ca::new("expired");
    let leaf = ca.leaf_with(&["localhost"], |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let server = ServerTls::builder()
        .cert_pem(leaf.cert_pem, leaf.key_pem)
        .build()
        .unwrap();
    let client = ClientTls::builder().add_root_pem(ca.pem()).build().unwrap();
    run(async move {
        let (_server, port) = tls_server(server, echo_lines).await;
        let err = open_connection_with("127.0.0.1", port, &client_opts(&client))
            .await
            .unwrap_err();
        assert!(
            matches!(
                TlsError::from_io(&err),
                Some(TlsError::Certificate(
                    rustls::CertificateError::Expired
                        | rustls::CertificateError::ExpiredContext { .. }
                ))
            ),
            "{err:?}"
        );
    });
}

#[test]
fn tls_info_tells_version_cipher_alpn_peer_certificates_and_sni_name() {
    let p = pki();
    let server_tls = ServerTls::builder()
        .cert_pem(p.leaf.cert_pem.clone(), p.leaf.key_pem.clone())
        .alpn_protocols(["h2", "http/1.1"])
        .build()
        .unwrap();
    let client_tls = ClientTls::builder()
        .add_root_pem(p.ca.pem())
        .alpn_protocols(["http/1.1"])
        .build()
        .unwrap();
    run(async move {
        use futures::StreamExt;
        let (tx, mut rx) = futures::channel::mpsc::unbounded();
        let (_server, port) = tls_server(server_tls, move |_r, w: StreamWriter| {
            let tx = tx.clone();
            async move {
                tx.unbounded_send(w.tls_info().unwrap()).unwrap();
            }
        })
        .await;
        let (_r, w) = open_connection_with("127.0.0.1", port, &client_opts(&client_tls))
            .await
            .unwrap();
        let info = w.tls_info().expect("a TLS stream has TLS info");
        assert!(!info.server_side);
        assert_eq!(
            info.protocol_version,
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert!(info.cipher_suite.is_some());
        assert_eq!(info.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
        assert_eq!(info.peer_certificates.len(), 1);
        assert_eq!(info.peer_certificates[0].as_ref(), p.leaf.der.as_slice());
        // The server's side is known once it has the client's Finished.
        let server_side = rx.next().await.unwrap();
        assert!(server_side.server_side);
        assert_eq!(server_side.server_name.as_deref(), Some("localhost"));
        assert_eq!(server_side.alpn_protocol.as_deref(), Some(&b"http/1.1"[..]));
        assert!(server_side.peer_certificates.is_empty());
    });
}

#[test]
fn a_plaintext_stream_has_no_tls_info() {
    run(async {
        let (_server, port) = common::serve(|_r, _w| async {}).await;
        let (_r, w) = open_connection("127.0.0.1", port).await.unwrap();
        assert!(w.tls_info().is_none());
    });
}

#[test]
fn alpn_without_a_common_protocol_fails_the_handshake() {
    let p = pki();
    let server_tls = ServerTls::builder()
        .cert_pem(p.leaf.cert_pem.clone(), p.leaf.key_pem.clone())
        .alpn_protocols(["h2"])
        .build()
        .unwrap();
    let client_tls = ClientTls::builder()
        .add_root_pem(p.ca.pem())
        .alpn_protocols(["imap"])
        .build()
        .unwrap();
    run(async move {
        let (_server, port) = tls_server(server_tls, echo_lines).await;
        let err = open_connection_with("127.0.0.1", port, &client_opts(&client_tls))
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::AlertReceived(
                rustls::AlertDescription::NoApplicationProtocol
            )),
            "{err:?}"
        );
    });
}

#[test]
fn sni_picks_the_certificate_named_by_the_client() {
    let ca = Ca::new("sni");
    let a = ca.leaf(&["a.test"]);
    let b = ca.leaf(&["b.test"]);
    let fallback = ca.leaf(&["localhost"]);
    let server_tls = ServerTls::builder()
        .cert_pem(fallback.cert_pem.clone(), fallback.key_pem.clone())
        .sni_cert_pem("a.test", a.cert_pem.clone(), a.key_pem.clone())
        .sni_cert_pem("B.test", b.cert_pem.clone(), b.key_pem.clone())
        .build()
        .unwrap();
    let client_tls = ClientTls::builder().add_root_pem(ca.pem()).build().unwrap();
    run(async move {
        let (_server, port) = tls_server(server_tls, echo_lines).await;
        for (name, want) in [("a.test", &a), ("b.test", &b), ("localhost", &fallback)] {
            let opts = ConnectOptions::new()
                .ssl(client_tls.clone())
                .server_hostname(name);
            let (_r, w) = open_connection_with("127.0.0.1", port, &opts)
                .await
                .unwrap();
            let info = w.tls_info().unwrap();
            assert_eq!(
                info.peer_certificates[0].as_ref(),
                want.der.as_slice(),
                "{name}"
            );
        }
    });
}

#[test]
fn mutual_tls_lets_in_a_client_with_a_certificate_and_shows_it_to_the_server() {
    let p = pki();
    let client_ca = Ca::new("clients");
    let alice = client_ca.leaf(&["alice"]);
    let server_tls = ServerTls::builder()
        .cert_pem(p.leaf.cert_pem.clone(), p.leaf.key_pem.clone())
        .client_auth_pem(client_ca.pem(), true)
        .build()
        .unwrap();
    let with_cert = ClientTls::builder()
        .add_root_pem(p.ca.pem())
        .client_cert_pem(alice.cert_pem.clone(), alice.key_pem.clone())
        .build()
        .unwrap();
    run(async move {
        let (tx, rx) = std::sync::mpsc::channel();
        let (_server, port) = tls_server(
            server_tls,
            move |mut r: StreamReader, mut w: StreamWriter| {
                let tx = tx.clone();
                async move {
                    tx.send(w.tls_info().unwrap().peer_certificates).unwrap();
                    let line = r.readline().await.unwrap();
                    w.write(&line);
                }
            },
        )
        .await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&with_cert))
            .await
            .unwrap();
        w.write(b"hello\n");
        assert_eq!(r.readline().await.unwrap(), b"hello\n");
        let seen = rx.recv().unwrap();
        assert_eq!(seen[0].as_ref(), alice.der.as_slice());
    });
}

#[test]
fn mutual_tls_refuses_a_client_without_a_certificate() {
    let p = pki();
    let client_ca = Ca::new("clients");
    let server_tls = ServerTls::builder()
        .cert_pem(p.leaf.cert_pem.clone(), p.leaf.key_pem.clone())
        .client_auth_pem(client_ca.pem(), true)
        .build()
        .unwrap();
    run(async move {
        let reached = std::rc::Rc::new(std::cell::Cell::new(false));
        let flag = reached.clone();
        let (server, port) = tls_server(server_tls, move |_r, _w| {
            flag.set(true);
            async {}
        })
        .await;
        // In TLS 1.3 the client's handshake ends before the server checks
        // its certificate: the refusal arrives as an alert on the first read.
        let res = async {
            let (mut r, _w) =
                open_connection_with("127.0.0.1", port, &client_opts(&p.client)).await?;
            r.read(1).await
        }
        .await;
        let err = res.unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            "{err:?}"
        );
        assert!(!reached.get(), "the callback never sees a refused client");
        assert_eq!(server.active_connections(), 0);
    });
}

#[test]
fn tls_over_unix_sockets_needs_a_server_hostname() {
    let p = pki();
    let path = std::env::temp_dir().join(format!("asyncio-tls-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let path2 = path.clone();
    run(async move {
        let server =
            start_unix_server_with(echo_lines, &path2, &ServerOptions::new().ssl(p.server))
                .await
                .unwrap();
        let err = open_unix_connection_with(&path2, &ConnectOptions::new().ssl(p.client.clone()))
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::ServerHostnameRequired)
        );
        let (mut r, mut w) = open_unix_connection_with(&path2, &client_opts(&p.client))
            .await
            .unwrap();
        w.write(b"over unix\n");
        assert_eq!(r.readline().await.unwrap(), b"over unix\n");
        assert!(w.tls_info().is_some());
        server.close();
    });
    let _ = std::fs::remove_file(&path);
}

#[test]
fn tls_options_without_ssl_are_refused() {
    run(async {
        let (_server, port) = common::serve(|_r, _w| async {}).await;
        let opts = ConnectOptions::new().server_hostname("localhost");
        let err = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::OptionWithoutTls("server_hostname"))
        );
        let opts = ServerOptions::new().ssl_handshake_timeout(Duration::from_secs(1));
        let err = start_server_with(|_r, _w| async {}, "127.0.0.1", 0, &opts)
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::OptionWithoutTls("ssl_handshake_timeout"))
        );
    });
}

#[test]
fn an_invalid_server_hostname_is_a_typed_error() {
    let p = pki();
    run(async move {
        let (_server, port) = tls_server(p.server, echo_lines).await;
        let opts = ConnectOptions::new()
            .ssl(p.client)
            .server_hostname("not a name!");
        let err = open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap_err();
        assert_eq!(
            TlsError::from_io(&err),
            Some(&TlsError::InvalidServerName("not a name!".into()))
        );
    });
}

#[test]
fn start_tls_upgrades_both_ends_of_a_live_connection() {
    let p = pki();
    let server_tls = p.server.clone();
    run(async move {
        let (_server, port) = common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let tls = server_tls.clone();
            async move {
                assert_eq!(r.readline().await.unwrap(), b"STARTTLS\n");
                w.write(b"220 go ahead\n");
                w.start_tls(&mut r, tls, &StartTlsOptions::new())
                    .await
                    .unwrap();
                assert_eq!(
                    w.tls_info().unwrap().server_name.as_deref(),
                    Some("localhost")
                );
                echo_lines(r, w).await;
            }
        })
        .await;
        let (mut r, mut w) = open_connection("127.0.0.1", port).await.unwrap();
        w.write(b"STARTTLS\n");
        assert_eq!(r.readline().await.unwrap(), b"220 go ahead\n");
        assert!(w.tls_info().is_none());
        let opts = StartTlsOptions::new().server_hostname("localhost");
        w.start_tls(&mut r, p.client.clone(), &opts).await.unwrap();
        w.write(b"secret\n");
        assert_eq!(r.readline().await.unwrap(), b"secret\n");
        // A second upgrade of the same stream is refused.
        let err = w.start_tls(&mut r, p.client, &opts).await.unwrap_err();
        assert_eq!(TlsError::from_io(&err), Some(&TlsError::AlreadyTls));
    });
}

#[test]
fn start_tls_keeps_a_client_hello_sent_right_behind_the_starttls_line() {
    let p = pki();
    let client_tls = p.client.clone();
    run(async move {
        let (tx, rx) = std::sync::mpsc::channel();
        let server_tls = p.server.clone();
        let (_server, port) = common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let tls = server_tls.clone();
            let tx = tx.clone();
            async move {
                assert_eq!(r.readline().await.unwrap(), b"STARTTLS\n");
                // The ClientHello came in the same segment as the line: it
                // sits in the reader's buffer now.
                let res = w.start_tls(&mut r, tls, &StartTlsOptions::new()).await;
                tx.send(format!("{res:?}")).unwrap();
                if res.is_ok() {
                    echo_lines(r, w).await;
                }
            }
        })
        .await;
        let peer = std::thread::spawn(move || {
            let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut tls = blocking_client(&client_tls, sock.try_clone().unwrap(), "localhost");
            // "STARTTLS\n" and the ClientHello in one write, one segment.
            let mut first = b"STARTTLS\n".to_vec();
            tls.conn.write_tls(&mut first).unwrap();
            sock.write_all(&first).unwrap();
            tls.write_all(b"after the upgrade\n").unwrap();
            tls.flush().unwrap();
            let mut back = [0u8; 18];
            tls.read_exact(&mut back).unwrap();
            back
        });
        let back = asyncio_core::to_thread(move || peer.join().unwrap())
            .await
            .unwrap();
        assert_eq!(&back, b"after the upgrade\n");
        assert_eq!(rx.recv().unwrap(), "Ok(())");
    });
}

#[test]
fn start_tls_refuses_the_reader_of_another_connection() {
    let p = pki();
    run(async move {
        let (_server, port) = common::serve(|_r, _w| async {}).await;
        let (_r1, mut w1) = open_connection("127.0.0.1", port).await.unwrap();
        let (mut r2, _w2) = open_connection("127.0.0.1", port).await.unwrap();
        let opts = StartTlsOptions::new().server_hostname("localhost");
        let err = w1.start_tls(&mut r2, p.client, &opts).await.unwrap_err();
        assert_eq!(TlsError::from_io(&err), Some(&TlsError::ReaderMismatch));
    });
}

#[test]
fn tls_config_errors_are_typed() {
    use asyncio_streams::TlsConfigError;
    assert!(matches!(
        ClientTls::builder().build(),
        Err(TlsConfigError::NoRoots)
    ));
    assert!(matches!(
        ServerTls::builder().build(),
        Err(TlsConfigError::NoCertificate)
    ));
    assert!(matches!(
        ClientTls::builder().add_root_pem("garbage").build(),
        Err(TlsConfigError::Pem {
            what: "CA certificates",
            ..
        })
    ));
    let ca = Ca::new("mismatch");
    let a = ca.leaf(&["a"]);
    let b = ca.leaf(&["b"]);
    // A key that is not the certificate's.
    assert!(matches!(
        ServerTls::builder().cert_pem(a.cert_pem, b.key_pem).build(),
        Err(TlsConfigError::Rustls(_))
    ));
}

#[test]
fn optional_client_certificates_let_in_a_client_without_one() {
    let p = pki();
    let client_ca = Ca::new("clients");
    let server_tls = ServerTls::builder()
        .cert_pem(p.leaf.cert_pem.clone(), p.leaf.key_pem.clone())
        .client_auth_pem(client_ca.pem(), false)
        .build()
        .unwrap();
    run(async move {
        let (_server, port) = tls_server(
            server_tls,
            |mut r: StreamReader, mut w: StreamWriter| async move {
                let certs = w.tls_info().unwrap().peer_certificates.len();
                let _ = r.readline().await;
                w.write(format!("{certs} certificates\n").as_bytes());
            },
        )
        .await;
        let (mut r, mut w) = open_connection_with("127.0.0.1", port, &client_opts(&p.client))
            .await
            .unwrap();
        w.write(b"hi\n");
        assert_eq!(r.readline().await.unwrap(), b"0 certificates\n");
    });
}

#[test]
fn create_default_context_trusts_the_system_store_or_says_why_not() {
    // Python's ssl.create_default_context(): the system's roots. Where the
    // system has none, a typed error rather than a context that fails every
    // handshake.
    let has_store = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt").exists()
        || std::path::Path::new("/etc/pki/tls/certs/ca-bundle.crt").exists();
    match ClientTls::create_default_context() {
        Ok(tls) => {
            assert!(has_store, "roots were found without a system store");
            assert!(tls.config().alpn_protocols.is_empty());
        }
        Err(e) => {
            assert!(!has_store, "the system store exists but did not load: {e}");
            assert!(matches!(e, asyncio_streams::TlsConfigError::NativeRoots(_)));
        }
    }
}

#[test]
fn close_clients_ends_every_tls_client_with_close_notify() {
    let p = pki();
    run(async move {
        let (server, port) = tls_server(
            p.server,
            |mut r: StreamReader, _w: StreamWriter| async move {
                let _ = r.read_to_eof().await;
            },
        )
        .await;
        let opts = client_opts(&p.client).suppress_ragged_eofs(false);
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(
                open_connection_with("127.0.0.1", port, &opts)
                    .await
                    .unwrap(),
            );
        }
        // Every server-side connection is past its handshake.
        for _ in 0..200 {
            if server.active_connections() == 3 {
                break;
            }
            asyncio_core::sleep(Duration::from_millis(5)).await;
        }
        server.close();
        server.close_clients();
        for (mut r, w) in clients {
            // A clean end: close_notify came (a ragged end would be an error
            // with suppress_ragged_eofs(false)).
            assert_eq!(r.read_to_eof().await.unwrap(), b"");
            w.close();
        }
        server.wait_closed().await;
        assert_eq!(server.active_connections(), 0);
    });
}

/// A protocol that keeps what it receives.
#[derive(Default)]
struct Received {
    data: Vec<u8>,
    lost: bool,
}

impl asyncio_streams::Protocol for Received {
    fn data_received(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }
    fn connection_lost(&mut self, _exc: Option<std::io::Error>) {
        self.lost = true;
    }
}

/// asyncio's `loop.start_tls(transport, protocol, sslcontext)`: a protocol
/// client upgrades its connection after the server's go-ahead; from then on
/// its writes are encrypted and the new protocol receives in clear, the old
/// one receives nothing more, and a second upgrade is refused.
#[test]
fn start_tls_upgrades_a_protocols_transport_and_hands_it_to_the_new_protocol() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let p = pki();
    let server_tls = p.server.clone();
    run(async move {
        let (_server, port) = common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let tls = server_tls.clone();
            async move {
                assert_eq!(r.readline().await.unwrap(), b"STARTTLS\n");
                w.write(b"220 go ahead\n");
                w.start_tls(&mut r, tls, &StartTlsOptions::new())
                    .await
                    .unwrap();
                echo_lines(r, w).await;
            }
        })
        .await;
        let (transport, plain) =
            asyncio_streams::create_connection(Received::default, "127.0.0.1", port)
                .await
                .unwrap();
        transport.write(b"STARTTLS\n").unwrap();
        common::until(|| plain.borrow().data == b"220 go ahead\n").await;
        let secure = Rc::new(RefCell::new(Received::default()));
        let opts = StartTlsOptions::new().server_hostname("localhost");
        let upgraded =
            asyncio_streams::start_tls(&transport, secure.clone(), p.client.clone(), &opts)
                .await
                .unwrap();
        upgraded.write(b"secret\n").unwrap();
        common::until(|| secure.borrow().data == b"secret\n").await;
        assert_eq!(
            plain.borrow().data,
            b"220 go ahead\n",
            "the old protocol got nothing more"
        );
        let again = asyncio_streams::start_tls(
            &upgraded,
            Rc::new(RefCell::new(Received::default())),
            p.client.clone(),
            &opts,
        )
        .await
        .unwrap_err();
        assert_eq!(TlsError::from_io(&again), Some(&TlsError::AlreadyTls));
        upgraded.close();
        common::until(|| secure.borrow().lost).await;
        assert!(
            !plain.borrow().lost,
            "connection_lost went to the new protocol"
        );
    });
}

/// A failed handshake (the server's certificate is not trusted) closes the
/// connection, returns the TLS error, and the old protocol, still in charge,
/// gets `connection_lost`.
#[test]
fn start_tls_on_a_protocol_transport_with_a_failed_handshake_closes_it() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let p = pki();
    let server_tls = p.server.clone();
    let stranger = Ca::new("stranger");
    let untrusting = ClientTls::builder()
        .add_root_pem(stranger.pem())
        .build()
        .unwrap();
    run(async move {
        let (_server, port) = common::serve(move |mut r: StreamReader, mut w: StreamWriter| {
            let tls = server_tls.clone();
            async move {
                let _ = r.readline().await;
                w.write(b"220 go ahead\n");
                let _ = w.start_tls(&mut r, tls, &StartTlsOptions::new()).await;
            }
        })
        .await;
        let (transport, plain) =
            asyncio_streams::create_connection(Received::default, "127.0.0.1", port)
                .await
                .unwrap();
        transport.write(b"STARTTLS\n").unwrap();
        common::until(|| plain.borrow().data == b"220 go ahead\n").await;
        let opts = StartTlsOptions::new().server_hostname("localhost");
        let secure = Rc::new(RefCell::new(Received::default()));
        let err = asyncio_streams::start_tls(&transport, secure.clone(), untrusting, &opts)
            .await
            .unwrap_err();
        assert!(TlsError::from_io(&err).is_some(), "a TLS error: {err}");
        common::until(|| plain.borrow().lost).await;
        assert!(transport.is_closing());
        assert!(!secure.borrow().lost);
    });
}
