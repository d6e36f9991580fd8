//! Restarts, rate limits, token expiry, incidents, invalid filters and
//! backpressure, each against the simulator over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::{
    PASSWORD, assert_exactly_once, run_source, search_calls, sim_config, source_config, start_sim,
    temp_store,
};
use fim_model::{ApiVersion, RecordKind};
use fim_sim::{BlockedStatus, FaultUpdate, RateLimit, SimConfig, Stream};
use fim_source::{CheckpointStore, FileCheckpointStore, Polled, SourceOptions, StreamStatus};
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_after_last_checkpoint() {
    for version in [ApiVersion::V2, ApiVersion::V1] {
        let sim = start_sim(SimConfig {
            late_share: 0.2,
            incident_every: 0,
            ignored_share: 0.0,
            ..sim_config(8_000)
        })
        .await;
        let expected = sim.visible_ids(Stream::Events);
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);

        let mut delivered: Vec<String> = Vec::new();
        let mut checkpointed: HashSet<String> = HashSet::new();
        for round in 0..=10 {
            let store: Arc<dyn CheckpointStore> =
                Arc::new(FileCheckpointStore::new(dir.path()).unwrap());
            let mut config = source_config(&sim, version, &[RecordKind::Event]);
            config.page_size = 137;
            let (sender, mut receiver) = mpsc::channel::<Polled>(64);
            let handle = fim_source::start(
                config,
                store,
                sender,
                SourceOptions {
                    checkpoint_interval: None,
                    ..SourceOptions::default()
                },
            )
            .await
            .unwrap();

            let last_round = round == 10;
            let save_after = rng.random_range(50..600);
            let crash_after = save_after + rng.random_range(0..200);
            let mut received = 0;
            loop {
                let polled = if last_round {
                    match tokio::time::timeout(Duration::from_secs(2), receiver.recv()).await {
                        Ok(Some(polled)) => polled,
                        _ => break,
                    }
                } else {
                    receiver.recv().await.unwrap()
                };
                let id = polled.record.id().to_owned();
                assert!(
                    !checkpointed.contains(&id),
                    "round {round}: {id} was re-sent although a checkpoint covered it"
                );
                delivered.push(id);
                polled.ack.ack();
                received += 1;
                if !last_round && received == save_after {
                    handle.save().unwrap();
                    checkpointed = delivered.iter().cloned().collect();
                }
                if !last_round && received >= crash_after {
                    break;
                }
            }
            // A crash: the source goes away without a final save.
            drop(handle);
        }

        let unique: HashSet<&String> = delivered.iter().collect();
        let expected_set: HashSet<&String> = expected.iter().collect();
        assert_eq!(
            unique, expected_set,
            "{version:?}: records lost or invented across restarts"
        );
    }
}

/// Collects a backlog while another client of the same subscription keeps
/// the single concurrency slot busy, so the poller meets a storm of blocked
/// answers it could not foresee from its own responses.
async fn collect_beside_noisy_neighbour(blocked_status: BlockedStatus) {
    let sim = start_sim(SimConfig {
        concurrency_limit: 1,
        latency: Duration::from_millis(60),
        blocked_status,
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(3_000)
    })
    .await;
    let expected = sim.visible_ids(Stream::Events);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let neighbour = {
        let base = sim.base_url();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let token = http
                .post(format!("{base}/auth"))
                .form(&[
                    ("username", common::USERNAME),
                    ("password", PASSWORD),
                    ("token", "true"),
                ])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            // Busy for 60 ms of every 80 ms, so each call of the poller is
            // blocked with a chance of about 0.75 and a 12-page backlog
            // meets about 36 blocked responses on average. That is an
            // estimate, because the calls are not independent.
            let mut started = Some(started_tx);
            for _ in 0..2_000 {
                let _ = http
                    .get(format!("{base}/fim/v1/incidents/count"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // The poller starts only once the neighbour is busy: a fast poller
    // could otherwise fetch the whole backlog while the neighbour logs in.
    started_rx
        .await
        .expect("the noisy neighbour stopped before its first call");

    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 250;
    config.rate_limit.concurrency = 1;
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(120))
        .await;
    neighbour.abort();
    assert_exactly_once(
        RecordKind::Event,
        &running.snapshot_ids(RecordKind::Event),
        &expected,
    );

    let ours: Vec<_> = sim
        .request_log()
        .into_iter()
        .filter(|entry| entry.path == "/fim/v2/events/search")
        .collect();
    let blocked: Vec<_> = ours
        .iter()
        .filter(|entry| entry.wait_sec.is_some())
        .collect();
    assert!(
        blocked.len() >= 3,
        "only {} blocked responses",
        blocked.len()
    );
    for entry in &blocked {
        let wait_ms = entry.wait_sec.unwrap() as i64 * 1000;
        let next = ours.iter().find(|later| later.time_ms > entry.time_ms);
        if let Some(next) = next {
            assert!(
                next.time_ms >= entry.time_ms + wait_ms,
                "a request came {} ms after a {} that asked to wait {} ms",
                next.time_ms - entry.time_ms,
                entry.status,
                wait_ms
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_storm_waits_as_told() {
    collect_beside_noisy_neighbour(BlockedStatus::Conflict).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_retry_after() {
    collect_beside_noisy_neighbour(BlockedStatus::TooManyRequests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_budget_is_never_exceeded() {
    let sim = start_sim(SimConfig {
        rate_limit: RateLimit {
            calls: 5,
            window: Duration::from_secs(2),
        },
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(3_000)
    })
    .await;
    let expected = sim.visible_ids(Stream::Events);
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 200;
    config.rate_limit.calls = 5;
    config.rate_limit.per = Duration::from_secs(2);
    config.rate_limit.burst = 5;
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(60))
        .await;
    assert_exactly_once(
        RecordKind::Event,
        &running.snapshot_ids(RecordKind::Event),
        &expected,
    );
    let log = sim.request_log();
    assert!(search_calls(&log).len() >= 15);
    let blocked = log.iter().filter(|entry| entry.wait_sec.is_some()).count();
    assert_eq!(blocked, 0, "the client went over a budget it knew");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_expiry_mid_paging_refetches_same_page() {
    for version in [ApiVersion::V2, ApiVersion::V1] {
        let sim = start_sim(SimConfig {
            incident_every: 0,
            ignored_share: 0.0,
            ..sim_config(5_000)
        })
        .await;
        let expected = sim.visible_ids(Stream::Events);
        let mut config = source_config(&sim, version, &[RecordKind::Event]);
        config.page_size = 200;
        let (_dir, store) = temp_store();
        let running = run_source(config, store, 16).await;
        running
            .wait_for(RecordKind::Event, 1_000, Duration::from_secs(30))
            .await;
        sim.update(&FaultUpdate {
            expire_tokens: Some(true),
            ..FaultUpdate::default()
        })
        .unwrap();
        running
            .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(60))
            .await;
        assert_exactly_once(
            RecordKind::Event,
            &running.snapshot_ids(RecordKind::Event),
            &expected,
        );

        let log = sim.request_log();
        let rejected = log
            .iter()
            .position(|entry| entry.status == 401)
            .expect("a 401 after expiry");
        assert_eq!(
            log[rejected + 1].path,
            "/auth",
            "{version:?}: no login after the 401"
        );
        assert_eq!(log[rejected + 2].path, log[rejected].path);
        assert_eq!(
            log[rejected + 2].request,
            log[rejected].request,
            "{version:?}: the page after the login differs from the one rejected"
        );
        assert_eq!(log.iter().filter(|entry| entry.status == 401).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_renewed_before_it_expires() {
    let sim = start_sim(SimConfig {
        token_ttl: Duration::from_secs(2),
        rate: 50.0,
        ..sim_config(100)
    })
    .await;
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.token_renew_margin = Duration::from_millis(500);
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 1_024).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = sim.request_log();
    let logins = log.iter().filter(|entry| entry.path == "/auth").count();
    assert!(logins >= 3, "only {logins} logins in 5 s with 2 s tokens");
    assert_eq!(log.iter().filter(|entry| entry.status == 401).count(), 0);
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_status_change_is_emitted() {
    let sim = start_sim(SimConfig {
        rate: 100.0,
        incident_every: 10,
        incident_update_after: Duration::from_millis(500),
        ..sim_config(0)
    })
    .await;
    let config = source_config(
        &sim,
        ApiVersion::V2,
        &[RecordKind::Incident, RecordKind::IncidentEvent],
    );
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 1_024).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    sim.update(&FaultUpdate {
        rate: Some(0.0),
        ..FaultUpdate::default()
    })
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let received = running.received.lock().unwrap();
    let incidents = received
        .records
        .get(&RecordKind::Incident)
        .cloned()
        .unwrap_or_default();
    let changed = incidents
        .iter()
        .find(|record| record.text("status").as_deref() == Some("CLOSED"));
    let changed = changed.expect("a closed incident was emitted");
    let versions: Vec<_> = incidents
        .iter()
        .filter(|record| record.id() == changed.id())
        .map(|record| record.text("status").unwrap_or_default().into_owned())
        .collect();
    assert!(
        versions.contains(&"OPEN".to_owned()),
        "versions {versions:?}"
    );
    assert!(
        versions.contains(&"CLOSED".to_owned()),
        "versions {versions:?}"
    );

    let expected_events = sim.visible_ids(Stream::IncidentEvents);
    assert_exactly_once(
        RecordKind::IncidentEvent,
        &received.ids(RecordKind::IncidentEvent),
        &expected_events,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_filter_stops_only_its_stream() {
    let sim = start_sim(sim_config(500)).await;
    let mut config = source_config(
        &sim,
        ApiVersion::V2,
        &[RecordKind::Event, RecordKind::Incident],
    );
    config.filter = "colour: red".to_owned();
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 1_024).await;
    let incidents = sim.visible_ids(Stream::Incidents).len();
    running
        .wait_for(RecordKind::Incident, incidents, Duration::from_secs(20))
        .await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        match running.handle.status(RecordKind::Event) {
            Some(StreamStatus::Failed(message)) => break message,
            other => {
                assert!(tokio::time::Instant::now() < deadline, "status {other:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    assert!(status.contains("colour: red"), "{status}");
    assert!(status.contains("unknown field"), "{status}");
    assert!(status.contains("400"), "{status}");
    assert_eq!(
        running.handle.status(RecordKind::Incident),
        Some(StreamStatus::Running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_page_waits_for_half_empty_channel() {
    let sim = start_sim(SimConfig {
        ignored_share: 0.0,
        incident_every: 0,
        ..sim_config(2_000)
    })
    .await;
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 50;
    let (sender, mut receiver) = mpsc::channel::<Polled>(20);
    let (_dir, store) = temp_store();
    let handle = fim_source::start(config, store, sender, SourceOptions::default())
        .await
        .unwrap();

    // The first page is 50 records: after 30 are read, the poller has sent
    // the whole page and the channel is full again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    read_records(&mut receiver, 30).await;
    while receiver.len() < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel never filled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let calls = search_calls(&sim.request_log()).len();

    // 15 of 20 records waiting: more than half full, so no API call.
    read_records(&mut receiver, 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        search_calls(&sim.request_log()).len(),
        calls,
        "API called while the channel was more than half full"
    );

    // 9 of 20 waiting: the next page is fetched.
    read_records(&mut receiver, 6).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while search_calls(&sim.request_log()).len() == calls {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no API call once the channel was half empty"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(handle);
}

/// Receives and acknowledges `count` records.
async fn read_records(receiver: &mut mpsc::Receiver<Polled>, count: usize) {
    for _ in 0..count {
        let polled = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("timed out waiting for a record")
            .unwrap();
        polled.ack.ack();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_channel_pauses_api_calls() {
    let sim = start_sim(SimConfig {
        ignored_share: 0.0,
        incident_every: 0,
        ..sim_config(2_000)
    })
    .await;
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 50;
    let (sender, mut receiver) = mpsc::channel::<Polled>(20);
    let (_dir, store) = temp_store();
    let handle = fim_source::start(config, store, sender, SourceOptions::default())
        .await
        .unwrap();

    // Nobody reads: the poller fills the channel, then stops calling.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receiver.len() < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the channel never filled"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stalled = search_calls(&sim.request_log()).len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        search_calls(&sim.request_log()).len(),
        stalled,
        "API called while the channel was full"
    );
    assert!(stalled <= 2, "{stalled} calls made for a 20-record channel");

    let expected = sim.visible_ids(Stream::Events);
    let mut ids = Vec::new();
    while ids.len() < expected.len() {
        let polled = tokio::time::timeout(Duration::from_secs(10), receiver.recv())
            .await
            .expect("records keep coming once read")
            .unwrap();
        ids.push(polled.record.id().to_owned());
        polled.ack.ack();
    }
    assert_exactly_once(RecordKind::Event, &ids, &expected);
    drop(handle);
}

#[tokio::test]
async fn password_stays_out_of_debug_output() {
    let sim = start_sim(sim_config(10)).await;
    let config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    let client = fim_source::FimClient::new(&config, Arc::new(fim_source::NoObserver)).unwrap();
    client.login().await.unwrap();
    for text in [format!("{config:?}"), format!("{client:?}")] {
        assert!(!text.contains(PASSWORD), "password in {text}");
        assert!(!text.contains("eyJ"), "token in {text}");
    }
}

#[tokio::test]
async fn wrong_password_is_a_credentials_error() {
    let sim = start_sim(sim_config(10)).await;
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.password = Some(fim_source::Secret::new("wrong-password".to_owned()));
    let client = fim_source::FimClient::new(&config, Arc::new(fim_source::NoObserver)).unwrap();
    let err = client.login().await.unwrap_err().to_string();
    assert!(err.contains("credentials"), "{err}");
    assert!(err.contains(common::USERNAME), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_cut_bodies_are_retried() {
    let sim = start_sim(SimConfig {
        fail_rate: 0.2,
        truncate_rate: 0.2,
        reset_rate: 0.1,
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(3_000)
    })
    .await;
    let expected = sim.visible_ids(Stream::Events);
    let mut config = source_config(&sim, ApiVersion::V2, &[RecordKind::Event]);
    config.page_size = 100;
    config.max_backoff = Duration::from_millis(50);
    let (_dir, store) = temp_store();
    let running = run_source(config, store, 4_096).await;
    running
        .wait_for(RecordKind::Event, expected.len(), Duration::from_secs(60))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(
        RecordKind::Event,
        &running.snapshot_ids(RecordKind::Event),
        &expected,
    );
    let faults = sim
        .request_log()
        .iter()
        .filter(|entry| entry.fault.is_some())
        .count();
    assert!(faults > 5, "only {faults} faults injected");
}
