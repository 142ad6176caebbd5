//! An HTTP/1.1 server: hyper 1.x running on asyncio-rs's loop, each
//! connection a task, through asyncio's streams.
//!
//! ```text
//! cargo run --release --example ex_5_4_http_server          # serves until Ctrl-C
//! cargo run --release --example ex_5_4_http_server -- 10    # stops after 10 connections
//! curl http://127.0.0.1:8080/
//! ```
//!
//! hyper needs no tokio here: it only asks for something that implements its
//! `rt::Read`/`rt::Write` traits, which `asyncio::HyperIo` (the facade's
//! `hyper` feature) provides over a `StreamReader`/`StreamWriter` pair.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!(
        "Hello from asyncio-rs! You asked for {}\n",
        req.uri().path()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn main_task(max_connections: Option<usize>) -> std::io::Result<()> {
    let served = Rc::new(Cell::new(0usize));
    let closer: Rc<std::cell::OnceCell<asyncio::Server>> = Rc::default();
    let (s, c) = (served.clone(), closer.clone());
    let server = asyncio::start_server(
        move |reader, writer| {
            let (s, c) = (s.clone(), c.clone());
            async move {
                let io = asyncio::HyperIo::new(reader, writer);
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, hyper::service::service_fn(hello));
                if let Err(e) = conn.await {
                    eprintln!("connection error: {e}");
                }
                s.set(s.get() + 1);
                if Some(s.get()) == max_connections
                    && let Some(server) = c.get()
                {
                    server.close();
                }
            }
        },
        "127.0.0.1",
        8080,
    )
    .await?;
    let _ = closer.set(server.clone());
    match max_connections {
        Some(n) => println!("Serving HTTP on http://127.0.0.1:8080/ for {n} connection(s)"),
        None => println!("Serving HTTP on http://127.0.0.1:8080/ (Ctrl-C to stop)"),
    }
    server.serve_forever().await?;
    server.wait_closed().await;
    println!("served {} connection(s)", served.get());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let max = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the argument is a number of connections"));
    match asyncio::run(main_task(max)) {
        Ok(result) => result,
        Err(asyncio::RunError::Interrupted) => Ok(()),
        Err(e) => panic!("the loop failed: {e}"),
    }
}
