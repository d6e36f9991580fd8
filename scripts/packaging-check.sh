#!/usr/bin/env bash
# Checks the deployment files without a container engine or a running
# systemd. The compose file must parse, the .deb must build and contain the
# binary, the systemd unit and the example configuration, and
# systemd-analyze must accept the unit. Installs docker-compose, systemd and
# cargo-deb when missing. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

apt_install() {
    log "apt-get install $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

# `docker compose config` only reads files, so it needs the client and no
# engine. The Compose v2 plugin is used when present, else Debian's
# docker-compose (v1), which reads the same file.
check_compose() {
    local compose
    if docker compose version >/dev/null 2>&1; then
        compose=(docker compose)
    else
        if ! command -v docker-compose >/dev/null 2>&1; then
            apt_install docker-compose
        fi
        compose=(docker-compose)
    fi
    log "${compose[*]} config -q"
    "${compose[@]}" config -q
}

# Builds the .deb and unpacks it with `dpkg -x` into a throwaway root.
check_deb() {
    if ! command -v cargo-deb >/dev/null 2>&1; then
        log "installing cargo-deb with cargo"
        cargo install cargo-deb --locked
    fi
    # --strip: the release profile keeps line tables for benchmarks and
    # backtraces, which make the binary about five times larger.
    log "cargo deb --strip -p fim-forwarder"
    cargo deb --locked --strip -p fim-forwarder --output "$workdir/fim-forwarder.deb"

    local root=$workdir/root
    dpkg -x "$workdir/fim-forwarder.deb" "$root"
    local path
    for path in usr/bin/fim-forwarder lib/systemd/system/fim-forwarder.service \
        etc/fim-forwarder/fim-forwarder.toml; do
        if [ ! -s "$root/$path" ]; then
            log "the .deb has no /$path"
            exit 1
        fi
    done
    if [ ! -x "$root/usr/bin/fim-forwarder" ]; then
        log "/usr/bin/fim-forwarder in the .deb is not executable"
        exit 1
    fi
    "$root/usr/bin/fim-forwarder" --version >/dev/null
    cmp packaging/fim-forwarder.service "$root/lib/systemd/system/fim-forwarder.service"
    cmp config/fim-forwarder.toml "$root/etc/fim-forwarder/fim-forwarder.toml"
    if ! dpkg-deb --info "$workdir/fim-forwarder.deb" conffiles |
        grep -qx /etc/fim-forwarder/fim-forwarder.toml; then
        log "the .deb does not mark /etc/fim-forwarder/fim-forwarder.toml as a conffile"
        exit 1
    fi
    log "the .deb contains the binary, the unit and the example configuration"
}

# systemd-analyze verify checks that ExecStart names an executable, and the
# binary is not installed on this machine, so the unit is verified as a copy
# whose ExecStart names the binary unpacked from the .deb. Every other line
# is verified as shipped.
check_unit() {
    if ! command -v systemd-analyze >/dev/null 2>&1; then
        apt_install systemd
    fi
    local unit_dir=$workdir/unit
    mkdir -p "$unit_dir"
    sed "s#^ExecStart=/usr/bin/fim-forwarder #ExecStart=$workdir/root/usr/bin/fim-forwarder #" \
        packaging/fim-forwarder.service >"$unit_dir/fim-forwarder.service"
    log "systemd-analyze verify packaging/fim-forwarder.service"
    local output
    if ! output=$(systemd-analyze verify "$unit_dir/fim-forwarder.service" 2>&1); then
        printf '%s\n' "$output" >&2
        exit 1
    fi
    # verify exits 0 on some warnings about the unit itself, so any output
    # naming the unit counts as a failure too.
    if printf '%s\n' "$output" | grep -q 'fim-forwarder.service'; then
        printf '%s\n' "$output" >&2
        exit 1
    fi
}

check_compose
check_deb
check_unit
log "packaging checks passed"
