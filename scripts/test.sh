#!/usr/bin/env bash
# The one test command: prepares this machine, then runs the format check,
# clippy and every test in the workspace. Today the tests need only the
# toolchain components (the simulator they talk to runs inside the tests);
# the real brokers and receivers the sink tests need are set up here, each
# only when missing, as those tests arrive.
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

ensure_rust_components

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo test"
cargo test --workspace
