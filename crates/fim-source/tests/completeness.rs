//! Every record exactly once: large backlogs with late events and shared
//! milliseconds, live arrivals, every page size, on v1 and v2.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{
    assert_exactly_once, count_calls, run_source, search_calls, sim_config, source_config,
    start_sim, stream_of, temp_store,
};
use fim_model::{ApiVersion, RecordKind};
use fim_sim::{FaultUpdate, SimConfig};

async fn collect_backlog(version: ApiVersion, backlog: usize, page_size: usize) {
    let sim = start_sim(SimConfig {
        late_share: 0.2,
        late_max: Duration::from_secs(2 * 3600),
        backlog_span: Duration::from_secs(6 * 3600),
        ignored_share: 0.0,
        incident_every: 0,
        ..sim_config(backlog)
    })
    .await;
    let expected = sim.visible_ids(fim_sim::Stream::Events);
    let mut config = source_config(&sim, version, &[RecordKind::Event]);
    config.page_size = page_size;
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(240))
        .await;
    // One more poll finds nothing new.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(
        RecordKind::Event,
        &running.snapshot_ids(RecordKind::Event),
        &expected,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_collects_50000_events_exactly_once() {
    collect_backlog(ApiVersion::V2, 50_000, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_collects_50000_events_exactly_once() {
    collect_backlog(ApiVersion::V1, 50_000, 1_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_odd_page_size_keeps_ties() {
    collect_backlog(ApiVersion::V2, 50_000, 997).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_odd_page_size_keeps_ties() {
    collect_backlog(ApiVersion::V1, 20_000, 333).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_pages_of_two() {
    collect_backlog(ApiVersion::V2, 50_000, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_pages_of_two() {
    collect_backlog(ApiVersion::V1, 50_000, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_splits_windows_over_10000_rows() {
    let sim = start_sim(SimConfig {
        ignored_share: 0.0,
        incident_every: 0,
        ..sim_config(25_000)
    })
    .await;
    let expected = sim.visible_ids(fim_sim::Stream::Events);
    let mut config = source_config(&sim, ApiVersion::V1, &[RecordKind::Event]);
    config.page_size = 1_000;
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(120))
        .await;
    assert_exactly_once(
        RecordKind::Event,
        &running.snapshot_ids(RecordKind::Event),
        &expected,
    );

    let log = sim.request_log();
    let rejected = log.iter().filter(|entry| entry.status == 400).count();
    assert_eq!(
        rejected, 0,
        "a page past the 10,000-row window was requested"
    );
    assert!(
        count_calls(&log).len() >= 3,
        "the 25,000-row window was not split"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_arrivals_with_late_events_exactly_once() {
    for version in [ApiVersion::V2, ApiVersion::V1] {
        let sim = start_sim(SimConfig {
            rate: 400.0,
            late_share: 0.2,
            late_max: Duration::from_secs(2 * 3600),
            index_lag: Duration::from_millis(300),
            ..sim_config(5_000)
        })
        .await;
        let streams = [RecordKind::Event, RecordKind::IgnoredEvent];
        let mut config = source_config(&sim, version, &streams);
        config.page_size = 250;
        config.lag = Duration::from_secs(1);
        let (_dir, store) = temp_store();
        let running = run_source(config, store, 4_096).await;

        tokio::time::sleep(Duration::from_secs(3)).await;
        sim.update(&FaultUpdate {
            rate: Some(0.0),
            ..FaultUpdate::default()
        })
        .unwrap();
        // Past the lag and the index lag, everything is visible and due.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        for kind in streams {
            let expected = sim.visible_ids(stream_of(kind));
            running
                .wait_for(kind, expected.len(), Duration::from_secs(60))
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_exactly_once(kind, &running.snapshot_ids(kind), &expected);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_search_calls_stay_within_one_extra_per_poll() {
    let sim = start_sim(SimConfig {
        ignored_share: 0.0,
        incident_every: 0,
        ..sim_config(2_345)
    })
    .await;
    let expected = sim.visible_ids(fim_sim::Stream::Events);
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 100;
    config.poll_interval = Duration::from_millis(250);
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(60))
        .await;

    let first_poll = search_calls(&sim.request_log()).len();
    // ceil(2345 / 100) + 1
    assert!(
        first_poll <= 25,
        "{first_poll} search calls for the backlog"
    );

    // Idle polls: one empty search each, and never a count call on v2.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let log = sim.request_log();
    let idle = search_calls(&log).len() - first_poll;
    assert!(idle <= 6, "{idle} search calls in about four idle polls");
    assert!(idle >= 2, "only {idle} idle polls");
    assert_eq!(count_calls(&log).len(), 0);
}
