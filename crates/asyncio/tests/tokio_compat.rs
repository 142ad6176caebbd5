//! tokio-bound crates inside asyncio tasks, through `asyncio::compat`
//! (feature `tokio`): reqwest against our own hyper server, tokio's timer
//! and channels, and cancellation of a task awaiting a wrapped future.

use std::cell::Cell;
use std::convert::Infallible;
use std::rc::Rc;
use std::time::Duration;

use asyncio::compat::CompatExt;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};

const LIMIT: Duration = Duration::from_secs(30);

async fn echo_path(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = format!("served on asyncio-rs: {}", req.uri().path());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[test]
fn reqwest_fetches_from_our_own_hyper_server_inside_asyncio_run() {
    let bodies = asyncio::run(asyncio::timeout(LIMIT, async {
        let server = asyncio::http::Http::new(hyper::service::service_fn(echo_path))
            .start_server("127.0.0.1", 0)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let mut bodies = Vec::new();
        for path in ["/one", "/two"] {
            let res = client
                .get(format!("http://127.0.0.1:{port}{path}"))
                .send()
                .compat()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            bodies.push(res.text().compat().await.unwrap());
        }
        // reqwest's pool kept one connection for both requests.
        assert_eq!(server.connections_served(), 1);
        server.shutdown(Duration::from_secs(5)).await;
        bodies
    }))
    .unwrap()
    .unwrap();
    assert_eq!(
        bodies,
        ["served on asyncio-rs: /one", "served on asyncio-rs: /two"]
    );
}

#[test]
fn tokio_sleep_and_mpsc_work_from_an_asyncio_task() {
    let got = asyncio::run(asyncio::timeout(LIMIT, async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(2);
        let producer = asyncio::create_task(async move {
            for i in 0..5 {
                // tokio's own timer: it needs tokio's runtime, which the
                // wrapper enters. `sleep` looks for the runtime when it is
                // called, so the call goes inside the wrapped block.
                async { tokio::time::sleep(Duration::from_millis(2)).await }
                    .compat()
                    .await;
                tx.send(i).await.unwrap();
            }
        });
        let mut got = Vec::new();
        while let Some(i) = rx.recv().compat().await {
            got.push(i);
        }
        producer.await.unwrap();
        got
    }))
    .unwrap()
    .unwrap();
    assert_eq!(got, [0, 1, 2, 3, 4]);
}

#[test]
fn cancelling_a_task_that_awaits_a_wrapped_tokio_future_drops_it() {
    struct Finally(Rc<Cell<bool>>);
    impl Drop for Finally {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let outcome = asyncio::run(asyncio::timeout(LIMIT, async move {
        let task = asyncio::create_task(async move {
            let _finally = Finally(c);
            // A tokio timer far away, and a channel that never gets a value.
            let sleep = async { tokio::time::sleep(Duration::from_secs(3600)).await };
            let _ = futures_lite::future::zip(sleep, rx).compat().await;
        });
        asyncio::sleep(Duration::from_millis(20)).await;
        task.cancel();
        let r = task.await;
        (r.is_err_and(|e| e.is_cancelled()), tx.is_closed())
    }))
    .unwrap()
    .unwrap();
    assert!(outcome.0, "the task ended cancelled");
    assert!(outcome.1, "the wrapped receiver was dropped");
    assert!(cleaned.get(), "the task's destructors ran");
}

#[test]
fn without_the_wrapper_a_tokio_timer_fails_its_task_and_the_loop_goes_on() {
    let outcome = asyncio::run(asyncio::timeout(LIMIT, async {
        let task = asyncio::create_task(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
        });
        let failed = task.await.is_err_and(|e| !e.is_cancelled());
        asyncio::sleep(Duration::from_millis(1)).await;
        failed
    }))
    .unwrap()
    .unwrap();
    assert!(
        outcome,
        "tokio's 'no reactor running' panic ends the task, not the loop"
    );
}
