//! End-to-end benchmark: the release `fim-sim` and `fim-forwarder` binaries
//! as separate processes on loopback, measured the way an operator would
//! judge them. `scripts/bench.sh` builds both binaries and runs this.
//!
//! Three runs, each with a fresh simulator, forwarder and state directory:
//! - `backlog`: N events already visible and no rate limit. The forwarder
//!   writes to one sink (file, NATS JetStream, Kafka, syslog over TLS or
//!   Splunk HEC, see [`sinks`]) or to all of them at once. The clock stops
//!   when `/metrics` counts every visible event as acknowledged by every
//!   sink.
//! - `slow`: the file sink writes into a FIFO that this process drains at a
//!   fixed rate after a full stall, to show memory and API calls while the
//!   buffers are full.
//! - `latency`: no backlog, events arriving at a fixed rate; the delay from
//!   an event's `processedTime` (when the simulator makes it visible) to the
//!   moment its line appears in the sink file.

mod measure;
mod process;
mod sinks;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fim_model::Timestamp;
use measure::{ProcSample, api_search_calls, metric_sum};
use process::{Forwarder, Sim, free_port};
use sinks::{Brokers, Destinations, file_sink};

/// Options from the command line, `--name value` pairs.
struct Options {
    sim: PathBuf,
    forwarder: PathBuf,
    events: usize,
    page_size: usize,
    runs: Vec<String>,
    /// Sink of the backlog run: one of [`sinks::NAMES`] or `all`.
    sink: String,
    brokers: Brokers,
    slow_rate: u64,
    stall_seconds: u64,
    slow_seconds: u64,
    latency_rate: u64,
    latency_seconds: u64,
    poll_interval_ms: u64,
    work_dir: PathBuf,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut values: HashMap<String, String> = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            // `cargo bench` appends `--bench`; it takes no value.
            if arg == "--bench" {
                continue;
            }
            let Some(name) = arg.strip_prefix("--") else {
                return Err(format!(
                    "unexpected argument '{arg}': options are --name value"
                ));
            };
            let value = args
                .next()
                .ok_or_else(|| format!("option --{name} is missing its value"))?;
            values.insert(name.to_owned(), value);
        }

        let number = |name: &str, default: u64| -> Result<u64, String> {
            values.get(name).map_or(Ok(default), |text| {
                text.replace('_', "")
                    .parse()
                    .map_err(|_| format!("invalid --{name} '{text}': expected a whole number"))
            })
        };
        let path = |name: &str| -> Result<PathBuf, String> {
            values
                .get(name)
                .map(PathBuf::from)
                .ok_or_else(|| format!("missing --{name} PATH (scripts/bench.sh passes it)"))
        };

        Ok(Self {
            sim: path("sim")?,
            forwarder: path("forwarder")?,
            events: usize::try_from(number("events", 200_000)?).unwrap_or(usize::MAX),
            page_size: usize::try_from(number("page-size", 1000)?).unwrap_or(1000),
            runs: values
                .get("runs")
                .map_or("backlog,slow,latency", String::as_str)
                .split(',')
                .map(str::to_owned)
                .collect(),
            sink: values
                .get("sink")
                .cloned()
                .unwrap_or_else(|| "file".to_owned()),
            brokers: Brokers {
                nats_url: values
                    .get("nats-url")
                    .cloned()
                    .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned()),
                kafka_broker: values
                    .get("kafka-broker")
                    .cloned()
                    .unwrap_or_else(|| "127.0.0.1:9092".to_owned()),
            },
            slow_rate: number("slow-rate", 1000)?,
            stall_seconds: number("stall-seconds", 10)?,
            slow_seconds: number("slow-seconds", 20)?,
            latency_rate: number("latency-rate", 200)?,
            latency_seconds: number("latency-seconds", 30)?,
            poll_interval_ms: number("poll-interval-ms", 1000)?,
            work_dir: values
                .get("work-dir")
                .map_or_else(|| std::env::temp_dir().join("fim-e2e"), PathBuf::from),
        })
    }
}

// NOTE: the child processes are killed on drop, which a signal to this
// process skips, so an interrupted run can leave fim-sim and fim-forwarder.
fn main() {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    };

    for run in &options.runs {
        let dir = options.work_dir.join(run);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(err) = std::fs::create_dir_all(&dir) {
            eprintln!("error: cannot create {}: {err}", dir.display());
            std::process::exit(1);
        }

        let result = match run.as_str() {
            "backlog" => run_backlog(&options, &dir),
            "slow" => run_slow(&options, &dir),
            "latency" => run_latency(&options, &dir),
            other => Err(format!(
                "unknown run '{other}': use backlog, slow or latency"
            )),
        };
        if let Err(message) = result {
            eprintln!("error: {run} run failed: {message}");
            std::process::exit(1);
        }
    }
}

/// Forwarder configuration for one run: the `events` stream only, limits
/// off, default pipeline and sink buffers (500 records each), and the
/// `[[sinks]]` table `sink`.
fn forwarder_config(
    sim_url: &str,
    dir: &Path,
    options: &Options,
    metrics_port: u16,
    sink: &str,
) -> String {
    format!(
        r#"[source]
base_url = "{sim_url}"
username = "{user}"
password = "${{FIM_E2E_PASSWORD}}"
api_version = "v2"
streams = ["events"]
poll_interval = "{poll}ms"
page_size = {page_size}
start_from = "7d"
lag = "0s"
[source.rate_limit]
calls = 1000000
per = "1s"
burst = 1000
concurrency = 4

[state]
dir = "{state}"

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"

[log]
format = "json"
level = "warn"

{sink}
"#,
        user = process::SIM_USERNAME,
        poll = options.poll_interval_ms,
        page_size = options.page_size,
        state = dir.join("state").display(),
    )
}

fn start_pair(
    options: &Options,
    dir: &Path,
    sim_args: &[String],
    sink: &str,
) -> Result<(Sim, Forwarder), String> {
    let sim = Sim::start(&options.sim, sim_args, &dir.join("sim.log"))?;
    let metrics_port = free_port()?;
    let config = dir.join("forwarder.toml");
    std::fs::write(
        &config,
        forwarder_config(&sim.url, dir, options, metrics_port, sink),
    )
    .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
    let forwarder = Forwarder::start(
        &options.forwarder,
        &config,
        metrics_port,
        &dir.join("forwarder.log"),
    )?;
    Ok((sim, forwarder))
}

fn run_backlog(options: &Options, dir: &Path) -> Result<(), String> {
    let sim_args = vec![
        "--backlog".to_owned(),
        options.events.to_string(),
        "--rate".to_owned(),
        "0".to_owned(),
    ];
    let sim = Sim::start(&options.sim, &sim_args, &dir.join("sim.log"))?;
    let expected = sim.visible_event_count()?;
    drop(sim);

    let destinations = Destinations::start(&options.sink, dir, &options.brokers)?;
    let acknowledgements = (expected * destinations.count) as f64;
    // The simulator is restarted so its start-up is not in the forwarder's
    // clock; the same seed gives the same backlog.
    let (sim, forwarder) = start_pair(options, dir, &sim_args, &destinations.tables)?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(600);

    let mut acknowledged = 0.0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if let Ok(text) = forwarder.metrics() {
            acknowledged = metric_sum(&text, "fim_sink_records_total", "outcome=\"acknowledged\"");
        }
        if acknowledged >= acknowledgements {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let finished_ms = Timestamp::now().unix_ms();
    let sample = ProcSample::read(forwarder.pid())?;
    let metrics = forwarder.metrics()?;
    let bytes = metric_sum(&metrics, "fim_sink_bytes_total", "");
    let calls = api_search_calls(&sim.url, "/fim/v2/events/search", i64::MIN, finished_ms)?;

    if acknowledged < acknowledgements {
        return Err(format!(
            "only {acknowledged} of {acknowledgements} acknowledgements ({expected} events, {} sinks) after 600 s",
            destinations.count
        ));
    }

    let events = expected as f64;
    let minimum = expected.div_ceil(options.page_size);
    println!(
        "== backlog: {expected} events, {} sink(s), page size {}",
        options.sink, options.page_size
    );
    println!("elapsed             {elapsed:.2} s (forwarder start to last acknowledgement)");
    println!("events/s            {:.0}", events / elapsed);
    println!(
        "MB/s (encoded)      {:.1} ({:.1} MB)",
        bytes / elapsed / 1e6,
        bytes / 1e6
    );
    println!(
        "peak RSS (VmHWM)    {:.1} MiB",
        sample.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "CPU s per 100k      {:.2} (user {:.2} s, system {:.2} s)",
        sample.cpu_seconds() / events * 100_000.0,
        sample.user_seconds,
        sample.system_seconds
    );
    println!("API search calls    {calls} (minimum ceil(N/pageSize) = {minimum})");
    Ok(())
}

fn run_slow(options: &Options, dir: &Path) -> Result<(), String> {
    let sim_args = vec![
        "--backlog".to_owned(),
        options.events.to_string(),
        "--rate".to_owned(),
        "0".to_owned(),
    ];
    let fifo = dir.join("events.fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map_err(|err| format!("cannot run mkfifo: {err}"))?;
    if !status.success() {
        return Err(format!("mkfifo {} failed: {status}", fifo.display()));
    }

    let (sim, forwarder) = start_pair(options, dir, &sim_args, &file_sink(&fifo))?;
    // Opening a FIFO for reading blocks until the writer opens it, and the
    // forwarder opens its sink at start-up.
    let reader = std::fs::File::open(&fifo)
        .map_err(|err| format!("cannot open {}: {err}", fifo.display()))?;
    let mut reader = BufReader::with_capacity(1 << 16, reader);

    // Full stall: nothing is read, so the pipe (64 KiB) and then every
    // buffer fill up.
    let stall_start_ms = Timestamp::now().unix_ms();
    std::thread::sleep(Duration::from_secs(options.stall_seconds));
    let stall_end_ms = Timestamp::now().unix_ms();
    let stall_rss = ProcSample::read(forwarder.pid())?;

    // Slow phase: read `slow_rate` lines per second, in 10 ms steps.
    let step = Duration::from_millis(10);
    let per_step = (options.slow_rate / 100).max(1);
    let slow_start = Instant::now();
    let mut line = String::new();
    let mut lines_read = 0u64;
    for tick in 1..=options.slow_seconds * 100 {
        for _ in 0..per_step {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => lines_read += 1,
            }
        }
        let next = slow_start + step * u32::try_from(tick).unwrap_or(u32::MAX);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    let slow_end_ms = Timestamp::now().unix_ms();
    let sample = ProcSample::read(forwarder.pid())?;
    let stall_calls = api_search_calls(
        &sim.url,
        "/fim/v2/events/search",
        stall_start_ms + 2000,
        stall_end_ms,
    )?;
    let slow_calls =
        api_search_calls(&sim.url, "/fim/v2/events/search", stall_end_ms, slow_end_ms)?;
    let all_calls = api_search_calls(&sim.url, "/fim/v2/events/search", i64::MIN, slow_end_ms)?;
    drop(forwarder);

    let slow_seconds = (slow_end_ms - stall_end_ms) as f64 / 1000.0;
    println!(
        "== slow sink: backlog {}, sink drained after a {} s stall at {} lines/s",
        options.events, options.stall_seconds, options.slow_rate
    );
    println!(
        "peak RSS at end of stall  {:.1} MiB",
        stall_rss.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "peak RSS (VmHWM)          {:.1} MiB",
        sample.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "API search calls, stall   {stall_calls} (from 2 s after start to end of the {} s stall)",
        options.stall_seconds
    );
    println!(
        "API search calls, slow    {slow_calls} in {slow_seconds:.1} s, {lines_read} lines read ({:.0}/s)",
        lines_read as f64 / slow_seconds
    );
    println!("API search calls, total   {all_calls}");
    Ok(())
}

fn run_latency(options: &Options, dir: &Path) -> Result<(), String> {
    let sim_args = vec![
        "--backlog".to_owned(),
        "0".to_owned(),
        "--rate".to_owned(),
        options.latency_rate.to_string(),
        "--late-share".to_owned(),
        "0".to_owned(),
    ];
    let sink_path = dir.join("events.ndjson");
    let (_sim, forwarder) = start_pair(options, dir, &sim_args, &file_sink(&sink_path))?;

    // The first seconds include the forwarder's start-up and first poll.
    let warm_up = Duration::from_secs(3);
    let started = Instant::now();
    let end = started + warm_up + Duration::from_secs(options.latency_seconds);
    let mut offset = 0u64;
    let mut pending = Vec::new();
    let mut latencies_ms = Vec::new();
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        let seen_ms = Timestamp::now().unix_ms();
        let Ok(mut file) = std::fs::File::open(&sink_path) else {
            continue;
        };
        use std::io::Seek;
        if file.seek(std::io::SeekFrom::Start(offset)).is_err() {
            continue;
        }
        let mut chunk = Vec::new();
        let Ok(read) = file.read_to_end(&mut chunk) else {
            continue;
        };
        offset += read as u64;
        pending.extend_from_slice(&chunk);
        let Some(last_newline) = pending.iter().rposition(|&byte| byte == b'\n') else {
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=last_newline).collect();
        if started.elapsed() < warm_up {
            continue;
        }
        for line in complete
            .split(|&byte| byte == b'\n')
            .filter(|line| !line.is_empty())
        {
            if let Some(processed_ms) = processed_time_ms(line) {
                latencies_ms.push(seen_ms - processed_ms);
            }
        }
    }
    drop(forwarder);

    if latencies_ms.is_empty() {
        return Err("no events reached the sink file".to_owned());
    }
    latencies_ms.sort_unstable();
    let percentile = |share: f64| {
        let index =
            ((latencies_ms.len() as f64 * share).ceil() as usize).clamp(1, latencies_ms.len());
        latencies_ms[index - 1]
    };
    println!(
        "== latency: {} events/s for {} s, poll interval {} ms",
        options.latency_rate, options.latency_seconds, options.poll_interval_ms
    );
    println!("events measured     {}", latencies_ms.len());
    println!("p50                 {} ms", percentile(0.50));
    println!("p99                 {} ms", percentile(0.99));
    println!(
        "max                 {} ms",
        latencies_ms[latencies_ms.len() - 1]
    );
    Ok(())
}

/// Reads `processedTime` from one JSON line without parsing the rest.
fn processed_time_ms(line: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(line).ok()?;
    let key = "\"processedTime\":\"";
    let start = text.find(key)? + key.len();
    let end = start + text[start..].find('"')?;
    Timestamp::parse(&text[start..end]).map(Timestamp::unix_ms)
}
