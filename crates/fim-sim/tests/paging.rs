//! Paging over real HTTP: `pageNumber` inside the 10,000-row window and
//! `searchAfter` across large result sets, with nothing missed or repeated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{Client, PROCESSED_SORT, collect_v2, quiet_config, start, v1_ids};
use fim_sim::{PAGING_WINDOW, SimConfig, Stream};
use serde_json::{Value, json};

fn assert_same_ids(collected: &[String], expected: &[String]) {
    let unique: HashSet<&String> = collected.iter().collect();
    assert_eq!(unique.len(), collected.len(), "a record was returned twice");
    let expected: HashSet<&String> = expected.iter().collect();
    assert_eq!(unique.len(), expected.len(), "record count differs");
    assert_eq!(unique, expected, "different records");
}

#[tokio::test]
async fn page_number_reaches_the_window_and_stops_there() {
    let sim = start(SimConfig {
        backlog: 12_000,
        ignored_share: 0.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;

    let mut ids = Vec::new();
    let page_size = 1_000;
    for page in 0..PAGING_WINDOW / page_size {
        let page_number = page.to_string();
        let items = client
            .get_json(
                "/fim/v1/events",
                &[
                    ("pageNumber", page_number.as_str()),
                    ("pageSize", "1000"),
                    ("sort", PROCESSED_SORT),
                ],
            )
            .await;
        assert_eq!(items.as_array().unwrap().len(), page_size, "page {page}");
        ids.extend(v1_ids(&items));
    }
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), PAGING_WINDOW);

    // The first 10,000 rows in processedTime order are exactly these.
    let all = collect_v2(&client, "/fim/v2/events/search", None, 1_000).await;
    assert_eq!(ids, all[..PAGING_WINDOW].to_vec());

    let past = client
        .get(
            "/fim/v1/events",
            &[
                ("pageNumber", "10"),
                ("pageSize", "1000"),
                ("sort", PROCESSED_SORT),
            ],
        )
        .await;
    assert_eq!(past.status(), 400);
    let body: Value = past.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("10000"), "{message}");
}

#[tokio::test]
async fn page_straddling_the_window_is_rejected() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .post(
            "/fim/v2/events/search",
            json!({ "pageNumber": 3, "pageSize": 3000 }),
        )
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn search_after_covers_25000_events_exactly_once() {
    let sim = start(SimConfig {
        backlog: 25_000,
        ignored_share: 0.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let collected = collect_v2(&client, "/fim/v2/events/search", None, 1_000).await;
    assert_same_ids(&collected, &sim.visible_ids(Stream::Events));
}

#[tokio::test]
async fn search_after_with_tiny_pages_keeps_ties() {
    // Pages of 7 end inside runs of events that share one millisecond; the
    // id in sortValues must carry the next page past exactly those seen.
    let sim = start(SimConfig {
        backlog: 2_000,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let collected = collect_v2(&client, "/fim/v2/events/search", None, 7).await;
    assert_same_ids(&collected, &sim.visible_ids(Stream::Events));
}

#[tokio::test]
async fn search_after_on_time_alone_skips_ties() {
    // As on the real API: sortValues hold only the sort keys, so paging on
    // processedTime alone skips the rest of a millisecond shared by the
    // last record of a page. Clients must add the id as a tie-breaker.
    let sim = start(SimConfig {
        backlog: 2_000,
        ignored_share: 0.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let mut collected = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({ "sort": r#"[{"processedTime":"asc"}]"#, "pageSize": 7 });
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let page = client.post_json("/fim/v2/events/search", body).await;
        let items = page.as_array().unwrap();
        if items.is_empty() {
            break;
        }
        assert_eq!(
            items.last().unwrap()["sortValues"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        after = Some(items.last().unwrap()["sortValues"].clone());
        collected.extend(common::v2_ids(&page));
    }
    assert!(collected.len() < sim.visible_ids(Stream::Events).len());
}

#[tokio::test]
async fn search_after_descending_covers_everything() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let sort = r#"[{"dateTime":"desc"},{"id":"asc"}]"#;
    let collected = common::collect_sorted(&client, "/fim/v2/events/search", sort, 33).await;
    assert_same_ids(&collected, &sim.visible_ids(Stream::Events));
}

#[tokio::test]
async fn search_after_mistakes_are_400() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let cases = [
        json!({ "searchAfter": [1, "a"] }),
        json!({ "sort": PROCESSED_SORT, "searchAfter": [1] }),
        json!({ "sort": PROCESSED_SORT, "searchAfter": [1, "a"], "pageNumber": 2 }),
        json!({ "sort": PROCESSED_SORT, "searchAfter": "1,a" }),
        json!({ "pageSize": 0 }),
        json!({ "pageSize": "many" }),
    ];
    for body in cases {
        let response = client.post("/fim/v2/events/search", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
    }
}

#[tokio::test]
async fn incidents_page_with_search_after() {
    let sim = start(SimConfig {
        backlog: 5_000,
        incident_every: 10,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let sort = r#"[{"createdBy.date":"asc"},{"id":"asc"}]"#;
    let collected = common::collect_sorted(&client, "/fim/v3/incidents/search", sort, 50).await;
    assert_same_ids(&collected, &sim.visible_ids(Stream::Incidents));
}
