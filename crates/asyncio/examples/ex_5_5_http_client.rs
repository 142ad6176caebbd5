//! An HTTP client with hyper 1.x on asyncio-rs: `asyncio::http::Connector`
//! turns a URI into a connection (TCP, or TLS for `https`), and its
//! `handshake` into a request sender of the version the server speaks.
//! Several requests go over one keep-alive HTTP/1.1 connection, then over
//! one HTTP/2 connection at once. It fetches from `ex_5_4_http_server` on
//! 127.0.0.1:8080 if one runs; otherwise it starts the same hello server in
//! this process on a free port, so the example also works alone.
//!
//! The same client with httpx:
//!
//! ```python
//! async with httpx.AsyncClient() as client:
//!     for path in ["/", "/streams", "/hyper"]:
//!         r = await client.get(f"http://127.0.0.1:8080{path}")
//!         print(f"GET {path} -> {r.status_code}: {r.text}", end="")
//! async with httpx.AsyncClient(http1=False, http2=True) as client:   # h2 needs TLS in httpx
//!     rs = await asyncio.gather(*(client.get(url) for url in urls))
//! ```

use std::convert::Infallible;
use std::io::ErrorKind;

use asyncio::http::{Connector, Http, HttpServer};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!(
        "Hello from asyncio-rs! You asked for {} ({:?})\n",
        req.uri().path(),
        req.version()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn main_task() -> Result<(), Box<dyn std::error::Error>> {
    let mut local: Option<HttpServer> = None;
    let base = match asyncio::open_connection("127.0.0.1", 8080).await {
        Ok(_) => "http://127.0.0.1:8080".to_owned(),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            println!("no server on 127.0.0.1:8080; starting one in this process");
            let server = Http::new(hyper::service::service_fn(hello))
                .start_server("127.0.0.1", 0)
                .await?;
            let port = server.local_addr().expect("a TCP server").port();
            local = Some(server);
            format!("http://127.0.0.1:{port}")
        }
        Err(e) => return Err(e.into()),
    };

    // HTTP/1.1: one connection, one request after the other.
    let mut sender = Connector::new().handshake(&base.parse()?).await?;
    for path in ["/", "/streams", "/hyper"] {
        let req = Request::get(format!("{base}{path}")).body(Empty::<Bytes>::new())?;
        let res: Response<Incoming> = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        print!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
    }
    drop(sender); // closes the connection; its task ends

    // HTTP/2 with prior knowledge (h2c): three requests at once on one connection.
    let h2 = Connector::new()
        .http2_prior_knowledge()
        .handshake::<Empty<Bytes>>(&base.parse()?)
        .await?;
    let asyncio::http::SendRequest::Http2(h2) = h2 else {
        unreachable!("prior knowledge gives HTTP/2")
    };
    let tasks: Vec<_> = ["/a", "/b", "/c"]
        .into_iter()
        .map(|path| {
            let mut h2 = h2.clone();
            let uri = format!("{base}{path}");
            asyncio::create_task(async move {
                let res = h2
                    .send_request(Request::get(uri).body(Empty::new())?)
                    .await?;
                let body = res.into_body().collect().await?.to_bytes();
                Ok::<_, Box<dyn std::error::Error>>(String::from_utf8_lossy(&body).into_owned())
            })
        })
        .collect();
    for t in tasks {
        print!("h2: {}", t.await??);
    }
    if let Some(server) = local {
        server.shutdown(std::time::Duration::from_secs(1)).await;
    }
    Ok(())
}

fn main() {
    asyncio::run(main_task())
        .expect("the loop runs")
        .expect("the requests succeed");
}
