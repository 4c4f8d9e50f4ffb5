# syntax=docker/dockerfile:1
#
# The Kith relay (`kith-relay`) and the reference client (`kith`) in a small Debian image.
# Build context: the repository root, e.g. `docker build -t kith-relay:local .`; the compose
# file deploy/compose.multi-node.yaml does this for you. Needs BuildKit (the default builder
# since Docker Engine 23, and always with `docker compose`) for the cache mounts below.

# ---- build ----
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# The whole Cargo workspace: kith-relay and kith depend on kith-protocol, and Cargo reads
# every member's manifest. .dockerignore keeps target/, data directories and secrets out.
COPY . .
# --locked: exactly the dependency versions in Cargo.lock, or fail. The cache mounts keep the
# crates.io downloads and compiled dependencies between builds, so after a source change only
# Kith's own crates are compiled again. The binaries are copied out of the cached target/
# (a cache mount is not part of the image).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kith-relay -p kith \
    && mkdir -p /out \
    && cp target/release/kith-relay target/release/kith /out/

# ---- runtime ----
FROM debian:bookworm-slim
# ca-certificates: for `kith` against a relay with a public certificate.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# An unprivileged user with a fixed id: files mounted into the container (the TLS key) must be
# readable by uid 10001. The data directory is created with mode 0700 for that user; a new
# named volume mounted there copies this owner and mode.
RUN groupadd --system --gid 10001 kith \
    && useradd --system --uid 10001 --gid kith --home-dir /var/lib/kith-relay \
       --no-create-home --shell /usr/sbin/nologin kith \
    && install -d -m 0700 -o kith -g kith /var/lib/kith-relay
COPY --from=builder /out/kith-relay /out/kith /usr/local/bin/
USER kith
WORKDIR /var/lib/kith-relay
# Development certificate (tls/), admin.json (admin token while running), and with sled the
# database. With PostgreSQL only the first two: the accounts and mailboxes are in the database.
VOLUME ["/var/lib/kith-relay"]

# The admin listener (plain HTTP: /healthz, /metrics, invites, stats) listens on 0.0.0.0:7444
# below so that the load balancer's health check can reach it. That is only acceptable on a
# private container network that only the operator's containers join: never publish port
# 7444 (`ports:`), and without a container network run with --admin-listen 127.0.0.1:7444.
# The relay refuses a non-loopback admin address unless this is set.
ENV KITH_RELAY_ADMIN_ALLOW_NON_LOOPBACK=true

# 7443: clients (WebSocket over TLS). 7444: admin listener (see above).
EXPOSE 7443 7444

# GET /healthz on the admin listener: 200 while serving, 503 while shutting down. The image has
# no curl; bash's /dev/tcp speaks the one HTTP request. Assumes the admin port 7444 of CMD.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7444 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

# SIGTERM (docker stop) drains connections, finishes in-flight writes and exits 0.
ENTRYPOINT ["kith-relay"]
CMD ["serve", "--data", "/var/lib/kith-relay", "--listen", "0.0.0.0:7443", "--admin-listen", "0.0.0.0:7444"]
