//! axum's Router on asyncio-rs's loop, served by `asyncio::http::Http`
//! (axum's own `serve` needs tokio's listener; this needs no tokio at all):
//! JSON in and out, a path parameter, shared state and a tower-http layer.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncio::http::{Connector, Http, TowerToHyperService};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::routing::{get, post};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

#[derive(Clone, Default)]
struct AppState {
    notes: Arc<Mutex<BTreeMap<u32, String>>>,
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Note {
    id: u32,
    text: String,
}

async fn create(
    State(state): State<AppState>,
    Json(new): Json<NewNote>,
) -> (StatusCode, Json<Note>) {
    let mut notes = state.notes.lock().unwrap();
    let id = notes.len() as u32 + 1;
    notes.insert(id, new.text.clone());
    (StatusCode::CREATED, Json(Note { id, text: new.text }))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<u32>,
) -> Result<Json<Note>, StatusCode> {
    let notes = state.notes.lock().unwrap();
    let text = notes.get(&id).ok_or(StatusCode::NOT_FOUND)?.clone();
    Ok(Json(Note { id, text }))
}

fn app() -> axum::Router {
    axum::Router::new()
        .route("/notes", post(create))
        .route("/notes/{id}", get(read))
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::SERVER,
            HeaderValue::from_static("asyncio-rs"),
        ))
        .with_state(AppState::default())
}

#[test]
fn an_axum_router_serves_json_path_parameters_state_and_a_tower_http_layer() {
    asyncio::run(asyncio::timeout(Duration::from_secs(30), async {
        let server = Http::new(TowerToHyperService::new(app()))
            .start_server("127.0.0.1", 0)
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", server.local_addr().unwrap().port());
        let mut client = Connector::new()
            .handshake(&base.parse().unwrap())
            .await
            .unwrap();

        let req = hyper::Request::post(format!("{base}/notes"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(r#"{"text":"buy milk"}"#)))
            .unwrap();
        let res = client.send_request(req).await.unwrap();
        assert_eq!(res.status(), 201);
        assert_eq!(
            res.headers()["server"],
            "asyncio-rs",
            "the tower-http layer ran"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let note: Note = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            note,
            Note {
                id: 1,
                text: "buy milk".into()
            }
        );

        let res = client
            .send_request(
                hyper::Request::get(format!("{base}/notes/1"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            serde_json::from_slice::<Note>(&body).unwrap().text,
            "buy milk"
        );

        let res = client
            .send_request(
                hyper::Request::get(format!("{base}/notes/7"))
                    .body(Full::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            404,
            "the state is shared: note 7 does not exist"
        );

        let res = client
            .send_request(
                hyper::Request::post(format!("{base}/notes"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from("not json")))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "axum's JSON rejection");
        drop(client);
        let report = server.shutdown(Duration::from_secs(5)).await;
        assert_eq!(report.cancelled, 0);
    }))
    .unwrap()
    .unwrap();
}
