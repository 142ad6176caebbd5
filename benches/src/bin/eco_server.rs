//! The servers `ci/load.sh` points wrk and h2load at, on either runtime:
//!
//! `eco_server RUNTIME APP PORT` with RUNTIME `asyncio` (asyncio-rs's
//! `asyncio::http::Http`) or `tokio` (tokio's current-thread runtime), and
//! APP `hello` (hyper's hello world, HTTP/1.1 and h2c on one port: on
//! asyncio-rs the auto builder of `Http`, on tokio hyper-util's auto builder)
//! or `axum` (the showdown's `axum_json` route, `POST /greet`; on tokio
//! axum's own `serve`). Serves until killed.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn hello(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [runtime, app, port] = &args[..] else {
        eprintln!("usage: eco_server asyncio|tokio hello|axum PORT");
        std::process::exit(2);
    };
    let port: u16 = port.parse().expect("PORT is a port number");
    match (runtime.as_str(), app.as_str()) {
        ("asyncio", app) => {
            let app = app.to_owned();
            asyncio::run(async move {
                let server = if app == "hello" {
                    asyncio::http::Http::new(hyper::service::service_fn(hello))
                        .start_server("127.0.0.1", port)
                        .await
                } else {
                    asyncio::http::Http::new(asyncio::http::TowerToHyperService::new(
                        asyncio_bench::eco::axum_app(),
                    ))
                    .start_server("127.0.0.1", port)
                    .await
                }
                .expect("the port is free");
                println!("asyncio {app} on 127.0.0.1:{port}");
                std::future::pending::<()>().await;
                drop(server);
            })
            .expect("the loop runs");
        }
        ("tokio", app) => {
            let rt = asyncio_bench::net::tokio_rt_net();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .expect("the port is free");
                println!("tokio {app} on 127.0.0.1:{port}");
                if app == "axum" {
                    axum::serve(listener, asyncio_bench::eco::axum_app())
                        .await
                        .expect("axum serves");
                    return;
                }
                loop {
                    let (s, _) = listener.accept().await.expect("accept succeeds");
                    s.set_nodelay(true).expect("TCP_NODELAY");
                    tokio::spawn(async move {
                        let mut builder = hyper_util::server::conn::auto::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        );
                        builder.http1().timer(hyper_util::rt::TokioTimer::new());
                        builder.http2().timer(hyper_util::rt::TokioTimer::new());
                        let _ = builder
                            .serve_connection(
                                hyper_util::rt::TokioIo::new(s),
                                hyper::service::service_fn(hello),
                            )
                            .await;
                    });
                }
            });
        }
        _ => {
            eprintln!("usage: eco_server asyncio|tokio hello|axum PORT");
            std::process::exit(2);
        }
    }
}
