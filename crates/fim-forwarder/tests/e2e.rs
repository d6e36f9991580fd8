//! The `fim-forwarder` binary end to end: simulator in, file sinks out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    Running, id_set, json_ids, json_sink, lines, sim_config, start_sim, wait_until, write_config,
};
use fim_sim::{FaultUpdate, Stream};
use nix::sys::signal::Signal;

const ALL_STREAMS: &str = r#"["events", "ignored_events", "incidents", "incident_events"]"#;

#[test]
fn every_id_reaches_every_sink() {
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 20,
        ignored_share: 0.1,
        tricky_share: 0.02,
        ..sim_config(3_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(format!("{name}.out"));
    let file_sink = |name: &str, encoding: &str| {
        format!(
            "[[sinks]]\nname = \"{name}\"\ntype = \"file\"\nencoding = \"{encoding}\"\npath = \"{}\"\n",
            out(name).display()
        )
    };
    let sinks = [
        json_sink("json", &out("json")),
        file_sink("flat", "flat_json"),
        file_sink("ecs", "ecs"),
        file_sink("cef", "cef"),
    ]
    .join("\n");
    let config = write_config(dir.path(), &sim.handle, ALL_STREAMS, "", &sinks);

    let mut expected: Vec<String> = Vec::new();
    for stream in [
        Stream::Events,
        Stream::IgnoredEvents,
        Stream::IncidentEvents,
    ] {
        expected.extend(sim.handle.visible_ids(stream));
    }
    let incidents = sim.handle.visible_ids(Stream::Incidents);
    let total = expected.len() + incidents.len();

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(
        Duration::from_secs(120),
        "every record in the json sink",
        || lines(&out("json")).len() >= total,
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );

    let received = json_ids(&out("json"));
    let unique: HashSet<String> = id_set(&received);
    for id in expected.iter().chain(&incidents) {
        assert!(unique.contains(id), "{id} missing from the json sink");
    }
    for sink in ["ecs", "cef", "flat"] {
        assert_eq!(
            lines(&out(sink)).len(),
            received.len(),
            "{sink} and json differ in line count"
        );
    }
    let ecs_ids: HashSet<String> = lines(&out("ecs"))
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["event"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ecs_ids, unique);
    let cef_text = std::fs::read_to_string(out("cef")).unwrap();
    for id in expected.iter().take(200) {
        assert!(
            cef_text.contains(&format!("externalId={id}")),
            "{id} missing from the cef sink"
        );
    }
}

#[test]
fn sigkill_restarts_resend_only_after_checkpoint() {
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        late_share: 0.2,
        // Slow enough that the kills land in the middle of the backlog.
        latency: Duration::from_millis(50),
        ..sim_config(6_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.out");
    let config = write_config(
        dir.path(),
        &sim.handle,
        r#"["events"]"#,
        "",
        &json_sink("json", &out),
    );
    let expected = id_set(&sim.handle.visible_ids(Stream::Events));
    let checkpoint_path = dir.path().join("state/checkpoint.json");

    for round in 0..4 {
        let before = lines(&out).len();
        let mut running = Running::start(&config, dir.path().join(format!("stderr-{round}.log")));
        // Let it deliver some records, then kill it without warning.
        wait_until(Duration::from_secs(60), "progress before the kill", || {
            lines(&out).len() >= before + 300 || lines(&out).len() >= expected.len()
        });
        running.signal(Signal::SIGKILL);
        running.wait_exit(Duration::from_secs(10));

        // Whatever the next start sends again must lie after the saved
        // cursor (no checkpoint yet means nothing is covered).
        let (cursor_ms, at_cursor) = match std::fs::read_to_string(&checkpoint_path) {
            Ok(text) => {
                let checkpoint: serde_json::Value = serde_json::from_str(&text).unwrap();
                let cursor = &checkpoint["streams"]["events"]["lanes"]["processedTime"];
                let ids: HashSet<String> = cursor["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|id| id.as_str().unwrap().to_owned())
                    .collect();
                (cursor["time_ms"].as_i64().unwrap(), ids)
            }
            Err(_) => (i64::MIN, HashSet::new()),
        };
        let covered: HashSet<String> = lines(&out)
            .iter()
            .filter_map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).ok()?;
                let processed = fim_sim::parse_time_ms(value["data"]["processedTime"].as_str()?)?;
                let id = value["id"].as_str()?.to_owned();
                (processed < cursor_ms || at_cursor.contains(&id)).then_some(id)
            })
            .collect();

        let written_before = lines(&out).len();
        let mut next = Running::start(&config, dir.path().join(format!("stderr-next-{round}.log")));
        wait_until(
            Duration::from_secs(60),
            "progress after the restart",
            || {
                lines(&out).len() >= written_before + 100
                    || id_set(&json_ids(&out)).len() >= expected.len()
            },
        );
        next.signal(Signal::SIGKILL);
        next.wait_exit(Duration::from_secs(10));
        let resent: Vec<String> = json_ids(&out)[written_before..]
            .iter()
            .filter(|id| covered.contains(*id))
            .cloned()
            .collect();
        assert!(
            resent.is_empty(),
            "round {round}: {} records behind the checkpoint were sent again",
            resent.len()
        );
    }

    let mut last = Running::start(&config, dir.path().join("stderr-last.log"));
    wait_until(
        Duration::from_secs(120),
        "every id after the restarts",
        || id_set(&json_ids(&out)).len() >= expected.len(),
    );
    last.signal(Signal::SIGTERM);
    assert_eq!(last.wait_exit(Duration::from_secs(20)), Some(0));
    assert_eq!(id_set(&json_ids(&out)), expected);
}

#[test]
fn sigterm_mid_backlog_saves_position_and_resumes() {
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        latency: Duration::from_millis(20),
        ..sim_config(10_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.out");
    let config = write_config(
        dir.path(),
        &sim.handle,
        r#"["events"]"#,
        "",
        &json_sink("json", &out),
    );
    let expected = id_set(&sim.handle.visible_ids(Stream::Events));

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(Duration::from_secs(60), "part of the backlog", || {
        lines(&out).len() >= 1_500
    });
    let started = std::time::Instant::now();
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        running.stderr()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    let delivered = json_ids(&out);
    assert!(
        delivered.len() < expected.len(),
        "the backlog was already done"
    );

    // A clean stop saves exactly what was delivered: the next run sends
    // only the rest, with no record twice.
    let mut next = Running::start(&config, dir.path().join("stderr-next.log"));
    wait_until(Duration::from_secs(120), "the rest of the backlog", || {
        lines(&out).len() >= expected.len()
    });
    next.signal(Signal::SIGTERM);
    assert_eq!(next.wait_exit(Duration::from_secs(20)), Some(0));
    let all = json_ids(&out);
    assert_eq!(
        all.len(),
        expected.len(),
        "records were sent twice across a clean restart"
    );
    assert_eq!(id_set(&all), expected);
}

#[test]
fn stalled_sink_pauses_polling_then_catches_up() {
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(8_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let fast = dir.path().join("fast.out");
    let fifo = dir.path().join("slow.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let sinks = format!(
        "{}\n[[sinks]]\nname = \"slow\"\ntype = \"file\"\nencoding = \"json\"\nbuffer = 100\npath = \"{}\"\n",
        json_sink("fast", &fast),
        fifo.display()
    );
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sinks);
    let expected = id_set(&sim.handle.visible_ids(Stream::Events));

    // Read a little from the FIFO, then stop reading (keeping it open).
    // Opening a FIFO for reading waits for its writer, the forwarder.
    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    let mut reader = std::io::BufReader::new(std::fs::File::open(&fifo).unwrap());
    let mut slow_lines = Vec::new();
    use std::io::BufRead;
    for _ in 0..200 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        slow_lines.push(line);
    }

    // The pipe, the slow sink's channel, the router and the poll channel
    // fill; then the fast sink stops growing and the API is not called.
    let mut stable_since = None;
    wait_until(Duration::from_secs(60), "the pipeline to stall", || {
        let now = (lines(&fast).len(), search_calls(&sim.handle));
        match stable_since {
            Some((then, since)) if then == now => {
                std::time::Instant::now().duration_since(since) > Duration::from_secs(1)
            }
            _ => {
                stable_since = Some((now, std::time::Instant::now()));
                false
            }
        }
    });
    let stalled_fast = lines(&fast).len();
    assert!(
        stalled_fast < expected.len(),
        "the fast sink got everything while the slow one was stalled"
    );
    let calls = search_calls(&sim.handle);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        search_calls(&sim.handle),
        calls,
        "the API was called while every buffer was full"
    );

    // Reading again lets every record through to both sinks.
    let reading = std::thread::spawn(move || {
        let mut line = String::new();
        let mut count = slow_lines.len();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            count += 1;
            line.clear();
            if count >= 8_000 {
                break;
            }
        }
        count
    });
    wait_until(
        Duration::from_secs(120),
        "every record in the fast sink",
        || id_set(&json_ids(&fast)).len() >= expected.len(),
    );
    running.signal(Signal::SIGTERM);
    let _ = running.wait_exit(Duration::from_secs(20));
    assert_eq!(id_set(&json_ids(&fast)), expected);
    let slow_count = reading.join().unwrap();
    assert!(
        slow_count >= expected.len(),
        "the slow sink got {slow_count} of {}",
        expected.len()
    );
}

fn search_calls(sim: &fim_sim::SimHandle) -> usize {
    sim.request_log()
        .iter()
        .filter(|entry| entry.path.ends_with("/search"))
        .count()
}

#[test]
fn secrets_stay_out_of_logs_metrics_and_errors() {
    let sim = start_sim(sim_config(500));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.out");
    let extra = "[metrics]\nenabled = true\nlisten = \"127.0.0.1:0\"\n";
    let config = write_config(
        dir.path(),
        &sim.handle,
        ALL_STREAMS,
        "",
        &json_sink("json", &out),
    );
    // Swap the disabled metrics table for an enabled one on a free port.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[metrics]\nenabled = false\n", extra);
    let metrics_port = free_port();
    let text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{metrics_port}"));
    std::fs::write(
        &config,
        text.replace("level = \"info\"", "level = \"debug\""),
    )
    .unwrap();

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(Duration::from_secs(60), "records", || {
        lines(&out).len() >= 400
    });
    // A token expiry and a re-login happen under debug logging too.
    sim.handle
        .update(&FaultUpdate {
            expire_tokens: Some(true),
            ..FaultUpdate::default()
        })
        .unwrap();
    let metrics = http_get::get(&format!("http://127.0.0.1:{metrics_port}/metrics"));
    running.signal(Signal::SIGTERM);
    assert_eq!(running.wait_exit(Duration::from_secs(20)), Some(0));
    let logs = running.stderr();

    // A wrong password's error output.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("${E2E_QUALYS_PASSWORD}", "${E2E_WRONG}"),
    )
    .unwrap();
    let output = common::forwarder()
        .env("E2E_WRONG", "Wrong-Pass-777")
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let check_output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "check passed with a wrong password"
    );

    for (what, text) in [
        ("logs", &logs),
        ("metrics", &metrics),
        ("check output", &check_output),
    ] {
        assert!(!text.contains(common::PASSWORD), "password in {what}");
        assert!(!text.contains("Wrong-Pass-777"), "wrong password in {what}");
        assert!(!text.contains("eyJ"), "a token in {what}");
    }
    assert!(
        metrics.contains("fim_records_polled_total"),
        "metrics were not served"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

mod http_get {
    /// A minimal HTTP GET over std, so the test needs no async client.
    pub fn get(url: &str) -> String {
        use std::io::{Read, Write};
        let address = url.trim_start_matches("http://");
        let (host, path) = address.split_once('/').unwrap();
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }
}

#[test]
fn backfill_collects_the_range_and_leaves_the_checkpoint() {
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(1_500)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.out");
    let config = write_config(
        dir.path(),
        &sim.handle,
        ALL_STREAMS,
        "",
        &json_sink("json", &out),
    );
    let expected = id_set(&sim.handle.visible_ids(Stream::Events));

    let output = common::forwarder()
        .args([
            "backfill",
            "--from",
            "3h",
            "--streams",
            "events",
            "--config",
        ])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(id_set(&json_ids(&out)), expected);
    assert_eq!(
        json_ids(&out).len(),
        expected.len(),
        "a record was sent twice"
    );
    assert!(
        !dir.path().join("state/checkpoint.json").exists(),
        "the backfill wrote the running checkpoint"
    );
}
