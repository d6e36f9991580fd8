#!/usr/bin/env bash
# Chaos run: builds the release fim-sim, fim-forwarder and fim-chaos. It
# then runs the forwarder against the simulator and its own nats-server
# (JetStream), tansu (Kafka protocol) and syslog-ng (TLS) on loopback, plus
# a file sink and an in-process Elasticsearch _bulk receiver. Meanwhile it
# injects faults at seeded random moments: SIGKILL of the forwarder,
# restarts of each server, 409 and 429 storms, 20% 5xx, cut-off JSON,
# connection resets, expired tokens and a full state disk (a tmpfs, so
# this needs root). At the end it compares the ids the simulator served
# with what each sink received and prints a report. It exits 1 on any lost
# record, a duplicate in an idempotent sink (JetStream, Elasticsearch), an
# API call over the budget or memory over the bound. It exits 2 when the
# run itself could not be set up.
#
#   scripts/chaos.sh                 10-minute fault phase
#   scripts/chaos.sh --quick         60-second fault phase (CI)
#   scripts/chaos.sh --seed 1234     replay the faults of a reported seed
#
# Options (passed to fim-chaos): --quick, --seed N, --duration SECONDS
# (600), --memory-bound-mib MIB (256), --backlog N (20000; 5000 quick),
# --rate EVENTS/S (50), --budget-calls N (60), --budget-window SECONDS
# (10), --work-dir DIR ($TMPDIR/fim-chaos).
#
# Kafka: the tansu build installed by scripts/test.sh stores topics in
# memory only, so fim-chaos reads the topic continuously. Before each
# broker restart it pauses the forwarder (SIGSTOP) while it catches up, and
# it pauses it again while the broker starts and the topic is created.
# crates/fim-chaos/src/kafka.rs describes what that can and cannot catch.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p fim-sim -p fim-forwarder -p fim-chaos
exec "$target/release/fim-chaos" \
    --sim "$target/release/fim-sim" \
    --forwarder "$target/release/fim-forwarder" \
    "$@"
