#!/usr/bin/env bash
# End-to-end benchmark: builds the release fim-sim and fim-forwarder, then
# runs benches/e2e against them on loopback. Extra arguments go to the
# harness, for example:
#   scripts/bench.sh --events 50000 --runs backlog
#   scripts/bench.sh --runs latency --latency-rate 500 --latency-seconds 60
# Options: --events N (200000), --page-size N (1000), --runs LIST
# (backlog,slow,latency), --sink file|nats|kafka|syslog|http|all (file;
# backlog run only), --nats-url URL (nats://127.0.0.1:4222),
# --kafka-broker HOST:PORT (127.0.0.1:9092),
# --slow-rate LINES/S (1000), --stall-seconds S (10),
# --slow-seconds S (20), --latency-rate EVENTS/S (200), --latency-seconds S
# (30), --poll-interval-ms MS (1000), --work-dir DIR ($TMPDIR/fim-e2e).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
cargo build --release -p fim-sim -p fim-forwarder
cargo bench -p fim-benches --bench e2e -- \
    --sim "$target/release/fim-sim" \
    --forwarder "$target/release/fim-forwarder" \
    "$@"
