//! The client connector: a URI to a connection hyper's client `conn` API
//! can speak over, and the handshake that picks HTTP/1.1 or HTTP/2.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use asyncio_streams::{ConnectOptions, HyperIo, LocalExecutor, LoopTimer};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response, Uri};

/// Why [`Connector::handshake`] or [`Connector::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URI has no host, or a scheme other than `http` and `https`.
    #[error("cannot connect to {uri}: {reason}")]
    BadUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Resolving, connecting or the TLS handshake failed.
    #[error("cannot connect")]
    Io(#[from] io::Error),
    /// hyper's HTTP handshake failed.
    #[error("the HTTP handshake failed")]
    Http(#[from] hyper::Error),
}

/// Opens connections for hyper's client `conn` API: `http://` over TCP,
/// `https://` over TLS (the [`ClientTls`](asyncio_streams::ClientTls) given,
/// or the system's roots), with the loop's timer and executor.
///
/// hyper-util's pooled `Client` does not fit: it asks for `Send`
/// connections and a `Send` executor, and asyncio-rs's connections belong to
/// their loop's thread. Keep a [`SendRequest`] per host instead (HTTP/1.1
/// keep-alive, or one HTTP/2 connection for many concurrent requests).
///
/// ```
/// use asyncio::http::{Connector, Http};
/// use http_body_util::{BodyExt, Empty, Full};
/// use hyper::body::Bytes;
///
/// asyncio::run(async {
///     let server = Http::new(hyper::service::service_fn(|_req| async {
///         Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::from("hi"))))
///     }))
///     .start_server("127.0.0.1", 0)
///     .await
///     .unwrap();
///     let uri: hyper::Uri = format!("http://127.0.0.1:{}/", server.local_addr().unwrap().port())
///         .parse()
///         .unwrap();
///     let mut sender = Connector::new().handshake(&uri).await.unwrap();
///     let res = sender.send_request(hyper::Request::get(&uri).body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
///     assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hi");
/// })
/// .unwrap();
/// ```
#[derive(Clone, Default)]
pub struct Connector {
    options: ConnectOptions,
    #[cfg(feature = "tls")]
    tls: Option<asyncio_streams::ClientTls>,
    http2_prior_knowledge: bool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector")
            .field("http2_prior_knowledge", &self.http2_prior_knowledge)
            .finish_non_exhaustive()
    }
}

/// A connection made by [`Connector::connect`], before the HTTP handshake.
#[derive(Debug)]
pub struct Connected {
    /// The connection, for hyper's `handshake` functions.
    pub io: HyperIo,
    /// Whether the peer is to be spoken to in HTTP/2: TLS's ALPN agreed on
    /// `h2`, or the connector was told so (prior knowledge).
    pub http2: bool,
}

impl Connector {
    /// Plain TCP for `http`, the system's roots for `https`, `TCP_NODELAY` on.
    pub fn new() -> Self {
        Connector {
            options: ConnectOptions::new().nodelay(true),
            ..Default::default()
        }
    }

    /// The connection options (buffer limit, `TCP_NODELAY`, TLS timeouts).
    pub fn options(mut self, options: ConnectOptions) -> Self {
        self.options = options;
        self
    }

    /// The TLS context for `https`; offer `h2` in its ALPN list to get
    /// HTTP/2 from servers that speak it.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: asyncio_streams::ClientTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Speak HTTP/2 on plaintext connections without asking (h2c with
    /// prior knowledge).
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.http2_prior_knowledge = true;
        self
    }

    /// Connects to the host and port of `uri` (port 80 or 443 by default).
    ///
    /// # Errors
    /// [`ConnectError::BadUri`] for a URI without host or with another
    /// scheme; [`ConnectError::Io`] when resolving, connecting or TLS fails.
    pub async fn connect(&self, uri: &Uri) -> Result<Connected, ConnectError> {
        let bad = |reason| ConnectError::BadUri {
            uri: uri.to_string(),
            reason,
        };
        let host = uri.host().ok_or_else(|| bad("it has no host"))?;
        // `[::1]` in a URI is `::1` to the resolver.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let https = match uri.scheme_str() {
            Some("http") | None => false,
            Some("https") => true,
            Some(_) => return Err(bad("the scheme is neither http nor https")),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !https {
            let (r, w) = asyncio_streams::open_connection_with(host, port, &self.options).await?;
            return Ok(Connected {
                io: HyperIo::new(r, w),
                http2: self.http2_prior_knowledge,
            });
        }
        #[cfg(feature = "tls")]
        {
            let tls = match &self.tls {
                Some(tls) => tls.clone(),
                None => asyncio_streams::ClientTls::builder()
                    .native_roots()
                    .alpn_protocols(["h2", "http/1.1"])
                    .build()
                    .map_err(io::Error::other)?,
            };
            let options = self.options.clone().ssl(tls);
            let (r, w) = asyncio_streams::open_connection_with(host, port, &options).await?;
            let http2 = w
                .tls_info()
                .and_then(|i| i.alpn_protocol)
                .is_some_and(|p| p == b"h2");
            Ok(Connected {
                io: HyperIo::new(r, w),
                http2,
            })
        }
        #[cfg(not(feature = "tls"))]
        Err(bad("https needs asyncio-hyper's `tls` feature"))
    }

    /// Connects and shakes hands in HTTP/1.1 or HTTP/2 (see
    /// [`Connected::http2`]); the connection is driven by a task of the
    /// running loop, which ends when the [`SendRequest`] is dropped and the
    /// requests in flight are done.
    ///
    /// # Errors
    /// As [`connect`](Self::connect), and [`ConnectError::Http`] when the
    /// handshake fails.
    pub async fn handshake<B>(&self, uri: &Uri) -> Result<SendRequest<B>, ConnectError>
    where
        B: Body + Unpin + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let Connected { io, http2 } = self.connect(uri).await?;
        if http2 {
            let (sender, conn) = http2::Builder::new(LocalExecutor)
                .timer(LoopTimer)
                .handshake(io)
                .await?;
            asyncio_core::create_task(conn);
            Ok(SendRequest::Http2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            asyncio_core::create_task(conn);
            Ok(SendRequest::Http1(sender))
        }
    }
}

/// hyper's request sender of either version, from [`Connector::handshake`].
#[derive(Debug)]
pub enum SendRequest<B> {
    /// An HTTP/1.1 connection: one request at a time.
    Http1(http1::SendRequest<B>),
    /// An HTTP/2 connection: clone it (`Clone` on the inner sender) to send
    /// many requests at once.
    Http2(http2::SendRequest<B>),
}

impl<B> SendRequest<B>
where
    B: Body + 'static,
{
    /// Sends `req`; the URI may be absolute or a path (HTTP/1.1 sends the
    /// path). The response's body streams as it arrives.
    ///
    /// # Errors
    /// hyper's error: the connection closed, or the response did not parse.
    pub async fn send_request(&mut self, req: Request<B>) -> hyper::Result<Response<Incoming>> {
        match self {
            SendRequest::Http1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            SendRequest::Http2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }

    /// Whether the connection speaks HTTP/2.
    pub fn is_http2(&self) -> bool {
        matches!(self, SendRequest::Http2(_))
    }
}
