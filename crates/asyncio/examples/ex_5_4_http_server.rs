//! An HTTP server: hyper 1.x on asyncio-rs's loop through `asyncio::http`,
//! each connection a task of one TaskGroup, HTTP/1.1 and HTTP/2 (h2c) on one
//! port, a graceful shutdown on SIGTERM.
//!
//! ```text
//! cargo run --release --example ex_5_4_http_server          # serves until SIGTERM or Ctrl-C
//! cargo run --release --example ex_5_4_http_server -- 10    # stops after 10 requests
//! curl http://127.0.0.1:8080/
//! curl --http2-prior-knowledge http://127.0.0.1:8080/h2
//! ```
//!
//! The same server with aiohttp:
//!
//! ```python
//! from aiohttp import web
//!
//! async def hello(request):
//!     return web.Response(text=f"Hello from asyncio! You asked for {request.path}\n")
//!
//! app = web.Application()
//! app.router.add_get("/{tail:.*}", hello)
//! web.run_app(app, host="127.0.0.1", port=8080, shutdown_timeout=5)
//! ```
//!
//! SIGTERM stops accepting, lets the requests in flight finish (5 s at
//! most), then cancels what is left; Ctrl-C cancels the main task, which
//! drops the server and cancels its connections at once.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use asyncio::http::Http;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn main_task(max_requests: Option<u64>) -> std::io::Result<()> {
    let stop = Rc::new(asyncio::Event::new());
    let lp = asyncio::get_running_loop().expect("inside asyncio::run");
    let s = stop.clone();
    lp.add_signal_handler(asyncio::signal::SIGTERM, move || s.set())
        .map_err(std::io::Error::other)?;

    let served = Rc::new(Cell::new(0u64));
    let (count, s) = (served.clone(), stop.clone());
    let hello = move |req: Request<Incoming>| {
        count.set(count.get() + 1);
        if Some(count.get()) == max_requests {
            s.set();
        }
        let body = format!(
            "Hello from asyncio-rs! You asked for {} ({:?})\n",
            req.uri().path(),
            req.version()
        );
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
    };
    let server = Http::new(hyper::service::service_fn(hello))
        .start_server("127.0.0.1", 8080)
        .await?;
    match max_requests {
        Some(n) => println!("Serving HTTP on http://127.0.0.1:8080/ for {n} request(s)"),
        None => println!("Serving HTTP on http://127.0.0.1:8080/ (SIGTERM or Ctrl-C to stop)"),
    }
    let report = server
        .serve_until(stop.wait(), Duration::from_secs(5))
        .await;
    println!(
        "served {} request(s); at shutdown {} connection(s) finished, {} cancelled",
        served.get(),
        report.finished,
        report.cancelled
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let max = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the argument is a number of requests"));
    match asyncio::run(main_task(max)) {
        Ok(result) => result,
        Err(asyncio::RunError::Interrupted) => Ok(()),
        Err(e) => panic!("the loop failed: {e}"),
    }
}
