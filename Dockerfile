# Container image of fim-forwarder. The build stage compiles the binary
# (librdkafka is built from source by rdkafka-sys, so it needs make and the
# OpenSSL and zlib headers). The runtime stage contains the binary, the
# shared libraries it links against, CA certificates and curl for the
# health check, and runs as an unprivileged user.
#
#   docker build -t fim-forwarder .
#   docker run -v ./my.toml:/etc/fim-forwarder/fim-forwarder.toml:ro \
#       -e QUALYS_USERNAME -e QUALYS_PASSWORD -p 127.0.0.1:9598:9598 fim-forwarder

FROM rust:1-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends make pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p fim-forwarder -p fim-sim

# The Qualys FIM API simulator, for the local stack in docker-compose.yml
# (`--target sim`). The forwarder image below is the default target.
FROM debian:bookworm-slim AS sim
COPY --from=build /src/target/release/fim-sim /usr/local/bin/fim-sim
USER 65534
EXPOSE 8080
ENTRYPOINT ["fim-sim"]

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/fim-forwarder --shell /usr/sbin/nologin fim \
    && install -d -o fim -g fim /var/lib/fim-forwarder /etc/fim-forwarder
COPY --from=build /src/target/release/fim-forwarder /usr/local/bin/fim-forwarder
COPY --from=build /src/target/release/fim-sim /usr/local/bin/fim-sim
# The example configuration listens for metrics on 127.0.0.1, which is not
# reachable from outside the container: mount a configuration whose
# [metrics] listen is 0.0.0.0:9598 (config/compose/fim-forwarder.toml is one).
COPY config/fim-forwarder.toml /etc/fim-forwarder/fim-forwarder.toml
USER fim
VOLUME ["/etc/fim-forwarder", "/var/lib/fim-forwarder"]
EXPOSE 9598
# /health returns 503 until the source is logged in and every sink is
# connected, so a starting forwarder is reported healthy only after it delivers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9598/health"]
ENTRYPOINT ["fim-forwarder"]
CMD ["run", "--config", "/etc/fim-forwarder/fim-forwarder.toml"]
