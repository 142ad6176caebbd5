//! hyper 1.x on asyncio-rs's loop, with no tokio: serve HTTP/1.1 and HTTP/2
//! from a [`Server`](asyncio_streams::Server) with a task per connection and
//! a graceful shutdown, and connect hyper's clients.
//!
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use asyncio::http::{Connector, Http};
//! use http_body_util::{BodyExt, Empty, Full};
//! use hyper::body::{Bytes, Incoming};
//!
//! async fn hello(req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
//!     Ok(hyper::Response::new(Full::new(Bytes::from(format!("hello {}", req.uri().path())))))
//! }
//!
//! asyncio::run(async {
//!     let server = Http::new(hyper::service::service_fn(hello)).start_server("127.0.0.1", 0).await?;
//!     let uri: hyper::Uri = format!("http://127.0.0.1:{}/you", server.local_addr().unwrap().port()).parse()?;
//!     let mut client = Connector::new().handshake(&uri).await?;
//!     let res = client.send_request(hyper::Request::get(&uri).body(Empty::<Bytes>::new())?).await?;
//!     assert_eq!(res.into_body().collect().await?.to_bytes(), "hello /you");
//!     server.shutdown(Duration::from_secs(5)).await;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! - [`Http`]: a service and its settings (HTTP/1.1 and HTTP/2 told apart
//!   by the first bytes, or by TLS's ALPN; header-read timeout; HTTP/2
//!   keep-alive pings); [`Http::start_server`] and its variants bind it.
//! - [`HttpServer`]: the running server; [`HttpServer::shutdown`] stops
//!   accepting, lets the requests in flight finish until a deadline, then
//!   cancels what is left ([`ShutdownReport`]).
//! - [`TowerToHyperService`]: serve a tower service, axum's `Router`
//!   among them, with [`Http`] (axum's own `serve` needs tokio's listener).
//! - [`Connector`]: `http://` and `https://` URIs to connections for hyper's
//!   client `conn` API; [`Connector::handshake`] gives a [`SendRequest`] of
//!   the version the server speaks.
//! - [`HyperIo`], [`LoopTimer`], [`LocalExecutor`]: hyper's `rt` traits on
//!   asyncio-rs (I/O on the streams, the loop's timers, `create_task`), for
//!   hyper's own builders.
//!
//! Why a crate of its own: hyper-util's builders and the serve helper need
//! [`TaskGroup`](asyncio_structured::TaskGroup) (asyncio-structured) as well
//! as the streams, and the streams crate must not depend on that; the `rt`
//! traits stay in asyncio-streams (feature `hyper`) because reading into
//! hyper's buffer without a second copy needs the reader's internals. The
//! facade re-exports this crate as `asyncio::http` (feature `hyper`, on by
//! default).
//!
//! Not supported: HTTP upgrades (WebSocket over `Upgrade:`), because hyper
//! asks for a `Send` connection to hand an upgraded one over, and
//! asyncio-rs's connections belong to their loop's thread; hyper-util's
//! pooled client, for the same reason (see [`Connector`]).

#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

mod client;
mod serve;

pub use asyncio_streams::{HyperIo, LocalExecutor, LoopTimer};
pub use client::{ConnectError, Connected, Connector, SendRequest};
/// hyper-util's adapter from a `tower::Service` (an axum `Router`, a
/// tower-http stack) to the hyper service [`Http`] serves:
/// `Http::new(TowerToHyperService::new(router))`.
pub use hyper_util::service::TowerToHyperService;
pub use serve::{Http, HttpServer, HttpVersions, ShutdownReport};
