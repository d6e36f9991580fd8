//! The `fim-forwarder` binary from the simulator to a real Kafka-protocol
//! broker: tansu, started by the test on a free loopback port with
//! in-memory storage. `scripts/test.sh` installs tansu into `~/.cargo/bin`
//! when it is missing; set `TANSU` to use another binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, sim_config, start_sim, wait_until, write_config};
use fim_sim::Stream;
use nix::sys::signal::Signal;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "qualys.fim.events";
const PARTITIONS: i32 = 3;

/// A tansu broker process on a free loopback port.
struct Tansu {
    brokers: String,
    child: Child,
}

impl Tansu {
    fn start() -> Self {
        let binary = tansu_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "failed to start {}: {err}; run scripts/test.sh, which installs tansu",
                    binary.display()
                )
            });
        wait_until(Duration::from_secs(30), "tansu to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            brokers: format!("127.0.0.1:{port}"),
            child,
        }
    }

    /// Creates the topic with the Kafka admin API: tansu does not create
    /// topics on first use.
    fn create_topic(&self) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .unwrap();
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(admin.create_topics([&topic], &options))
            .unwrap();
        for result in results {
            result.unwrap();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = std::env::var_os("TANSU")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            home.join(".cargo/bin/tansu"),
            PathBuf::from("/usr/local/bin/tansu"),
        ]);
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("tansu not found (set TANSU or run scripts/test.sh, which installs it)");
}

/// Reads the topic from the start until every id in `expected` was seen as
/// a message key, for at most two minutes. Returns the keys read.
fn read_keys(brokers: &str, expected: &HashSet<String>) -> HashSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "fim-forwarder-e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(TOPIC, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut keys = HashSet::new();
    while !expected.is_subset(&keys) && Instant::now() < deadline {
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.unwrap();
        keys.insert(String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned());
    }
    keys
}

#[test]
fn every_id_reaches_the_topic() {
    let tansu = Tansu::start();
    tansu.create_topic();
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(3_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let sinks = format!(
        "[[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nencoding = \"ecs\"\nbrokers = [\"{}\"]\ntopic = \"qualys.fim.{{stream}}\"\n[sinks.librdkafka]\n\"compression.type\" = \"zstd\"\n",
        tansu.brokers
    );
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sinks);
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    let keys = read_keys(&tansu.brokers, &expected);
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );

    let missing: Vec<&String> = expected.difference(&keys).collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
}
