//! reqwest — an HTTP client written for tokio — called from asyncio-rs
//! tasks through `asyncio::compat` (the facade's `tokio` feature), fetching
//! from a hyper server on this loop (or from the URL given).
//!
//! ```text
//! cargo run --release --example ex_5_8_reqwest                       # its own server, three requests at once
//! cargo run --release --example ex_5_8_reqwest -- http://127.0.0.1:8080/
//! ```
//!
//! The same with httpx:
//!
//! ```python
//! async with httpx.AsyncClient() as client:
//!     responses = await asyncio.gather(*(client.get(f"{base}/{i}") for i in range(3)))
//!     for r in responses:
//!         print(r.status_code, r.text)
//! ```
//!
//! reqwest looks for tokio's reactor when it connects and its timer when it
//! times out; `.compat()` gives it one (a tokio runtime on one background
//! thread, started on first use). Each wake-up from reqwest's I/O then
//! crosses from that thread to the loop: fine for calling out to services,
//! while the loop's own `asyncio::http` stays the fast path.

use std::convert::Infallible;
use std::time::Duration;

use asyncio::compat::CompatExt;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};

async fn hello(req: hyper::Request<Incoming>) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let body = format!("Hello from asyncio-rs, {}\n", req.uri().path());
    Ok(hyper::Response::new(Full::new(Bytes::from(body))))
}

async fn main_task(url: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut local = None;
    let base = match url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let server = asyncio::http::Http::new(hyper::service::service_fn(hello))
                .start_server("127.0.0.1", 0)
                .await?;
            let base = format!(
                "http://127.0.0.1:{}",
                server.local_addr().expect("TCP").port()
            );
            local = Some(server);
            base
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let (client, url) = (client.clone(), format!("{base}/{i}"));
            asyncio::create_task(
                async move {
                    let res = client.get(url).send().await?;
                    Ok::<_, reqwest::Error>((res.status(), res.text().await?))
                }
                .compat(),
            )
        })
        .collect();
    for t in tasks {
        let (status, text) = t.await??;
        print!("{status}: {text}");
    }
    if let Some(server) = local {
        server.shutdown(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn main() {
    asyncio::run(main_task(std::env::args().nth(1)))
        .expect("the loop runs")
        .expect("the requests succeed");
}
