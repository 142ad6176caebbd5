//! TLS workloads: asyncio-rs's TLS streams against tokio + tokio-rustls, on
//! loopback, with the very same rustls configurations on both sides (one
//! [`Fixture`], made at start-up with rcgen: an ECDSA P-256 CA and server
//! certificate, rustls on ring).
//!
//! - `tls_echo`: [`ECHO_CONNS`] TLS connections on
//!   one thread, each client sending [`TLS_MSG`]-byte messages and waiting
//!   for their echo.
//! - `tls_handshakes`: full handshakes (no resumption): connect, handshake,
//!   one 64-byte message and its echo, close with close_notify both ways;
//!   [`HANDSHAKE_CLIENTS`] clients at a time.
//! - `https_hello`: hyper's hello world over TLS, loaded by the same
//!   tokio-rustls generator on another thread with
//!   [`HTTP_CONNS`] keep-alive connections.
//! - idle TLS connections: server memory per connection, handshake done,
//!   each handler waiting in `readline`.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use asyncio::{ClientTls, ServerTls, StreamReader, StreamWriter, rustls};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::net::{ECHO_CONNS, HTTP_CONNS, tokio_rt_net};

/// Message size of `tls_echo`.
pub const TLS_MSG: usize = 1024;
/// Concurrent clients of `tls_handshakes`.
pub const HANDSHAKE_CLIENTS: usize = 10;

/// The configurations shared by every runtime: `echo` for the echo, HTTPS
/// and memory scenarios (default rustls settings, ALPN http/1.1), `full`
/// for the handshakes (session resumption off on both sides).
#[derive(Debug)]
pub struct Fixture {
    /// The server's configuration.
    pub server: ServerTls,
    /// The client's configuration.
    pub client: ClientTls,
    /// The server's configuration without session tickets or a cache.
    pub full_server: ServerTls,
    /// The client's configuration without resumption.
    pub full_client: ClientTls,
}

/// The fixture, made once per process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "showdown throwaway CA");
        let ca_key = KeyPair::generate().expect("a CA key");
        let ca = ca.self_signed(&ca_key).expect("a CA certificate");
        let key = KeyPair::generate().expect("a server key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("leaf params")
            .signed_by(&key, &ca, &ca_key)
            .expect("a server certificate");
        let server = ServerTls::builder()
            .cert_pem(cert.pem(), key.serialize_pem())
            .alpn_protocols(["http/1.1"])
            .build()
            .expect("the server configuration");
        let client = ClientTls::builder()
            .add_root_pem(ca.pem())
            .alpn_protocols(["http/1.1"])
            .build()
            .expect("the client configuration");
        let mut full_server = (**server.config()).clone();
        full_server.send_tls13_tickets = 0;
        full_server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        let mut full_client = (**client.config()).clone();
        full_client.resumption = rustls::client::Resumption::disabled();
        Fixture {
            server,
            client,
            full_server: ServerTls::from_config(Arc::new(full_server)),
            full_client: ClientTls::from_config(Arc::new(full_client)),
        }
    })
}

fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name")
}

fn asyncio_client_opts(tls: &ClientTls) -> asyncio::ConnectOptions {
    asyncio::ConnectOptions::new()
        .ssl(tls.clone())
        .server_hostname("localhost")
}

async fn asyncio_tls_server<F, Fut>(tls: &ServerTls, cb: F) -> (asyncio::Server, u16)
where
    F: Fn(StreamReader, StreamWriter) -> Fut + 'static,
    Fut: std::future::Future + 'static,
{
    let opts = asyncio::ServerOptions::new().ssl(tls.clone()).backlog(4096);
    let server = asyncio::start_server_with(cb, "127.0.0.1", 0, &opts)
        .await
        .expect("a loopback server binds");
    let port = server.local_addr().expect("a TCP server").port();
    (server, port)
}

// ----- tls_echo -----

/// `tls_echo` on asyncio-rs: `total` messages over the connections.
pub fn asyncio_tls_echo(lp: &asyncio::EventLoop, total: usize) {
    let per = total.div_ceil(ECHO_CONNS);
    let f = fixture();
    lp.run_until_complete(async move {
        let (server, port) = asyncio_tls_server(&f.server, |mut r, mut w| async move {
            while let Ok(msg) = r.readexactly(TLS_MSG).await {
                w.write(&msg);
                if w.drain().await.is_err() {
                    break;
                }
            }
        })
        .await;
        let clients: Vec<_> = (0..ECHO_CONNS)
            .map(|_| {
                asyncio::create_task(async move {
                    let (mut r, mut w) = asyncio::open_connection_with(
                        "127.0.0.1",
                        port,
                        &asyncio_client_opts(&f.client),
                    )
                    .await
                    .expect("the TLS server accepts");
                    let msg = [7u8; TLS_MSG];
                    for _ in 0..per {
                        w.write(&msg);
                        w.drain().await.expect("the server reads");
                        let back = r.readexactly(TLS_MSG).await.expect("the server echoes");
                        debug_assert_eq!(back, msg);
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("a client neither panics nor is cancelled");
        }
        server.close();
        server.wait_closed().await;
    })
    .expect("the loop runs");
}

/// `tls_echo` on tokio's current-thread runtime with tokio-rustls.
pub fn tokio_tls_echo(rt: &tokio::runtime::Runtime, total: usize) {
    let per = total.div_ceil(ECHO_CONNS);
    let f = fixture();
    rt.block_on(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(f.server.config().clone());
        let connector = tokio_rustls::TlsConnector::from(f.client.config().clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = [0u8; TLS_MSG];
                    while s.read_exact(&mut buf).await.is_ok() {
                        if s.write_all(&buf).await.is_err() || s.flush().await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let clients: Vec<_> = (0..ECHO_CONNS)
            .map(|_| {
                let connector = connector.clone();
                tokio::spawn(async move {
                    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("the server accepts");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    let mut s = connector
                        .connect(server_name(), s)
                        .await
                        .expect("the handshake succeeds");
                    let msg = [7u8; TLS_MSG];
                    let mut back = [0u8; TLS_MSG];
                    for _ in 0..per {
                        s.write_all(&msg).await.expect("the server reads");
                        s.flush().await.expect("the server reads");
                        s.read_exact(&mut back).await.expect("the server echoes");
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("a client neither panics nor is cancelled");
        }
        server.abort();
    });
}

// ----- tls_handshakes -----

/// `tls_handshakes` on asyncio-rs: `total` full handshakes.
pub fn asyncio_tls_handshakes(lp: &asyncio::EventLoop, total: usize) {
    let per = total.div_ceil(HANDSHAKE_CLIENTS);
    let f = fixture();
    lp.run_until_complete(async move {
        let (server, port) = asyncio_tls_server(&f.full_server, |mut r, mut w| async move {
            if let Ok(msg) = r.readexactly(64).await {
                w.write(&msg);
                // The client's close_notify, then ours.
                let _ = r.read(1).await;
            }
            w.close();
        })
        .await;
        let clients: Vec<_> = (0..HANDSHAKE_CLIENTS)
            .map(|_| {
                asyncio::create_task(async move {
                    let opts = asyncio_client_opts(&f.full_client);
                    for _ in 0..per {
                        let (mut r, mut w) =
                            asyncio::open_connection_with("127.0.0.1", port, &opts)
                                .await
                                .expect("the TLS server accepts");
                        w.write(&[1u8; 64]);
                        r.readexactly(64).await.expect("the server echoes");
                        w.close();
                        w.wait_closed().await.expect("a clean close");
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("a client neither panics nor is cancelled");
        }
        server.close();
        server.wait_closed().await;
    })
    .expect("the loop runs");
}

/// `tls_handshakes` on tokio with tokio-rustls: the same exchange (the
/// client's `shutdown` sends close_notify, then it reads the server's).
pub fn tokio_tls_handshakes(rt: &tokio::runtime::Runtime, total: usize) {
    let per = total.div_ceil(HANDSHAKE_CLIENTS);
    let f = fixture();
    rt.block_on(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(f.full_server.config().clone());
        let connector = tokio_rustls::TlsConnector::from(f.full_client.config().clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    let mut buf = [0u8; 64];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf).await;
                        let _ = s.flush().await;
                        let _ = s.read(&mut buf).await;
                    }
                    let _ = s.shutdown().await;
                });
            }
        });
        let clients: Vec<_> = (0..HANDSHAKE_CLIENTS)
            .map(|_| {
                let connector = connector.clone();
                tokio::spawn(async move {
                    for _ in 0..per {
                        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                            .await
                            .expect("the server accepts");
                        s.set_nodelay(true).expect("TCP_NODELAY");
                        let mut s = connector
                            .connect(server_name(), s)
                            .await
                            .expect("the handshake succeeds");
                        let mut back = [0u8; 64];
                        s.write_all(&[1u8; 64]).await.expect("the server reads");
                        s.flush().await.expect("the server reads");
                        s.read_exact(&mut back).await.expect("the server echoes");
                        s.shutdown().await.expect("close_notify goes out");
                        let _ = s.read(&mut back).await;
                    }
                })
            })
            .collect();
        for c in clients {
            c.await.expect("a client neither panics nor is cancelled");
        }
        server.abort();
    });
}

// ----- https_hello -----

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// The load generator of `https_hello`: `total` GET requests over
/// [`HTTP_CONNS`] keep-alive TLS connections (tokio-rustls), from a tokio
/// runtime on the calling thread.
pub fn https_load(port: u16, total: usize) {
    let per = total.div_ceil(HTTP_CONNS);
    let connector = tokio_rustls::TlsConnector::from(fixture().client.config().clone());
    tokio_rt_net().block_on(async move {
        let conns: Vec<_> = (0..HTTP_CONNS)
            .map(|_| {
                let connector = connector.clone();
                tokio::spawn(async move {
                    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("the server accepts");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    let s = connector
                        .connect(server_name(), s)
                        .await
                        .expect("the handshake succeeds");
                    let mut s = tokio::io::BufStream::new(s);
                    let mut line = String::new();
                    let mut body = Vec::new();
                    for _ in 0..per {
                        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                            .await
                            .expect("the server reads");
                        s.flush().await.expect("the server reads");
                        let mut len = 0usize;
                        loop {
                            line.clear();
                            s.read_line(&mut line).await.expect("a header line");
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().expect("a length");
                            }
                        }
                        body.resize(len, 0);
                        s.read_exact(&mut body).await.expect("the body");
                        debug_assert_eq!(body, b"Hello, World!");
                    }
                })
            })
            .collect();
        for c in conns {
            c.await
                .expect("a load connection neither panics nor is cancelled");
        }
    });
}

/// `https_hello` on asyncio-rs: hyper over `start_server(ssl=)`.
pub fn asyncio_https_hello(lp: &asyncio::EventLoop, total: usize) {
    let f = fixture();
    lp.run_until_complete(async move {
        let (server, port) = asyncio_tls_server(&f.server, |r, w| async move {
            let io = asyncio::HyperIo::new(r, w);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(hello))
                .await;
        })
        .await;
        asyncio::to_thread(move || https_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.close();
        server.wait_closed().await;
    })
    .expect("the loop runs");
}

/// `https_hello` on tokio: hyper over tokio-rustls with hyper-util's `TokioIo`.
pub fn tokio_https_hello(rt: &tokio::runtime::Runtime, total: usize) {
    let f = fixture();
    rt.block_on(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(f.server.config().clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(s) = acceptor.accept(s).await else {
                        return;
                    };
                    let io = hyper_util::rt::TokioIo::new(s);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, hyper::service::service_fn(hello))
                        .await;
                });
            }
        });
        tokio::task::spawn_blocking(move || https_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.abort();
    });
}

// ----- idle TLS connections -----

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// `n` blocking TLS clients: each completes its handshake, then keeps only
/// its socket (its TLS state is freed at once, so the clients' own memory
/// hardly counts in the process's growth).
fn idle_tls_clients(port: u16, n: usize) -> Vec<std::net::TcpStream> {
    let config = fixture().client.config().clone();
    (0..n)
        .map(|_| {
            let mut sock =
                std::net::TcpStream::connect(("127.0.0.1", port)).expect("the server accepts");
            let mut conn = rustls::ClientConnection::new(config.clone(), server_name())
                .expect("a client connection");
            while conn.is_handshaking() {
                conn.complete_io(&mut sock).expect("the handshake succeeds");
            }
            while conn.wants_write() {
                conn.complete_io(&mut sock).expect("the Finished goes out");
            }
            sock
        })
        .collect()
}

/// Server memory per idle TLS connection on asyncio-rs: RSS growth while the
/// server holds `n` connections past their handshake, each handler waiting
/// in `readline`.
pub fn asyncio_idle_tls_bytes_per_conn(n: usize) -> usize {
    let f = fixture();
    let lp = asyncio::EventLoop::new();
    lp.run_until_complete(async move {
        let ready = Rc::new(Cell::new(0usize));
        let count = ready.clone();
        let (server, port) = asyncio_tls_server(&f.server, move |mut r, w| {
            count.set(count.get() + 1);
            async move {
                let _ = r.readline().await;
                drop(w);
            }
        })
        .await;
        let before = rss_bytes();
        let clients = asyncio::to_thread(move || idle_tls_clients(port, n))
            .await
            .expect("connecting does not panic");
        while ready.get() < n {
            asyncio::sleep(std::time::Duration::from_millis(1)).await;
        }
        asyncio::sleep(std::time::Duration::from_millis(50)).await;
        let per = rss_bytes().saturating_sub(before) / n;
        drop(clients);
        server.close();
        per
    })
    .expect("the loop runs")
}

/// The same on tokio with tokio-rustls: each connection a task waiting in
/// `read` with a 64-byte buffer.
pub fn tokio_idle_tls_bytes_per_conn(n: usize) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let f = fixture();
    tokio_rt_net().block_on(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(f.server.config().clone());
        let sock = tokio::net::TcpSocket::new_v4().expect("a socket");
        sock.bind(([127, 0, 0, 1], 0).into())
            .expect("a loopback port");
        let listener = sock.listen(4096).expect("listen");
        let port = listener.local_addr().expect("bound").port();
        let ready = Arc::new(AtomicUsize::new(0));
        let o = ready.clone();
        let before = rss_bytes();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                let (acceptor, o) = (acceptor.clone(), o.clone());
                tokio::spawn(async move {
                    let Ok(mut s) = acceptor.accept(s).await else {
                        return;
                    };
                    o.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    let _ = s.read(&mut buf).await;
                });
            }
        });
        let clients = tokio::task::spawn_blocking(move || idle_tls_clients(port, n))
            .await
            .expect("connecting does not panic");
        while ready.load(Ordering::Relaxed) < n {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let per = rss_bytes().saturating_sub(before) / n;
        drop(clients);
        server.abort();
        per
    })
}
