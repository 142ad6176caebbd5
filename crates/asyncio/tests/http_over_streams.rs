//! hyper 1.x serves and fetches HTTP/1.1 on asyncio-rs's streams (what
//! ex_5_4 and ex_5_5 show), bounded in count and time.

use std::cell::RefCell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

async fn echo_body(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut out = path.into_bytes();
    out.extend_from_slice(b":");
    out.extend_from_slice(&body);
    Ok(Response::new(Full::new(Bytes::from(out))))
}

#[test]
fn hyper_serves_keep_alive_requests_on_several_connections() {
    // Handler outcomes are recorded and checked after the run: a panic inside
    // a task would only reach the exception handler.
    let served: Rc<RefCell<Vec<Result<(), String>>>> = Rc::default();
    let record = served.clone();
    let outcome = asyncio::run(asyncio::timeout(Duration::from_secs(30), async move {
        let server = asyncio::start_server(
            move |reader, writer| {
                let record = record.clone();
                async move {
                    let io = asyncio::HyperIo::new(reader, writer);
                    let r = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, hyper::service::service_fn(echo_body))
                        .await;
                    record.borrow_mut().push(r.map_err(|e| e.to_string()));
                }
            },
            "127.0.0.1",
            0,
        )
        .await
        .unwrap();
        let port = server.local_addr().unwrap().port();
        let clients: Vec<_> = (0..3)
            .map(|c| {
                asyncio::create_task(async move {
                    let (r, w) = asyncio::open_connection("127.0.0.1", port).await.unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(asyncio::HyperIo::new(r, w))
                            .await
                            .unwrap();
                    let driver = asyncio::create_task(conn);
                    for i in 0..20 {
                        // A body large enough to need several writes.
                        let body = vec![b'a' + (i % 26) as u8; 100_000];
                        let req = Request::post(format!("/c{c}/r{i}"))
                            .header("host", "localhost")
                            .body(Full::new(Bytes::from(body.clone())))
                            .unwrap();
                        let res = sender.send_request(req).await.unwrap();
                        assert_eq!(res.status(), 200);
                        let got = res.into_body().collect().await.unwrap().to_bytes();
                        let mut want = format!("/c{c}/r{i}:").into_bytes();
                        want.extend_from_slice(&body);
                        assert!(got == want, "response {i} of client {c} differs");
                    }
                    drop(sender);
                    driver.await.unwrap().unwrap();
                })
            })
            .collect();
        for c in clients {
            c.await.unwrap();
        }
        server.close();
        server.wait_closed().await;
    }));
    outcome.unwrap().expect("the exchange finished within 30 s");
    let served = served.borrow();
    assert_eq!(served.len(), 3, "one served connection per client");
    assert!(served.iter().all(Result::is_ok), "{served:?}");
}

/// `LocalExecutor` runs what hyper hands it as a task of the running loop
/// (the futures need not be `Send`).
#[test]
fn local_executor_runs_hypers_futures_as_tasks_of_the_loop() {
    use hyper::rt::Executor;
    let ran = asyncio::run(async {
        let ran = std::rc::Rc::new(std::cell::Cell::new(false));
        let r = ran.clone();
        asyncio::LocalExecutor.execute(async move { r.set(true) });
        asyncio::sleep(std::time::Duration::from_millis(1)).await;
        ran.get()
    })
    .unwrap();
    assert!(ran);
}
