//! Rate and concurrency limits, fault injection and the control routes,
//! over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Client, quiet_config, start};
use fim_sim::{BlockedStatus, RateLimit, RequestLogEntry, SimConfig};
use serde_json::{Value, json};

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
}

fn limited(calls: u32, seconds: u64) -> SimConfig {
    SimConfig {
        rate_limit: RateLimit {
            calls,
            window: Duration::from_secs(seconds),
        },
        ..quiet_config()
    }
}

async fn request_log(client: &Client) -> Vec<RequestLogEntry> {
    let text = client
        .http
        .get(format!("{}/__sim/requests", client.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn rate_limit_headers_count_down() {
    let sim = start(limited(3, 60)).await;
    let client = Client::login(&sim).await;
    for remaining in ["2", "1", "0"] {
        let response = client.post("/fim/v2/events/count", json!({})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-window-sec").as_deref(),
            Some("60")
        );
        assert_eq!(
            header(&response, "x-ratelimit-remaining").as_deref(),
            Some(remaining)
        );
    }
}

#[tokio::test]
async fn call_over_the_limit_gets_409_with_wait() {
    let sim = start(limited(3, 60)).await;
    let client = Client::login(&sim).await;
    for _ in 0..3 {
        assert_eq!(
            client
                .post("/fim/v2/events/count", json!({}))
                .await
                .status(),
            200
        );
    }
    let blocked = client.post("/fim/v2/events/count", json!({})).await;
    assert_eq!(blocked.status(), 409);
    assert_eq!(
        header(&blocked, "x-ratelimit-remaining").as_deref(),
        Some("0")
    );
    let wait: u64 = header(&blocked, "x-ratelimit-towait-sec")
        .unwrap()
        .parse()
        .unwrap();
    // The first call leaves the 60 s window less than 60 s from now.
    assert!((59..=60).contains(&wait), "wait {wait}");
    let body: Value = blocked.json().await.unwrap();
    assert_eq!(body["errorCode"], "409");

    let log = request_log(&client).await;
    let last = log.last().unwrap();
    assert_eq!(last.status, 409);
    assert_eq!(last.wait_sec, Some(wait));
}

#[tokio::test]
async fn waiting_the_given_time_lets_the_call_through() {
    let sim = start(limited(1, 1)).await;
    let client = Client::login(&sim).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
    let blocked = client.post("/fim/v2/events/count", json!({})).await;
    assert_eq!(blocked.status(), 409);
    let wait: u64 = header(&blocked, "x-ratelimit-towait-sec")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn blocked_call_can_be_429_with_retry_after() {
    let sim = start(SimConfig {
        blocked_status: BlockedStatus::TooManyRequests,
        ..limited(1, 30)
    })
    .await;
    let client = Client::login(&sim).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
    let blocked = client.post("/fim/v2/events/count", json!({})).await;
    assert_eq!(blocked.status(), 429);
    let retry_after: u64 = header(&blocked, "retry-after").unwrap().parse().unwrap();
    assert!(
        (29..=30).contains(&retry_after),
        "retry-after {retry_after}"
    );
}

#[tokio::test]
async fn blocked_calls_do_not_use_the_budget() {
    let sim = start(limited(2, 60)).await;
    let client = Client::login(&sim).await;
    for _ in 0..10 {
        client.post("/fim/v2/events/count", json!({})).await;
    }
    let admitted = request_log(&client)
        .await
        .iter()
        .filter(|entry| entry.path.starts_with("/fim/") && entry.status == 200)
        .count();
    assert_eq!(admitted, 2);
}

#[tokio::test]
async fn auth_is_exempt_from_the_rate_limit() {
    let sim = start(limited(1, 3600)).await;
    let client = Client::login(&sim).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        409
    );
    let token = common::fetch_token(&client.http, &client.base).await;
    assert!(!token.is_empty());
}

#[tokio::test]
async fn concurrency_cap_blocks_the_extra_call() {
    let sim = start(SimConfig {
        concurrency_limit: 1,
        latency: Duration::from_secs(2),
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let (first, second) = tokio::join!(client.post("/fim/v2/events/count", json!({})), async {
        // Sends once the first call is running inside its two-second latency.
        while sim.running_calls() == 0 {
            tokio::task::yield_now().await;
        }
        client.post("/fim/v2/events/count", json!({})).await
    });
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 409);
    assert_eq!(
        header(&second, "x-concurrency-limit-limit").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(&second, "x-concurrency-limit-running").as_deref(),
        Some("1")
    );
    assert_eq!(
        header(&first, "x-concurrency-limit-running").as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn fail_rate_answers_5xx() {
    let sim = start(SimConfig {
        fail_rate: 1.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    for _ in 0..10 {
        let status = client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status()
            .as_u16();
        assert!([500, 502, 503].contains(&status), "status {status}");
    }
    let log = request_log(&client).await;
    assert!(
        log.iter()
            .filter(|entry| entry.path.starts_with("/fim/"))
            .all(|entry| entry.fault.as_deref() == Some("error"))
    );
}

#[tokio::test]
async fn partial_fail_rate_fails_some_calls() {
    let sim = start(SimConfig {
        fail_rate: 0.5,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let mut failed = 0;
    for _ in 0..60 {
        if client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status()
            .is_server_error()
        {
            failed += 1;
        }
    }
    assert!((10..=50).contains(&failed), "{failed} of 60 failed");
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let sim = start(SimConfig {
        latency: Duration::from_millis(300),
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let started = Instant::now();
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn truncate_rate_cuts_the_json() {
    let sim = start(SimConfig {
        truncate_rate: 1.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let response = client
        .post("/fim/v2/events/search", json!({ "pageSize": 20 }))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.starts_with("[{"));
    assert!(
        serde_json::from_str::<Value>(&text).is_err(),
        "body still parses"
    );
}

#[tokio::test]
async fn spoils_apply_to_search_pages_in_order() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let settings = client
        .post(
            "/__sim/faults",
            json!({ "spoil-pages": ["not-json", "missing-id"] }),
        )
        .await;
    assert_eq!(settings.status(), 200);

    // A count is not a search page: the queue waits.
    let count = client.post_json("/fim/v2/events/count", json!({})).await;
    assert!(count["count"].as_u64().unwrap() > 0);

    let first = client
        .post("/fim/v2/events/search", json!({ "pageSize": 5 }))
        .await;
    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().starts_with("<html>"));

    let second = client
        .post_json("/fim/v2/events/search", json!({ "pageSize": 5 }))
        .await;
    let items = second.as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items[2]["data"].get("id").is_none());
    assert!(items[1]["data"].get("id").is_some());

    let third = client
        .post_json("/fim/v2/events/search", json!({ "pageSize": 5 }))
        .await;
    assert_eq!(common::v2_ids(&third).len(), 5, "the queue is empty again");

    let log = request_log(&client).await;
    let faults: Vec<&str> = log
        .iter()
        .filter_map(|entry| entry.fault.as_deref())
        .collect();
    assert_eq!(faults.len(), 2, "{faults:?}");
    assert_eq!(faults[0], "spoil:not-json");
    assert!(faults[1].starts_with("spoil:missing-id:"), "{faults:?}");
}

#[tokio::test]
async fn unknown_spoil_is_rejected() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .post("/__sim/faults", json!({ "spoil-pages": ["on-fire"] }))
        .await;
    assert_eq!(response.status(), 400);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("on-fire") && text.contains("missing-id"),
        "{text}"
    );
}

#[tokio::test]
async fn reset_rate_resets_the_connection() {
    let sim = start(SimConfig {
        reset_rate: 1.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let result = client
        .http
        .post(format!("{}/fim/v2/events/count", client.base))
        .bearer_auth(&client.token)
        .json(&json!({}))
        .send()
        .await;
    let err = result.expect_err("a reset connection gives no response");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    let log = request_log(&client).await;
    let last = log.last().unwrap();
    assert_eq!(last.status, 0);
    assert_eq!(last.fault.as_deref(), Some("reset"));
}

#[tokio::test]
async fn faults_change_at_runtime_over_http() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );

    let response = client
        .http
        .post(format!("{}/__sim/faults", client.base))
        .json(&json!({ "fail-rate": 1.0, "rate_limit": "100/60" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let settings: Value = response.json().await.unwrap();
    assert_eq!(settings["fail-rate"], 1.0);
    assert_eq!(settings["rate-limit"], "100/60");
    assert!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status()
            .is_server_error()
    );

    client
        .http
        .post(format!("{}/__sim/faults", client.base))
        .json(&json!({ "fail-rate": 0.0 }))
        .send()
        .await
        .unwrap();
    let response = client.post("/fim/v2/events/count", json!({})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "x-ratelimit-limit").as_deref(),
        Some("100")
    );
}

#[tokio::test]
async fn invalid_fault_update_is_400_and_changes_nothing() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    for body in [
        json!({ "fail-rate": 2.0 }),
        json!({ "fial-rate": 0.5 }),
        json!({ "blocked-status": 418 }),
    ] {
        let response = client
            .http
            .post(format!("{}/__sim/faults", client.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
    }
    assert_eq!(sim.config().fail_rate, 0.0);
}

#[tokio::test]
async fn request_log_records_every_call() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    client
        .post("/fim/v2/events/search", json!({ "pageSize": 5 }))
        .await;
    client.get("/fim/v1/events/count", &[]).await;
    let log = request_log(&client).await;
    let paths: Vec<(&str, &str, u16)> = log
        .iter()
        .map(|entry| (entry.method.as_str(), entry.path.as_str(), entry.status))
        .collect();
    assert_eq!(
        paths,
        vec![
            ("POST", "/auth", 201),
            ("POST", "/fim/v2/events/search", 200),
            ("GET", "/fim/v1/events/count", 200),
        ]
    );
    assert!(log[1].response_bytes > 1_000);
    assert!(log[1].request_bytes > 0);
}

#[tokio::test]
async fn ids_route_lists_visible_ids() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    for stream in ["events", "ignored_events", "incidents", "incident_events"] {
        let ids: Vec<String> = client
            .http
            .get(format!("{}/__sim/ids", client.base))
            .query(&[("stream", stream)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!ids.is_empty(), "{stream}");
    }
    let response = client
        .http
        .get(format!("{}/__sim/ids?stream=alerts", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn incident_status_changes_move_last_updated() {
    let sim = start(SimConfig {
        backlog: 0,
        rate: 200.0,
        incident_every: 5,
        incident_update_after: Duration::from_millis(300),
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let mut changed = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let page = client
            .post_json(
                "/fim/v3/incidents/search",
                json!({ "filter": "status: CLOSED", "pageSize": 10 }),
            )
            .await;
        if let Some(item) = page.as_array().unwrap().first() {
            changed = Some(item["data"].clone());
            break;
        }
    }
    let incident = changed.expect("an incident was reviewed");
    let created = incident["createdBy"]["date"].as_i64().unwrap();
    let updated = incident["lastUpdatedBy"]["date"].as_i64().unwrap();
    assert!(updated > created);
    assert!(incident["approvalStatus"] == "APPROVED" || incident["approvalStatus"] == "REJECTED");

    let filter = format!(
        "lastUpdatedBy.date: ['{}'..'{}']",
        common::iso(updated),
        common::iso(updated)
    );
    let page = client
        .post_json(
            "/fim/v3/incidents/search",
            json!({ "filter": filter, "pageSize": 100 }),
        )
        .await;
    assert!(common::v2_ids(&page).contains(&incident["id"].as_str().unwrap().to_owned()));
}
