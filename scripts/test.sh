#!/usr/bin/env bash
# The one test command: prepares this machine, then runs the format check,
# clippy and every test in the workspace. The real brokers and receivers
# the sink tests need are installed here when missing and started when not
# running, on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

ensure_rust_components() {
    if ! command -v cargo >/dev/null 2>&1; then
        log "cargo not found: install a Rust toolchain (rustup) first"
        exit 1
    fi
    for component in rustfmt clippy; do
        if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
            log "installing rustup component $component"
            rustup component add "$component"
        fi
    done
}

# Debian packages are installed with one `apt-get update` per run, and only
# when something is missing.
apt_updated=false
apt_install() {
    if [ "$apt_updated" = false ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=true
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Returns success when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits up to $2 seconds for 127.0.0.1:$1 to accept connections.
wait_for_port() {
    local port=$1 seconds=$2
    for _ in $(seq $((seconds * 10))); do
        if port_open "$port"; then
            return 0
        fi
        sleep 0.1
    done
    log "nothing listens on 127.0.0.1:$port after ${seconds}s"
    return 1
}

# C libraries rdkafka-sys builds librdkafka against (TLS, zlib).
ensure_kafka_build_packages() {
    local missing=()
    for package in pkg-config libssl-dev zlib1g-dev; do
        if ! dpkg -s "$package" >/dev/null 2>&1; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
}

# nats-server with JetStream on 127.0.0.1:${FIM_NATS_PORT:-4222}. The NATS
# sink tests start their own servers from the same binary on free ports.
ensure_nats() {
    local port=${FIM_NATS_PORT:-4222}
    if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
        apt_install nats-server
    fi
    if port_open "$port"; then
        return 0
    fi
    local binary
    binary=$(command -v nats-server || echo /usr/sbin/nats-server)
    local store=${FIM_NATS_STORE:-/var/lib/nats-server}
    mkdir -p "$store"
    log "starting nats-server on 127.0.0.1:$port"
    nohup "$binary" -a 127.0.0.1 -p "$port" -js -sd "$store" \
        >>"${TMPDIR:-/tmp}/fim-nats-server.log" 2>&1 &
    wait_for_port "$port" 20
}

# tansu, a Kafka-protocol broker in Rust, on 127.0.0.1:${FIM_KAFKA_PORT:-9092}
# with in-memory storage. Apache Kafka cannot be installed here, so tansu is
# built from crates.io (about 11 minutes on 2 cores) into ~/.cargo/bin, only
# when missing. The Kafka sink tests start their own tansu on free ports.
ensure_kafka() {
    local port=${FIM_KAFKA_PORT:-9092}
    local tansu=${TANSU:-$HOME/.cargo/bin/tansu}
    if [ ! -x "$tansu" ] && ! command -v tansu >/dev/null 2>&1; then
        log "installing tansu 0.6 with cargo (slow: about 11 minutes on 2 cores)"
        cargo install tansu --version '~0.6' --locked --features dynostore
    fi
    if [ ! -x "$tansu" ]; then
        tansu=$(command -v tansu)
    fi
    if port_open "$port"; then
        return 0
    fi
    log "starting tansu on 127.0.0.1:$port"
    nohup "$tansu" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ \
        >>"${TMPDIR:-/tmp}/fim-tansu.log" 2>&1 &
    wait_for_port "$port" 30
}

# syslog-ng, for the syslog sink tests. The tests start their own syslog-ng
# instances as child processes with generated configurations on free
# loopback ports, so the system service is neither needed nor started.
ensure_syslog_ng() {
    if [ ! -x /usr/sbin/syslog-ng ] && ! command -v syslog-ng >/dev/null 2>&1; then
        apt_install syslog-ng-core
    fi
}

ensure_rust_components
ensure_kafka_build_packages
ensure_nats
ensure_kafka
ensure_syslog_ng

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test"
cargo test --workspace --no-fail-fast

log "packaging checks"
scripts/packaging-check.sh

log "chaos run (--quick)"
scripts/chaos.sh --quick
