//! The Rust ecosystem on the loop, against the same code on tokio:
//!
//! - `compat_roundtrip`: a tokio-bound future awaited from an asyncio task
//!   through `asyncio::compat` — a `tokio::spawn`ed task's result, which
//!   wakes the asyncio task from the compat runtime's thread — against the
//!   same `tokio::spawn(..).await` on tokio's current-thread runtime.
//! - `h2_hello`: hyper's hello world over HTTP/2 (h2c), [`H2_CONNS`]
//!   connections with [`H2_STREAMS`] concurrent streams each; the load is a
//!   hyper HTTP/2 client on a tokio runtime on another thread.
//! - `axum_json`: an axum route taking and returning JSON, on asyncio-rs's
//!   `http::Http` against axum's own `serve` on tokio; the load is the plain
//!   HTTP/1.1 generator of `http_hello` posting a JSON body.

use std::convert::Infallible;

use asyncio::compat::CompatExt;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::net::{HTTP_CONNS, tokio_rt_net};

/// HTTP/2 connections of the `h2_hello` load.
pub const H2_CONNS: usize = 10;
/// Concurrent streams on each `h2_hello` connection.
pub const H2_STREAMS: usize = 10;

/// `compat_roundtrip` on asyncio-rs: `n` tokio tasks spawned and awaited
/// from an asyncio task, each through the compat wrapper.
pub fn asyncio_compat_roundtrip(lp: &asyncio::EventLoop, n: usize) {
    lp.run_until_complete(async move {
        for i in 0..n {
            let got = async move { tokio::spawn(async move { i }).await }
                .compat()
                .await
                .expect("the tokio task neither panics nor is cancelled");
            debug_assert_eq!(got, i);
        }
    })
    .expect("the loop runs");
}

/// `compat_roundtrip` on tokio: the same spawn-and-await, no wrapper needed.
pub fn tokio_compat_roundtrip(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        for i in 0..n {
            let got = tokio::spawn(async move { i })
                .await
                .expect("the tokio task neither panics nor is cancelled");
            debug_assert_eq!(got, i);
        }
    });
}

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// The load of `h2_hello`: `total` GETs over [`H2_CONNS`] HTTP/2
/// connections, [`H2_STREAMS`] at a time on each, from a tokio runtime on
/// the calling thread.
pub fn h2_load(port: u16, total: usize) {
    let per = total.div_ceil(H2_CONNS * H2_STREAMS);
    tokio_rt_net().block_on(async move {
        let mut streams = Vec::new();
        for _ in 0..H2_CONNS {
            let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the server accepts");
            s.set_nodelay(true).expect("TCP_NODELAY");
            let (sender, conn) =
                hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(s))
                    .await
                    .expect("the HTTP/2 handshake succeeds");
            tokio::spawn(conn);
            for _ in 0..H2_STREAMS {
                let mut sender = sender.clone();
                streams.push(tokio::spawn(async move {
                    for _ in 0..per {
                        let req = Request::get(format!("http://127.0.0.1:{port}/"))
                            .body(Empty::new())
                            .expect("a request");
                        let res = sender.send_request(req).await.expect("a response");
                        let body = res
                            .into_body()
                            .collect()
                            .await
                            .expect("the body")
                            .to_bytes();
                        debug_assert_eq!(body, "Hello, World!");
                    }
                }));
            }
        }
        for s in streams {
            s.await
                .expect("a load stream neither panics nor is cancelled");
        }
    });
}

/// Requests of one `h2_hello` run for `total` wanted: a multiple of the
/// concurrent streams.
pub fn h2_total(total: usize) -> usize {
    total.div_ceil(H2_CONNS * H2_STREAMS) * H2_CONNS * H2_STREAMS
}

/// `h2_hello` on asyncio-rs: `asyncio::http::Http` speaking HTTP/2 only.
pub fn asyncio_h2_hello(lp: &asyncio::EventLoop, total: usize) {
    lp.run_until_complete(async move {
        let server = asyncio::http::Http::new(hyper::service::service_fn(hello))
            .protocol(asyncio::http::HttpVersions::Http2)
            .start_server("127.0.0.1", 0)
            .await
            .expect("a loopback server binds");
        let port = server.local_addr().expect("a TCP server").port();
        asyncio::to_thread(move || h2_load(port, total))
            .await
            .expect("the load generator does not panic");
        drop(server);
    })
    .expect("the loop runs");
}

/// `h2_hello` on tokio's current-thread runtime: hyper's HTTP/2 server with
/// hyper-util's `TokioIo` and `TokioExecutor`.
pub fn tokio_h2_hello(rt: &tokio::runtime::Runtime, total: usize) {
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            loop {
                let (s, _) = listener.accept().await.expect("accept succeeds");
                s.set_nodelay(true).expect("TCP_NODELAY");
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .timer(hyper_util::rt::TokioTimer::new())
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(s),
                        hyper::service::service_fn(hello),
                    )
                    .await;
                });
            }
        });
        tokio::task::spawn_blocking(move || h2_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.abort();
    });
}

#[derive(Deserialize)]
struct Greet {
    name: String,
    n: u64,
}

#[derive(Serialize)]
struct Greeting {
    greeting: String,
    n: u64,
}

async fn greet(axum::Json(g): axum::Json<Greet>) -> axum::Json<Greeting> {
    axum::Json(Greeting {
        greeting: format!("Hello, {}!", g.name),
        n: g.n + 1,
    })
}

/// The `axum_json` application: one route, JSON in and out.
pub fn axum_app() -> axum::Router {
    axum::Router::new().route("/greet", axum::routing::post(greet))
}

const JSON_BODY: &str = r#"{"name":"asyncio","n":41}"#;

/// The load of `axum_json`: `total` POSTs of a small JSON body over
/// [`HTTP_CONNS`] keep-alive connections (the `http_hello` generator's
/// client, with a body).
pub fn json_load(port: u16, total: usize) {
    let per = total.div_ceil(HTTP_CONNS);
    let request = format!(
        "POST /greet HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{JSON_BODY}",
        JSON_BODY.len()
    );
    tokio_rt_net().block_on(async move {
        let conns: Vec<_> = (0..HTTP_CONNS)
            .map(|_| {
                let request = request.clone();
                tokio::spawn(async move {
                    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("the server accepts");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    let (r, mut w) = s.into_split();
                    let mut r = tokio::io::BufReader::new(r);
                    let mut line = String::new();
                    let mut body = Vec::new();
                    for _ in 0..per {
                        w.write_all(request.as_bytes())
                            .await
                            .expect("the server reads");
                        let mut len = 0usize;
                        loop {
                            line.clear();
                            r.read_line(&mut line).await.expect("a header line");
                            if line == "\r\n" {
                                break;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().expect("a length");
                            }
                        }
                        body.resize(len, 0);
                        r.read_exact(&mut body).await.expect("the body");
                        debug_assert_eq!(body, br#"{"greeting":"Hello, asyncio!","n":42}"#);
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

/// `axum_json` on asyncio-rs: the Router through `asyncio::http::Http`.
pub fn asyncio_axum_json(lp: &asyncio::EventLoop, total: usize) {
    lp.run_until_complete(async move {
        let server = asyncio::http::Http::new(asyncio::http::TowerToHyperService::new(axum_app()))
            .start_server("127.0.0.1", 0)
            .await
            .expect("a loopback server binds");
        let port = server.local_addr().expect("a TCP server").port();
        asyncio::to_thread(move || json_load(port, total))
            .await
            .expect("the load generator does not panic");
        drop(server);
    })
    .expect("the loop runs");
}

/// `axum_json` on tokio's current-thread runtime: axum's own `serve`.
pub fn tokio_axum_json(rt: &tokio::runtime::Runtime, total: usize) {
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback listener binds");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, axum_app()).await;
        });
        tokio::task::spawn_blocking(move || json_load(port, total))
            .await
            .expect("the load generator does not panic");
        server.abort();
    });
}
