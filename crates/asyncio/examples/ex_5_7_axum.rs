//! An axum application on asyncio-rs's loop: a `Router` with JSON in and
//! out, a path parameter, shared state and a tower-http layer, served by
//! `asyncio::http::Http` (axum's own `serve` needs tokio's listener; this
//! needs no tokio runtime at all).
//!
//! ```text
//! cargo run --release --example ex_5_7_axum            # serves on 127.0.0.1:8081 until SIGTERM or Ctrl-C
//! cargo run --release --example ex_5_7_axum -- demo    # serves itself a few requests, then stops
//! curl -d '{"text":"buy milk"}' -H 'content-type: application/json' http://127.0.0.1:8081/notes
//! curl http://127.0.0.1:8081/notes/1
//! ```
//!
//! The same application with aiohttp:
//!
//! ```python
//! from aiohttp import web
//!
//! async def create(request):
//!     notes = request.app["notes"]
//!     text = (await request.json())["text"]
//!     notes[len(notes) + 1] = text
//!     return web.json_response({"id": len(notes), "text": text}, status=201)
//!
//! async def read(request):
//!     note_id = int(request.match_info["id"])
//!     if note_id not in request.app["notes"]:
//!         raise web.HTTPNotFound()
//!     return web.json_response({"id": note_id, "text": request.app["notes"][note_id]})
//!
//! @web.middleware
//! async def server_header(request, handler):
//!     response = await handler(request)
//!     response.headers["server"] = "asyncio-rs"
//!     return response
//!
//! app = web.Application(middlewares=[server_header])
//! app["notes"] = {}
//! app.router.add_post("/notes", create)
//! app.router.add_get("/notes/{id}", read)
//! web.run_app(app, host="127.0.0.1", port=8081)
//! ```

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncio::http::{Connector, Http, TowerToHyperService};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

/// axum's state must be `Send + Sync` (its handlers' futures are `Send`),
/// so it is shared with `Arc<Mutex<_>>` even though one thread serves.
#[derive(Clone, Default)]
struct Notes(Arc<Mutex<BTreeMap<u32, String>>>);

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

#[derive(Serialize)]
struct Note {
    id: u32,
    text: String,
}

async fn create(State(notes): State<Notes>, Json(new): Json<NewNote>) -> (StatusCode, Json<Note>) {
    let mut notes = notes.0.lock().expect("no handler panics holding the lock");
    let id = notes.len() as u32 + 1;
    notes.insert(id, new.text.clone());
    (StatusCode::CREATED, Json(Note { id, text: new.text }))
}

async fn read(State(notes): State<Notes>, Path(id): Path<u32>) -> Result<Json<Note>, StatusCode> {
    let notes = notes.0.lock().expect("no handler panics holding the lock");
    let text = notes.get(&id).ok_or(StatusCode::NOT_FOUND)?.clone();
    Ok(Json(Note { id, text }))
}

fn app() -> axum::Router {
    axum::Router::new()
        .route("/notes", post(create))
        .route("/notes/{id}", get(read))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::SERVER,
            HeaderValue::from_static("asyncio-rs"),
        ))
        .with_state(Notes::default())
}

/// The demo's own requests, as `curl` would make them.
async fn demo(port: u16) -> Result<(), Box<dyn std::error::Error>> {
    let base = format!("http://127.0.0.1:{port}");
    let mut client = Connector::new().handshake(&base.parse()?).await?;
    let requests = [
        hyper::Request::post(format!("{base}/notes"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(r#"{"text":"buy milk"}"#)))?,
        hyper::Request::get(format!("{base}/notes/1")).body(Full::default())?,
        hyper::Request::get(format!("{base}/notes/2")).body(Full::default())?,
    ];
    for req in requests {
        let line = format!("{} {}", req.method(), req.uri().path());
        let res = client.send_request(req).await?;
        let (status, server) = (res.status(), res.headers()[header::SERVER].clone());
        let body = res.into_body().collect().await?.to_bytes();
        println!(
            "{line} -> {status} (server: {server:?}) {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

async fn main_task(demo_run: bool) -> Result<(), Box<dyn std::error::Error>> {
    let stop = Rc::new(asyncio::Event::new());
    let lp = asyncio::get_running_loop().expect("inside asyncio::run");
    let s = stop.clone();
    lp.add_signal_handler(asyncio::signal::SIGTERM, move || s.set())?;
    let server = Http::new(TowerToHyperService::new(app()))
        .start_server("127.0.0.1", if demo_run { 0 } else { 8081 })
        .await?;
    let port = server.local_addr().expect("a TCP server").port();
    println!("Serving the notes app on http://127.0.0.1:{port}/");
    if demo_run {
        demo(port).await?;
        stop.set();
    }
    let report = server
        .serve_until(stop.wait(), Duration::from_secs(5))
        .await;
    println!(
        "stopped: {} connection(s) cancelled at shutdown",
        report.cancelled
    );
    Ok(())
}

fn main() {
    let demo_run = std::env::args().nth(1).as_deref() == Some("demo");
    match asyncio::run(main_task(demo_run)) {
        Ok(result) => result.expect("the app serves"),
        Err(asyncio::RunError::Interrupted) => {}
        Err(e) => panic!("the loop failed: {e}"),
    }
}
