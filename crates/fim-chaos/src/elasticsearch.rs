//! An in-process receiver of Elasticsearch `_bulk` requests. Elasticsearch
//! itself cannot run on the machines this project is tested on, so this
//! fake follows its documented reply: per item, in request order, `201`
//! for a `create` of a new `_id` and `409` with
//! `version_conflict_engine_exception` for an `_id` already stored. That
//! makes the sink idempotent the way the real index is: a resent record is
//! rejected, never stored twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Contents of the fake index.
#[derive(Debug, Default)]
pub struct BulkStore {
    /// Ids stored; a set, so each id is stored once.
    pub stored: HashSet<String>,
    /// `create` actions rejected with 409 because the `_id` was stored.
    pub conflicts: u64,
    /// Actions that were not a `create` with an `_id`; the forwarder in
    /// Elasticsearch mode sends none.
    pub malformed: u64,
}

pub type SharedStore = Arc<Mutex<BulkStore>>;

/// Serves `_bulk` on a free loopback port; returns the base URL.
pub async fn start(store: SharedStore) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/_bulk", axum::routing::post(bulk))
        .with_state(store);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("fim-chaos: the _bulk receiver stopped: {err}");
        }
    });
    Ok(format!("http://{address}"))
}

async fn bulk(State(store): State<SharedStore>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
    let mut items = Vec::new();
    // Each action line is followed by its document line.
    for action in text.lines().step_by(2) {
        let id = serde_json::from_str::<Value>(action)
            .ok()
            .and_then(|value| value["create"]["_id"].as_str().map(str::to_owned));
        let Some(id) = id else {
            store.malformed += 1;
            items.push(json!({"create": {"status": 400, "error": {"type": "action_request_validation_exception"}}}));
            continue;
        };
        if store.stored.insert(id.clone()) {
            items.push(json!({"create": {"_id": id, "status": 201}}));
        } else {
            store.conflicts += 1;
            items.push(json!({"create": {"_id": id, "status": 409, "error": {"type": "version_conflict_engine_exception"}}}));
        }
    }
    let errors = items.iter().any(|item| item["create"]["status"] != 201);
    (
        StatusCode::OK,
        axum::Json(json!({"took": 1, "errors": errors, "items": items})),
    )
        .into_response()
}
