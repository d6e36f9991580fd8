//! Simulator cost per page: generating 1,000 events and serving a
//! 1,000-event search page over HTTP, v2 (`searchAfter`) and v1
//! (`pageNumber`). The forwarder must spend longer processing a page than
//! the simulator spends producing it, or benchmarks measure the simulator.

// A benchmark harness, like a test: a failed setup step should stop it loudly.
#![allow(clippy::expect_used)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fim_sim::{RateLimit, SimConfig, SimHandle, Simulator};
use serde_json::{Value, json};

const PAGE: usize = 1_000;
const BACKLOG: usize = 50_000;
const SORT: &str = r#"[{"processedTime":"asc"},{"id":"asc"}]"#;

fn config(backlog: usize) -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().expect("loopback address"),
        backlog,
        rate: 0.0,
        rate_limit: RateLimit::NONE,
        concurrency_limit: 0,
        ..SimConfig::default()
    }
}

async fn token(http: &reqwest::Client, sim: &SimHandle) -> String {
    let config = sim.config();
    http.post(format!("{}/auth", sim.base_url()))
        .form(&[
            ("username", config.username.as_str()),
            ("password", config.password.as_str()),
            ("token", "true"),
        ])
        .send()
        .await
        .expect("auth response")
        .text()
        .await
        .expect("token text")
}

/// `searchAfter` positions spread over the backlog, so pages come from
/// everywhere in the store.
async fn positions(http: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let mut positions = Vec::new();
    let mut after: Option<Value> = None;
    loop {
        let mut body = json!({ "sort": SORT, "pageSize": PAGE });
        if let Some(after) = &after {
            body["searchAfter"] = after.clone();
        }
        let page: Value = http
            .post(format!("{url}/fim/v2/events/search"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("search response")
            .json()
            .await
            .expect("search JSON");
        let Some(last) = page.as_array().and_then(|items| items.last()) else {
            return positions;
        };
        after = Some(last["sortValues"].clone());
        if positions.len() < 40 {
            positions.push(last["sortValues"].clone());
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let mut generate = c.benchmark_group("sim_generate");
    generate.throughput(Throughput::Elements(PAGE as u64));
    generate.sample_size(20);
    generate.bench_function("backlog_1000_events", |b| {
        b.to_async(&runtime).iter(|| async {
            let sim = Simulator::start(config(PAGE))
                .await
                .expect("simulator starts");
            sim.shutdown().await;
        });
    });
    generate.finish();

    let sim = runtime
        .block_on(Simulator::start(config(BACKLOG)))
        .expect("simulator starts");
    let http = reqwest::Client::new();
    let url = sim.base_url();
    let token = runtime.block_on(token(&http, &sim));
    let positions = runtime.block_on(positions(&http, &url, &token));

    let mut serve = c.benchmark_group("sim_serve_page");
    serve.throughput(Throughput::Elements(PAGE as u64));
    serve.measurement_time(Duration::from_secs(8));

    let mut turn = 0;
    serve.bench_function("v2_search_after_1000", |b| {
        b.to_async(&runtime).iter(|| {
            turn += 1;
            let body = json!({
                "sort": SORT,
                "pageSize": PAGE,
                "searchAfter": positions[turn % positions.len()],
            });
            let request = http
                .post(format!("{url}/fim/v2/events/search"))
                .bearer_auth(&token)
                .json(&body);
            async move {
                let bytes = request
                    .send()
                    .await
                    .expect("response")
                    .bytes()
                    .await
                    .expect("body");
                assert!(bytes.len() > PAGE * 500);
            }
        });
    });

    let mut page = 0;
    serve.bench_function("v1_page_number_1000", |b| {
        b.to_async(&runtime).iter(|| {
            page = (page + 1) % 10;
            let request = http
                .get(format!("{url}/fim/v1/events"))
                .bearer_auth(&token)
                .query(&[
                    ("pageNumber", page.to_string()),
                    ("pageSize", PAGE.to_string()),
                    ("sort", SORT.to_owned()),
                ]);
            async move {
                let bytes = request
                    .send()
                    .await
                    .expect("response")
                    .bytes()
                    .await
                    .expect("body");
                assert!(bytes.len() > PAGE * 500);
            }
        });
    });
    serve.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
