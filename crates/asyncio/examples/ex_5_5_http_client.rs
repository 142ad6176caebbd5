//! An HTTP/1.1 client with hyper 1.x on asyncio-rs: several requests over one
//! keep-alive connection. It fetches from `ex_5_4_http_server` on
//! 127.0.0.1:8080 if one runs; otherwise it starts the same hello server in
//! this process on a free port, so the example also works alone.

use std::convert::Infallible;
use std::io::ErrorKind;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!(
        "Hello from asyncio-rs! You asked for {}\n",
        req.uri().path()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn local_server() -> std::io::Result<asyncio::Server> {
    asyncio::start_server(
        |reader, writer| async move {
            let io = asyncio::HyperIo::new(reader, writer);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, hyper::service::service_fn(hello))
                .await;
        },
        "127.0.0.1",
        0,
    )
    .await
}

async fn main_task() -> Result<(), Box<dyn std::error::Error>> {
    let mut _local = None;
    let (reader, writer) = match asyncio::open_connection("127.0.0.1", 8080).await {
        Ok(pair) => pair,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            println!("no server on 127.0.0.1:8080; starting one in this process");
            let server = local_server().await?;
            let port = server.local_addr().expect("a TCP server").port();
            _local = Some(server);
            asyncio::open_connection("127.0.0.1", port).await?
        }
        Err(e) => return Err(e.into()),
    };
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(asyncio::HyperIo::new(reader, writer)).await?;
    // The connection is driven by its own task, as with tokio::spawn.
    let driver = asyncio::create_task(conn);
    for path in ["/", "/streams", "/hyper"] {
        let req = Request::get(path)
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())?;
        let res: Response<Incoming> = sender.send_request(req).await?;
        let status = res.status();
        let body = res.into_body().collect().await?.to_bytes();
        print!("GET {path} -> {status}: {}", String::from_utf8_lossy(&body));
    }
    drop(sender); // closes the connection; its task ends
    driver.await??;
    Ok(())
}

fn main() {
    asyncio::run(main_task())
        .expect("the loop runs")
        .expect("the requests succeed");
}
