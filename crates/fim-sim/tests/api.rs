//! The simulator's Qualys FIM API over real HTTP: auth, response shapes
//! against the recorded fixtures, filters, counts and late events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Client, PROCESSED_SORT, fixture, iso, quiet_config, start, v1_ids, v2_ids};
use fim_sim::{FaultUpdate, SimConfig, Stream, parse_time_ms};
use serde_json::{Value, json};

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

// ---- auth ----

#[tokio::test]
async fn auth_returns_jwt_with_exp_claim() {
    let sim = start(quiet_config()).await;
    let http = reqwest::Client::new();
    let token = common::fetch_token(&http, &sim.base_url()).await;

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a JWT: {token}");
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 4 * 3600);
}

#[tokio::test]
async fn auth_rejects_wrong_password() {
    let sim = start(quiet_config()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/auth", sim.base_url()))
        .form(&[
            ("username", common::USERNAME),
            ("password", "wrong"),
            ("token", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn api_rejects_missing_token() {
    let sim = start(quiet_config()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/fim/v2/events/search", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "401");
}

#[tokio::test]
async fn token_stops_working_after_ttl() {
    let sim = start(SimConfig {
        token_ttl: Duration::from_secs(1),
        ..quiet_config()
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

    // The token's exp is one second after issue; wait past it.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn expire_tokens_fault_ends_current_tokens() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    sim.update(&FaultUpdate {
        expire_tokens: Some(true),
        ..FaultUpdate::default()
    })
    .unwrap();
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        401
    );

    let fresh = Client::login(&sim).await;
    assert_eq!(
        fresh.post("/fim/v2/events/count", json!({})).await.status(),
        200
    );
}

// ---- response shapes against the fixtures ----

#[tokio::test]
async fn v2_event_search_matches_fixture_shape() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "sort": PROCESSED_SORT, "pageSize": 50 }),
        )
        .await;
    let expected = fixture("v2/events_search.json");
    let expected_item = &expected[0];

    for item in page.as_array().unwrap() {
        assert_eq!(keys(item), keys(expected_item));
        assert_eq!(item["sortValues"].as_array().unwrap().len(), 2);
        let data = &item["data"];
        // Every field of the fixture's first event is present; hashes appear
        // only on some records, as in the fixture.
        let missing: Vec<_> = keys(&expected_item["data"])
            .difference(&keys(data))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "missing {missing:?}");
        assert_eq!(keys(&data["asset"]), keys(&expected_item["data"]["asset"]));
        assert_eq!(keys(&data["actor"]), keys(&expected_item["data"]["actor"]));
    }
}

#[tokio::test]
async fn v2_sort_values_are_processed_ms_and_id() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "sort": PROCESSED_SORT, "pageSize": 20 }),
        )
        .await;
    for item in page.as_array().unwrap() {
        let processed = parse_time_ms(item["data"]["processedTime"].as_str().unwrap()).unwrap();
        assert_eq!(item["sortValues"][0].as_i64().unwrap(), processed);
        assert_eq!(item["sortValues"][1], item["data"]["id"]);
    }
}

#[tokio::test]
async fn v1_events_are_a_bare_array() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let page = client
        .get_json("/fim/v1/events", &[("pageSize", "5")])
        .await;
    let expected = fixture("v1/events.json");
    let items = page.as_array().unwrap();
    assert_eq!(items.len(), 5);
    for item in items {
        let missing: Vec<_> = keys(&expected[0])
            .difference(&keys(item))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "missing {missing:?}");
    }
}

#[tokio::test]
async fn single_event_by_id_matches_fixture_shape() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let id = sim.visible_ids(Stream::Events)[0].clone();
    for path in [
        format!("/fim/v1/events/{id}"),
        format!("/fim/v2/events/{id}"),
    ] {
        let event = client.get_json(&path, &[]).await;
        assert_eq!(event["id"], Value::String(id.clone()));
        assert!(
            keys(&fixture("v1/event.json"))
                .difference(&keys(&event))
                .all(|key| key == "incidentId")
        );
    }
}

#[tokio::test]
async fn unknown_event_id_is_404() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .get("/fim/v1/events/00000000-0000-0000-0000-000000000000", &[])
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn ignored_events_carry_ignore_date() {
    let sim = start(SimConfig {
        ignored_share: 0.2,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let expected = fixture("v2/ignored_events_search.json");
    let page = client
        .post_json(
            "/fim/v2/events/ignore/search",
            json!({ "sort": PROCESSED_SORT, "pageSize": 10 }),
        )
        .await;
    let items = page.as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(keys(item), keys(&expected[0]));
        let date = item["data"]["ignoreDate"].as_str().unwrap();
        assert_eq!(date.len(), 10, "{date}");
    }

    let v1 = client
        .get_json("/fim/v1/events/ignore", &[("pageSize", "3")])
        .await;
    assert_eq!(v1.as_array().unwrap().len(), 3);
    let id = v1_ids(&v1)[0].clone();
    let one = client
        .get_json(&format!("/fim/v1/events/ignore/{id}"), &[])
        .await;
    assert_eq!(one["id"], Value::String(id));
}

#[tokio::test]
async fn incidents_match_fixture_shape() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let expected = fixture("v3/incidents_search.json");
    let page = client
        .post_json(
            "/fim/v3/incidents/search",
            json!({ "sort": r#"[{"createdBy.date":"asc"}]"#, "pageSize": 100 }),
        )
        .await;
    let items = page.as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(keys(item), keys(&expected[0]));
        assert_eq!(keys(&item["data"]), keys(&expected[0]["data"]));
        assert_eq!(
            item["sortValues"][0].as_i64().unwrap(),
            item["data"]["createdBy"]["date"].as_i64().unwrap()
        );
    }

    let v1 = client
        .get_json("/fim/v1/incidents", &[("pageSize", "2")])
        .await;
    assert_eq!(keys(&v1[0]), keys(&fixture("v1/incidents.json")[0]));
}

#[tokio::test]
async fn incident_events_belong_to_their_incident() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let incidents = client
        .post_json("/fim/v3/incidents/search", json!({ "pageSize": 5 }))
        .await;
    let incident_id = incidents[0]["data"]["id"].as_str().unwrap().to_owned();

    let path = format!("/fim/v2/incidents/{incident_id}/events/search");
    let page = client
        .post_json(&path, json!({ "sort": PROCESSED_SORT, "pageSize": 50 }))
        .await;
    let expected = fixture("v2/incident_events_search.json");
    let items = page.as_array().unwrap();
    assert!(!items.is_empty());
    for item in items {
        assert_eq!(keys(item), keys(&expected[0]));
        assert_eq!(
            item["data"]["incidentId"],
            Value::String(incident_id.clone())
        );
    }

    let v1 = client
        .get_json(
            &format!("/fim/v1/incidents/{incident_id}/events"),
            &[("pageSize", "50"), ("sort", PROCESSED_SORT)],
        )
        .await;
    assert_eq!(v1_ids(&v1), v2_ids(&page));

    let count = client
        .post_json(
            &format!("/fim/v2/incidents/{incident_id}/events/count"),
            json!({}),
        )
        .await;
    assert_eq!(count["count"].as_u64().unwrap() as usize, items.len());
    let count_v1 = client
        .get_json(
            &format!("/fim/v1/incidents/{incident_id}/events/count"),
            &[],
        )
        .await;
    assert_eq!(count_v1, count);
}

#[tokio::test]
async fn unknown_incident_is_404() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .post("/fim/v2/incidents/not-an-incident/events/search", json!({}))
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn events_filter_by_incident_ids() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let incidents = client
        .post_json("/fim/v3/incidents/search", json!({ "pageSize": 1 }))
        .await;
    let incident_id = incidents[0]["data"]["id"].as_str().unwrap().to_owned();
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "incidentIds": [incident_id], "pageSize": 100 }),
        )
        .await;
    let items = page.as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|item| item["data"]["incidentId"] == Value::String(incident_id.clone()))
    );
}

#[tokio::test]
async fn incident_attributes_limit_fields() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let page = client
        .get_json(
            "/fim/v1/incidents",
            &[("attributes", "status,createdBy"), ("pageSize", "3")],
        )
        .await;
    for item in page.as_array().unwrap() {
        let names: Vec<String> = keys(item).into_iter().collect();
        assert_eq!(names, vec!["createdBy", "id", "status"]);
    }
}

// ---- counts ----

#[tokio::test]
async fn plain_count_matches_fixture_shape() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    for (path, fixture_path) in [
        ("/fim/v1/events/count", "v1/events_count.json"),
        (
            "/fim/v1/events/ignore/count",
            "v1/ignored_events_count.json",
        ),
        ("/fim/v1/incidents/count", "v1/incidents_count.json"),
    ] {
        let count = client.get_json(path, &[]).await;
        assert_eq!(keys(&count), keys(&fixture(fixture_path)), "{path}");
    }
}

#[tokio::test]
async fn count_equals_search_results_for_same_filter() {
    let sim = start(SimConfig {
        backlog: 3_000,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let filters = [
        None,
        Some("action: Create"),
        Some("severity >= 4 and platform: 'LINUX'"),
        Some("not action: Delete and (type: File or type: 'Registry Value')"),
        Some("asset.interfaces.address: '10.20.30.12'"),
    ];
    for filter in filters {
        let ids = common::collect_v2(&client, "/fim/v2/events/search", filter, 1_000).await;
        let mut body = json!({});
        if let Some(filter) = filter {
            body["filter"] = Value::from(filter);
        }
        let count = client.post_json("/fim/v2/events/count", body).await;
        assert_eq!(
            count["count"].as_u64().unwrap() as usize,
            ids.len(),
            "filter {filter:?}"
        );
    }
}

#[tokio::test]
async fn group_by_action_sums_to_total() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let total = client.post_json("/fim/v2/events/count", json!({})).await["count"]
        .as_u64()
        .unwrap();
    let groups = client
        .post_json("/fim/v2/events/count", json!({ "groupBy": "action" }))
        .await;
    let expected_keys = keys(&fixture("v1/events_count_by_action.json"));
    assert_eq!(keys(&groups), expected_keys);
    let sum: u64 = groups
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(sum, total);
}

#[tokio::test]
async fn group_by_limit_keeps_largest_groups() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let groups = client
        .get_json(
            "/fim/v1/events/count",
            &[("groupBy", "action"), ("limit", "2")],
        )
        .await;
    assert_eq!(groups.as_object().unwrap().len(), 2);
    let all = client
        .get_json("/fim/v1/events/count", &[("groupBy", "action")])
        .await;
    let mut largest: Vec<(u64, String)> = all
        .as_object()
        .unwrap()
        .iter()
        .map(|(action, count)| (count.as_u64().unwrap(), action.clone()))
        .collect();
    largest.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let top_two: BTreeSet<String> = largest
        .into_iter()
        .take(2)
        .map(|(_, action)| action)
        .collect();
    assert_eq!(keys(&groups), top_two);
}

#[tokio::test]
async fn group_by_date_with_interval_buckets_by_hour() {
    let sim = start(SimConfig {
        backlog_span: Duration::from_secs(6 * 3600),
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let groups = client
        .post_json(
            "/fim/v2/events/count",
            json!({ "groupBy": "processedTime", "interval": "1h" }),
        )
        .await;
    let buckets = groups.as_object().unwrap();
    assert!(buckets.len() >= 6, "{} buckets", buckets.len());
    assert!(buckets.len() <= 7, "{} buckets", buckets.len());
    for key in buckets.keys() {
        assert!(
            key.ends_with(":00:00.000Z"),
            "bucket {key} does not start on the hour"
        );
    }
    let total = client.post_json("/fim/v2/events/count", json!({})).await["count"]
        .as_u64()
        .unwrap();
    let sum: u64 = buckets.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(sum, total);
}

#[tokio::test]
async fn interval_without_date_group_is_400() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .post(
            "/fim/v2/events/count",
            json!({ "groupBy": "action", "interval": "1d" }),
        )
        .await;
    assert_eq!(response.status(), 400);
}

// ---- filters ----

type Predicate = Box<dyn Fn(&Value) -> bool>;

#[tokio::test]
async fn valid_filters_select_matching_records() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let cases: Vec<(&str, Predicate)> = vec![
        ("action: 'Create'", Box::new(|e| e["action"] == "Create")),
        ("platform: LINUX", Box::new(|e| e["platform"] == "LINUX")),
        (
            "severity: 5",
            Box::new(|e| e["severity"] == 5 || e["severity"] == "5"),
        ),
        (
            "severity > 3",
            Box::new(|e| {
                e["severity"]
                    .as_i64()
                    .or_else(|| e["severity"].as_str()?.parse().ok())
                    .unwrap()
                    > 3
            }),
        ),
        (
            "severity <= 2 and platform: WINDOWS",
            Box::new(|e| {
                e["platform"] == "WINDOWS"
                    && e["severity"]
                        .as_i64()
                        .or_else(|| e["severity"].as_str()?.parse().ok())
                        .unwrap()
                        <= 2
            }),
        ),
        (
            "(action: Create or action: Delete) and not type: Directory",
            Box::new(|e| {
                (e["action"] == "Create" || e["action"] == "Delete") && e["type"] != "Directory"
            }),
        ),
        (
            "action: [Rename, Security]",
            Box::new(|e| e["action"] == "Rename" || e["action"] == "Security"),
        ),
        ("class: Registry", Box::new(|e| e["class"] == "Registry")),
    ];
    for (filter, predicate) in cases {
        let page = client
            .post_json(
                "/fim/v2/events/search",
                json!({ "filter": filter, "pageSize": 1_000 }),
            )
            .await;
        let items = page.as_array().unwrap();
        assert!(!items.is_empty(), "{filter} matched nothing");
        for item in items {
            assert!(
                predicate(&item["data"]),
                "{filter} matched {}",
                item["data"]
            );
        }
    }
}

#[tokio::test]
async fn date_range_filter_is_inclusive() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let first = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "sort": PROCESSED_SORT, "pageSize": 1 }),
        )
        .await;
    let processed = first[0]["data"]["processedTime"].as_str().unwrap();
    let ms = parse_time_ms(processed).unwrap();
    let filter = format!("processedTime: ['{}'..'{}']", iso(ms), iso(ms));
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "filter": filter, "pageSize": 100 }),
        )
        .await;
    assert!(v2_ids(&page).contains(&first[0]["data"]["id"].as_str().unwrap().to_owned()));
}

#[tokio::test]
async fn invalid_filters_get_400_naming_the_problem() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let cases = [
        ("colour: red", "unknown field 'colour'"),
        (r"fullPath: 'C:\temp\'", "not closed"),
        (
            "dateTime: ['yesterday'..'today']",
            "invalid date 'yesterday'",
        ),
        ("dateTime > '2016-06-01T00:00:00.000Z'", "2017-01-01"),
        ("action: Create and", "ends"),
        ("(action: Create", "')'"),
        ("severity > high", "number or a date"),
        ("action Create", "expected ':'"),
    ];
    for (filter, expected) in cases {
        for version in ["v1", "v2"] {
            let response = if version == "v1" {
                client.get("/fim/v1/events", &[("filter", filter)]).await
            } else {
                client
                    .post("/fim/v2/events/search", json!({ "filter": filter }))
                    .await
            };
            assert_eq!(response.status(), 400, "{version} {filter}");
            let body: Value = response.json().await.unwrap();
            let message = body["message"].as_str().unwrap();
            assert!(message.contains(expected), "{version} {filter}: {message}");
            assert!(message.contains("Invalid filter"), "{message}");
        }
    }
}

#[tokio::test]
async fn invalid_sort_is_400() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    for sort in [
        "processedTime asc",
        r#"[{"processedTime":"up"}]"#,
        r#"[{"colour":"asc"}]"#,
    ] {
        let response = client
            .post("/fim/v2/events/search", json!({ "sort": sort }))
            .await;
        assert_eq!(response.status(), 400, "{sort}");
    }
}

// ---- late events ----

#[tokio::test]
async fn late_events_found_by_processed_window() {
    let sim = start(SimConfig {
        backlog: 0,
        rate: 200.0,
        late_share: 1.0,
        late_max: Duration::from_secs(2 * 3600),
        ignored_share: 0.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let poll_started = fim_sim_now();
    // Let the arrival task add a few batches.
    let mut ids = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        ids = sim.visible_ids(Stream::Events);
        if ids.len() >= 20 {
            break;
        }
    }
    assert!(ids.len() >= 20, "only {} events arrived", ids.len());

    // Events that happened before the poll started are missed by a dateTime
    // window that closed then, but found by the processedTime window.
    let closed_date_window = format!(
        "dateTime: ['{}'..'{}']",
        iso(poll_started - 3 * 3_600_000),
        iso(poll_started - 60_000)
    );
    let processed_window = format!(
        "processedTime: ['{}'..'{}']",
        iso(poll_started),
        iso(fim_sim_now())
    );
    let late = common::collect_v2(
        &client,
        "/fim/v2/events/search",
        Some(&processed_window),
        1_000,
    )
    .await;
    assert!(late.len() >= 20);
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "filter": format!("{closed_date_window} and {processed_window}"), "pageSize": 1_000 }),
        )
        .await;
    // Every one of them has a dateTime inside the window that had already
    // passed when they became visible.
    assert_eq!(v2_ids(&page).len(), late.len());
}

fn fim_sim_now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

// ---- edge-case records ----

#[tokio::test]
async fn tricky_share_adds_edge_records() {
    let sim = start(SimConfig {
        backlog: 60,
        tricky_share: 1.0,
        ignored_share: 0.0,
        incident_every: 0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let fixture_ids: BTreeSet<String> = fixture("edge/tricky_events.json")
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "sort": PROCESSED_SORT, "pageSize": 100 }),
        )
        .await;
    let items = page.as_array().unwrap();
    assert_eq!(items.len(), 60);
    let ids: BTreeSet<String> = v2_ids(&page).into_iter().collect();
    assert_eq!(ids.len(), 60, "ids repeat");
    assert!(ids.is_disjoint(&fixture_ids));
    for item in items {
        assert!(
            item["data"].get("_case").is_some(),
            "{}",
            item["data"]["id"]
        );
    }
}

// ---- retention ----

#[tokio::test]
async fn records_older_than_15_months_are_not_served() {
    let sim = start(SimConfig {
        backlog: 1_000,
        late_share: 1.0,
        // Up to about 20 months late: part of the backlog happened before
        // the retention limit.
        late_max: Duration::from_secs(600 * 86_400),
        ignored_share: 0.0,
        ..quiet_config()
    })
    .await;
    let client = Client::login(&sim).await;
    let visible = sim.visible_ids(Stream::Events);
    assert!(visible.len() < 1_000, "nothing was past retention");
    assert!(visible.len() > 500, "too much was past retention");

    let served = common::collect_v2(&client, "/fim/v2/events/search", None, 1_000).await;
    assert_eq!(served.len(), visible.len());
    let count = client.post_json("/fim/v2/events/count", json!({})).await;
    assert_eq!(count["count"].as_u64().unwrap() as usize, visible.len());

    let cutoff = chrono::Utc::now() - chrono::Months::new(15);
    for item in client
        .post_json("/fim/v2/events/search", json!({ "pageSize": 1_000 }))
        .await
        .as_array()
        .unwrap()
    {
        let happened = parse_time_ms(item["data"]["dateTime"].as_str().unwrap()).unwrap();
        assert!(happened >= cutoff.timestamp_millis());
    }
}

// ---- hostile requests ----

#[tokio::test]
async fn deeply_nested_filter_is_400_and_server_lives() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let filter = "(".repeat(3_000);
    let response = client
        .post("/fim/v2/events/count", json!({ "filter": filter }))
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("deeper than"),
        "{body}"
    );
    assert_eq!(
        client
            .post("/fim/v2/events/count", json!({}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn too_many_group_by_fields_is_400() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let group_by = vec!["action"; 30_000].join(",");
    let response = client
        .post("/fim/v2/events/count", json!({ "groupBy": group_by }))
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn group_by_counts_every_value_of_a_list_field() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let page = client
        .post_json(
            "/fim/v2/events/search",
            json!({ "filter": "platform: WINDOWS", "pageSize": 1 }),
        )
        .await;
    let interfaces = page[0]["data"]["asset"]["interfaces"]
        .as_array()
        .unwrap()
        .clone();
    assert!(interfaces.len() >= 2, "a Windows asset has two interfaces");
    let address = interfaces[1]["address"].as_str().unwrap().to_owned();

    let filter = format!("asset.interfaces.address: '{address}'");
    let count = client
        .post_json("/fim/v2/events/count", json!({ "filter": filter }))
        .await["count"]
        .as_u64()
        .unwrap();
    let groups = client
        .post_json(
            "/fim/v2/events/count",
            json!({ "filter": filter, "groupBy": "asset.interfaces.address" }),
        )
        .await;
    assert_eq!(groups[&address].as_u64(), Some(count), "{groups}");
}

#[tokio::test]
async fn lowercase_bearer_scheme_is_accepted() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client
        .http
        .post(format!("{}/fim/v2/events/count", client.base))
        .header("Authorization", format!("bearer {}", client.token))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn endless_rate_is_rejected() {
    let sim = start(quiet_config()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/__sim/faults", sim.base_url()))
        .json(&json!({ "rate": 1e308 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(sim.config().rate, 0.0);
}

#[tokio::test]
async fn settings_hide_password_and_show_bound_port() {
    let sim = start(quiet_config()).await;
    let settings: Value = reqwest::get(format!("{}/__sim/faults", sim.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["password"], "<redacted>");
    assert_eq!(settings["listen"], sim.addr().to_string());
}

#[tokio::test]
async fn wrong_method_gets_json_405() {
    let sim = start(quiet_config()).await;
    let client = Client::login(&sim).await;
    let response = client.get("/fim/v2/events/search", &[]).await;
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errorCode"], "405");
}
