//! The serve helper and the connector: HTTP/1.1, h2c, ALPN over TLS, Unix
//! sockets, timeouts, graceful shutdown. Loopback only; every test bounded
//! in time by an outer `asyncio::timeout`.

use std::cell::{Cell, RefCell};
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use asyncio::http::{Connector, Http, HttpServer, HttpVersions, SendRequest};
use asyncio::{ClientTls, ServerOptions, ServerTls};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, Version};

const LIMIT: Duration = Duration::from_secs(30);

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello {:?} {}", req.version(), req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

fn run<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    asyncio::run(asyncio::timeout(LIMIT, fut))
        .expect("the loop runs")
        .expect("the test ends within its limit")
}

async fn hello_server(http: Http<impl HelloService>) -> (HttpServer, hyper::Uri) {
    let server = http.start_server("127.0.0.1", 0).await.unwrap();
    let uri = format!("http://127.0.0.1:{}/", server.local_addr().unwrap().port())
        .parse()
        .unwrap();
    (server, uri)
}

trait HelloService:
    hyper::service::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future: 'static,
    > + Clone
    + 'static
{
}
impl<T> HelloService for T where
    T: hyper::service::Service<
            Request<Incoming>,
            Response = Response<Full<Bytes>>,
            Error = Infallible,
            Future: 'static,
        > + Clone
        + 'static
{
}

async fn get(sender: &mut SendRequest<Empty<Bytes>>, uri: &hyper::Uri) -> (Version, String) {
    let res = sender
        .send_request(Request::get(uri).body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let version = res.version();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (version, String::from_utf8(body.to_vec()).unwrap())
}

#[test]
fn http1_requests_share_one_keep_alive_connection() {
    run(async {
        let (server, uri) = hello_server(Http::new(hyper::service::service_fn(hello))).await;
        let mut sender = Connector::new().handshake(&uri).await.unwrap();
        assert!(!sender.is_http2());
        for path in ["/a", "/b", "/c"] {
            let u: hyper::Uri = format!("{}{}", uri.to_string().trim_end_matches('/'), path)
                .parse()
                .unwrap();
            assert_eq!(
                get(&mut sender, &u).await.1,
                format!("hello HTTP/1.1 {path}")
            );
        }
        assert_eq!(server.connections_served(), 1);
        drop(sender);
        let report = server.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.cancelled, 0);
    });
}

#[test]
fn h2c_with_prior_knowledge_is_served_on_the_same_port_as_http1() {
    run(async {
        let (server, uri) = hello_server(Http::new(hyper::service::service_fn(hello))).await;
        let mut h2 = Connector::new()
            .http2_prior_knowledge()
            .handshake(&uri)
            .await
            .unwrap();
        assert!(h2.is_http2());
        assert_eq!(
            get(&mut h2, &uri).await,
            (Version::HTTP_2, "hello HTTP/2.0 /".into())
        );
        let mut h1 = Connector::new().handshake(&uri).await.unwrap();
        assert_eq!(get(&mut h1, &uri).await.0, Version::HTTP_11);
        drop((h1, h2));
        server.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn http2_streams_run_concurrently_on_one_connection() {
    run(async {
        // Each request waits until all ten have arrived: they can only all
        // finish if the server runs them at once.
        let barrier = Rc::new(asyncio::Barrier::new(10).unwrap());
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await.unwrap();
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("together"))))
            }
        });
        let (server, uri) = hello_server(Http::new(service).protocol(HttpVersions::Http2)).await;
        let SendRequest::Http2(sender) = Connector::new()
            .http2_prior_knowledge()
            .handshake::<Empty<Bytes>>(&uri)
            .await
            .unwrap()
        else {
            panic!("prior knowledge gives HTTP/2");
        };
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let mut s = sender.clone();
                let uri = uri.clone();
                asyncio::create_task(async move {
                    let res = s
                        .send_request(Request::get(uri).body(Empty::new()).unwrap())
                        .await
                        .unwrap();
                    res.into_body().collect().await.unwrap().to_bytes()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), "together");
        }
        assert_eq!(server.connections_served(), 1);
    });
}

struct Certs {
    server: ServerTls,
    ca_pem: String,
}

fn certs(alpn: &[&str]) -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let server = ServerTls::builder()
        .cert_pem(leaf.pem(), leaf_key.serialize_pem())
        .alpn_protocols(alpn)
        .build()
        .unwrap();
    Certs {
        server,
        ca_pem: ca.pem(),
    }
}

async fn https(alpn_server: &[&str], alpn_client: &[&str]) -> (Version, String, bool) {
    let c = certs(alpn_server);
    let server = Http::new(hyper::service::service_fn(hello))
        // Plaintext would be HTTP/1 only: what TLS speaks must come from ALPN.
        .protocol(HttpVersions::Http1)
        .start_server_with("127.0.0.1", 0, &ServerOptions::new().ssl(c.server))
        .await
        .unwrap();
    let uri: hyper::Uri = format!(
        "https://localhost:{}/tls",
        server.local_addr().unwrap().port()
    )
    .parse()
    .unwrap();
    let tls = ClientTls::builder()
        .add_root_pem(c.ca_pem)
        .alpn_protocols(alpn_client)
        .build()
        .unwrap();
    let mut sender = Connector::new().tls(tls).handshake(&uri).await.unwrap();
    let h2 = sender.is_http2();
    let (v, body) = get(&mut sender, &uri).await;
    drop(sender);
    server.shutdown(Duration::from_secs(5)).await;
    (v, body, h2)
}

#[test]
fn alpn_h2_over_tls_serves_http2() {
    let (v, body, h2) = run(https(&["h2", "http/1.1"], &["h2", "http/1.1"]));
    assert!(h2, "the connector follows ALPN");
    assert_eq!(v, Version::HTTP_2);
    assert_eq!(body, "hello HTTP/2.0 /tls");
}

#[test]
fn alpn_http11_over_tls_serves_http1() {
    let (v, body, h2) = run(https(&["h2", "http/1.1"], &["http/1.1"]));
    assert!(!h2);
    assert_eq!(v, Version::HTTP_11);
    assert_eq!(body, "hello HTTP/1.1 /tls");
}

#[test]
fn a_unix_socket_server_serves_hyper_clients() {
    let dir = std::env::temp_dir().join(format!("asyncio-hyper-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("http.sock");
    let _ = std::fs::remove_file(&path);
    let p = path.clone();
    run(async move {
        let server = Http::new(hyper::service::service_fn(hello))
            .start_unix_server_with(&p, &ServerOptions::new())
            .await
            .unwrap();
        let (r, w) = asyncio::open_unix_connection(&p).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(asyncio::HyperIo::new(r, w))
            .await
            .unwrap();
        asyncio::create_task(conn);
        let res = sender
            .send_request(
                Request::get("/unix")
                    .header("host", "localhost")
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello HTTP/1.1 /unix");
        drop(sender);
        server.shutdown(Duration::from_secs(5)).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn header_read_timeout_closes_a_silent_client() {
    run(async {
        let http = Http::new(hyper::service::service_fn(hello))
            .protocol(HttpVersions::Http1)
            .header_read_timeout(Duration::from_millis(200));
        let (server, uri) = hello_server(http).await;
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        // The client says nothing: the server closes the connection.
        let got = asyncio::timeout(Duration::from_secs(10), r.read_to_eof())
            .await
            .expect("the server closed the silent connection");
        assert!(got.map(|b| b.is_empty()).unwrap_or(true));
        drop(server);
    });
}

#[test]
fn header_read_timeout_closes_a_client_that_stops_mid_headers() {
    run(async {
        let http = Http::new(hyper::service::service_fn(hello))
            .protocol(HttpVersions::Http1)
            .header_read_timeout(Duration::from_millis(200));
        let (server, uri) = hello_server(http).await;
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        w.write(b"GET / HTTP/1.1\r\nHost: x\r\n");
        let got = asyncio::timeout(Duration::from_secs(10), r.read_to_eof())
            .await
            .expect("the server closed the connection");
        // hyper may answer 408 before closing; it never answers 200.
        let text = String::from_utf8_lossy(&got.unwrap_or_default()).into_owned();
        assert!(!text.contains("200 OK"), "{text}");
        drop(server);
    });
}

#[test]
fn a_keep_alive_connection_left_idle_is_closed_after_the_header_read_timeout() {
    run(async {
        let http = Http::new(hyper::service::service_fn(hello))
            .protocol(HttpVersions::Http1)
            .header_read_timeout(Duration::from_millis(200));
        let (server, uri) = hello_server(http).await;
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        w.write(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
        let head = r.readuntil(b"hello HTTP/1.1 /one").await.unwrap();
        assert!(head.starts_with(b"HTTP/1.1 200 OK"));
        // Then nothing: the idle keep-alive connection is closed.
        let rest = asyncio::timeout(Duration::from_secs(10), r.read_to_eof())
            .await
            .expect("the idle connection was closed");
        assert!(rest.map(|b| b.is_empty()).unwrap_or(true));
        drop(server);
    });
}

/// A frame header of HTTP/2: length, type, flags, stream 0.
fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut f = vec![
        (n >> 16) as u8,
        (n >> 8) as u8,
        n as u8,
        kind,
        0,
        0,
        0,
        0,
        0,
    ];
    f.extend_from_slice(payload);
    f
}

#[test]
fn http2_keep_alive_closes_a_peer_that_never_answers_pings() {
    run(async {
        let http = Http::new(hyper::service::service_fn(hello))
            .protocol(HttpVersions::Http2)
            .http2_keep_alive(Duration::from_millis(100), Duration::from_millis(200));
        let (server, uri) = hello_server(http).await;
        let (mut r, mut w) = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        // The preface and empty SETTINGS, then silence: no SETTINGS ack, no
        // PING ack.
        w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        w.write(&frame(4, &[]));
        let mut kinds = Vec::new();
        let closed = asyncio::timeout(Duration::from_secs(10), async {
            loop {
                let Ok(head) = r.readexactly(9).await else {
                    return;
                };
                let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
                kinds.push(head[3]);
                if r.readexactly(len).await.is_err() {
                    return;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the server closed the connection");
        assert!(
            kinds.contains(&6),
            "a PING came before the close: {kinds:?}"
        );
        drop(server);
    });
}

#[test]
fn graceful_shutdown_finishes_an_in_flight_request() {
    run(async {
        let started = Rc::new(asyncio::Event::new());
        let s = started.clone();
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let s = s.clone();
            async move {
                s.set();
                asyncio::sleep(Duration::from_millis(200)).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("finished"))))
            }
        });
        let (server, uri) = hello_server(Http::new(service)).await;
        let port = uri.port_u16().unwrap();
        let mut sender = Connector::new().handshake(&uri).await.unwrap();
        let request = asyncio::create_task(async move { get(&mut sender, &uri).await.1 });
        started.wait().await;
        let report = server.shutdown(Duration::from_secs(10)).await;
        assert_eq!(request.await.unwrap(), "finished");
        assert_eq!(report.finished, 1);
        assert_eq!(report.cancelled, 0);
        // No longer accepting.
        assert!(asyncio::open_connection("127.0.0.1", port).await.is_err());
    });
}

#[test]
fn graceful_shutdown_cancels_connections_still_busy_at_the_deadline() {
    struct Dropped(Rc<Cell<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    run(async {
        let started = Rc::new(asyncio::Event::new());
        let dropped = Rc::new(Cell::new(false));
        let (s, d) = (started.clone(), dropped.clone());
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let (s, guard) = (s.clone(), Dropped(d.clone()));
            async move {
                let _guard = guard;
                s.set();
                asyncio::sleep(Duration::from_secs(3600)).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("never"))))
            }
        });
        let (server, uri) = hello_server(Http::new(service)).await;
        let mut sender = Connector::new().handshake(&uri).await.unwrap();
        let request = asyncio::create_task(async move {
            sender
                .send_request(Request::get(&uri).body(Empty::<Bytes>::new()).unwrap())
                .await
                .map(|r| r.status())
        });
        started.wait().await;
        let report = server.shutdown(Duration::from_millis(100)).await;
        assert_eq!(report.cancelled, 1);
        assert_eq!(report.finished, 0);
        assert!(
            dropped.get(),
            "the handler's future was dropped (its finally ran)"
        );
        assert!(
            request.await.unwrap().is_err(),
            "the client saw the connection go"
        );
    });
}

#[test]
fn a_panicking_handler_closes_its_connection_and_the_server_goes_on() {
    let reports: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = reports.clone();
    run(async move {
        let lp = asyncio::get_running_loop().unwrap();
        lp.set_exception_handler(Some(move |ctx: &asyncio::ExceptionContext| {
            seen.borrow_mut().push(ctx.message.clone());
        }));
        let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
            if req.uri().path() == "/panic" {
                panic!("handler failure");
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("fine"))))
        });
        let (server, uri) = hello_server(Http::new(service)).await;
        let mut other = Connector::new().handshake(&uri).await.unwrap();
        let mut bad = Connector::new().handshake(&uri).await.unwrap();
        let panic_uri: hyper::Uri = format!("{}panic", uri).parse().unwrap();
        assert!(
            bad.send_request(
                Request::get(&panic_uri)
                    .body(Empty::<Bytes>::new())
                    .unwrap()
            )
            .await
            .is_err()
        );
        assert_eq!(get(&mut other, &uri).await.1, "fine");
        let mut fresh = Connector::new().handshake(&uri).await.unwrap();
        assert_eq!(get(&mut fresh, &uri).await.1, "fine");
        drop((other, fresh));
        server.shutdown(Duration::from_secs(5)).await;
    });
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("HTTP service panicked"));
}

#[test]
fn dropping_the_server_cancels_its_connections() {
    run(async {
        let (server, uri) = hello_server(Http::new(hyper::service::service_fn(hello))).await;
        let (mut r, _w) = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        // Accepted and idle in its task.
        while server.connections() == 0 {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        drop(server);
        let got = asyncio::timeout(Duration::from_secs(10), r.read_to_eof())
            .await
            .expect("the connection closed with its server");
        assert!(got.map(|b| b.is_empty()).unwrap_or(true));
    });
}

#[test]
fn graceful_shutdown_lets_an_http2_stream_in_flight_finish() {
    run(async {
        let started = Rc::new(asyncio::Event::new());
        let s = started.clone();
        let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
            let s = s.clone();
            async move {
                s.set();
                asyncio::sleep(Duration::from_millis(200)).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("h2 finished"))))
            }
        });
        let (server, uri) = hello_server(Http::new(service)).await;
        let mut sender = Connector::new()
            .http2_prior_knowledge()
            .handshake(&uri)
            .await
            .unwrap();
        let request = asyncio::create_task(async move { get(&mut sender, &uri).await });
        started.wait().await;
        let report = server.shutdown(Duration::from_secs(10)).await;
        assert_eq!(
            request.await.unwrap(),
            (Version::HTTP_2, "h2 finished".to_owned())
        );
        assert_eq!(
            report,
            asyncio::http::ShutdownReport {
                finished: 1,
                cancelled: 0
            }
        );
    });
}

#[test]
fn the_connector_refuses_a_uri_it_cannot_reach_with_a_typed_error() {
    run(async {
        let err = Connector::new()
            .connect(&"ftp://127.0.0.1/".parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, asyncio::http::ConnectError::BadUri { .. }),
            "{err}"
        );
        let err = Connector::new()
            .connect(&"/just/a/path".parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, asyncio::http::ConnectError::BadUri { .. }),
            "{err}"
        );
        // A port nobody listens on: the OS's error, typed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = Connector::new()
            .connect(&format!("http://127.0.0.1:{port}/").parse().unwrap())
            .await
            .unwrap_err();
        match err {
            asyncio::http::ConnectError::Io(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused)
            }
            other => panic!("expected an I/O error, got {other}"),
        }
    });
}

#[test]
fn a_server_that_outlives_its_loop_is_dropped_without_a_panic() {
    // The server escapes `run` with a connection still open: `run` cancels
    // the connection's task at its end, and the server is dropped after.
    let (server, _client) = asyncio::run(async {
        let (server, uri) = hello_server(Http::new(hyper::service::service_fn(hello))).await;
        let client = asyncio::open_connection("127.0.0.1", uri.port_u16().unwrap())
            .await
            .unwrap();
        while server.connections() == 0 {
            asyncio::sleep(Duration::from_millis(1)).await;
        }
        (server, client)
    })
    .unwrap();
    assert_eq!(
        server.connections(),
        0,
        "run's end cancelled the connection"
    );
    drop(server);
}
