//! Helpers shared by the simulator's HTTP tests: start a simulator on a free
//! loopback port and talk to it with reqwest like any client would.

#![allow(dead_code)]

use std::path::PathBuf;

use fim_sim::{RateLimit, SimConfig, SimHandle, Simulator};
use serde_json::Value;

pub const USERNAME: &str = "tester";
pub const PASSWORD: &str = "s3cret-pass";

/// Settings for tests: a fixed seed, no arrivals, no limits, no faults.
pub fn quiet_config() -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        username: USERNAME.to_owned(),
        password: PASSWORD.to_owned(),
        seed: 42,
        backlog: 500,
        rate: 0.0,
        rate_limit: RateLimit::NONE,
        concurrency_limit: 0,
        ..SimConfig::default()
    }
}

pub async fn start(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

/// A connected client holding a token.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Client {
    pub async fn login(sim: &SimHandle) -> Self {
        let http = reqwest::Client::new();
        let base = sim.base_url();
        let token = fetch_token(&http, &base).await;
        Self { http, base, token }
    }

    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .expect("GET sent")
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("POST sent")
    }

    /// POSTs and parses a 200 JSON response.
    pub async fn post_json(&self, path: &str, body: Value) -> Value {
        let response = self.post(path, body).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// GETs and parses a 200 JSON response.
    pub async fn get_json(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let response = self.get(path, query).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

pub async fn fetch_token(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/auth"))
        .form(&[
            ("username", USERNAME),
            ("password", PASSWORD),
            ("token", "true"),
        ])
        .send()
        .await
        .expect("auth sent");
    assert!(
        response.status().is_success(),
        "auth failed: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// Sort used by incremental clients.
pub const PROCESSED_SORT: &str = r#"[{"processedTime":"asc"},{"id":"asc"}]"#;

pub fn fixture(path: &str) -> Value {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/qualys-fim")
        .join(path);
    let text =
        std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
    serde_json::from_str(&text).unwrap()
}

/// Ids of a v2 response (`[{"sortValues", "data"}]`).
pub fn v2_ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|item| item["data"]["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Ids of a v1 response (bare array).
pub fn v1_ids(page: &Value) -> Vec<String> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Pages through a v2 search sorted by `sort` with searchAfter until an
/// empty page.
pub async fn collect_sorted(
    client: &Client,
    path: &str,
    sort: &str,
    page_size: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = serde_json::json!({ "sort": sort, "pageSize": page_size });
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let page = client.post_json(path, body).await;
        let items = page.as_array().unwrap();
        if items.is_empty() {
            return ids;
        }
        after = Some(items.last().unwrap()["sortValues"].clone());
        ids.extend(v2_ids(&page));
    }
}

/// Pages through a v2 search with searchAfter until an empty page.
pub async fn collect_v2(
    client: &Client,
    path: &str,
    filter: Option<&str>,
    page_size: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = serde_json::json!({ "sort": PROCESSED_SORT, "pageSize": page_size });
        if let Some(filter) = filter {
            body["filter"] = Value::from(filter);
        }
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let page = client.post_json(path, body).await;
        let items = page.as_array().unwrap();
        if items.is_empty() {
            return ids;
        }
        after = Some(items.last().unwrap()["sortValues"].clone());
        ids.extend(v2_ids(&page));
    }
}

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
