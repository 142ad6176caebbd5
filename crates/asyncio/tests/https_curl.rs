//! HTTPS: hyper over asyncio-rs's TLS streams, fetched by `curl --cacert`
//! (a client no one here wrote) and by hyper's own client over
//! `open_connection(ssl=)`. Certificates are made at run time.

use std::convert::Infallible;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use asyncio::{ClientTls, ConnectOptions, ServerOptions, ServerTls, StreamReader, StreamWriter};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

struct Certs {
    ca_pem: String,
    server: ServerTls,
    client: ClientTls,
}

fn certs() -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "asyncio-rs https test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let server = ServerTls::builder()
        .cert_pem(leaf.pem(), leaf_key.serialize_pem())
        .alpn_protocols(["http/1.1"])
        .build()
        .unwrap();
    let client = ClientTls::builder()
        .add_root_pem(ca.pem())
        .alpn_protocols(["http/1.1"])
        .build()
        .unwrap();
    Certs {
        ca_pem: ca.pem(),
        server,
        client,
    }
}

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("hello over TLS, {}\n", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn serve_https(tls: ServerTls) -> (asyncio::Server, u16) {
    let server = asyncio::start_server_with(
        |r: StreamReader, w: StreamWriter| async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    asyncio::HyperIo::new(r, w),
                    hyper::service::service_fn(hello),
                )
                .await;
        },
        "127.0.0.1",
        0,
        &ServerOptions::new().ssl(tls),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port)
}

#[test]
fn curl_fetches_from_a_hyper_server_over_asyncio_tls() {
    let curl_there = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        curl_there,
        "`curl` is not installed: this test runs it as a real HTTPS client (apt-get install curl)"
    );
    let c = certs();
    let dir = std::env::temp_dir().join(format!("asyncio-https-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, &c.ca_pem).unwrap();
    let out = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        let (_server, port) = serve_https(c.server).await;
        asyncio::to_thread(move || {
            let mut child = Command::new("curl")
                .args([
                    "--silent",
                    "--show-error",
                    "--http1.1",
                    "--cacert",
                    &ca_path.display().to_string(),
                    "--resolve",
                    &format!("localhost:{port}:127.0.0.1"),
                    &format!("https://localhost:{port}/curl"),
                    &format!("https://localhost:{port}/again"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let start = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if start.elapsed() > Duration::from_secs(25) {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }))
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "curl failed: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello over TLS, /curl\nhello over TLS, /again\n"
    );
}

#[test]
fn hyper_client_fetches_over_open_connection_with_ssl() {
    let c = certs();
    let got = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        let (_server, port) = serve_https(c.server).await;
        let opts = ConnectOptions::new()
            .ssl(c.client)
            .server_hostname("localhost");
        let (r, w) = asyncio::open_connection_with("127.0.0.1", port, &opts)
            .await
            .unwrap();
        assert_eq!(
            w.tls_info().unwrap().alpn_protocol.as_deref(),
            Some(&b"http/1.1"[..])
        );
        let (mut sender, conn) = hyper::client::conn::http1::handshake(asyncio::HyperIo::new(r, w))
            .await
            .unwrap();
        let driver = asyncio::create_task(conn);
        let mut bodies = Vec::new();
        for i in 0..5 {
            let req = Request::get(format!("/r{i}"))
                .header("host", "localhost")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = sender.send_request(req).await.unwrap();
            bodies.push(res.into_body().collect().await.unwrap().to_bytes());
        }
        drop(sender);
        driver.await.unwrap().unwrap();
        bodies
    }))
    .unwrap()
    .unwrap();
    assert_eq!(got.len(), 5);
    assert_eq!(&got[4][..], b"hello over TLS, /r4\n");
}
