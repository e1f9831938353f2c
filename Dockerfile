# Gatehouse image: `docker build -t gatehouse .`, or `docker compose up` (docker-compose.yml).

# Build stage: the release binary, with the dependency versions of Cargo.lock.
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and build artefacts between image builds;
# the binary is copied out of the cached target folder in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p gatehouse-server --locked \
    && install -m 0755 target/release/gatehouse /usr/local/bin/gatehouse

# Runtime stage: the binary, CA certificates for SMTP over TLS, and an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /var/lib/gatehouse --shell /usr/sbin/nologin gatehouse \
    && install -d -o gatehouse -g gatehouse -m 0750 /var/lib/gatehouse
COPY --from=builder /usr/local/bin/gatehouse /usr/local/bin/gatehouse
USER gatehouse
# Relative paths of the default configuration (./data/...) resolve here.
WORKDIR /var/lib/gatehouse
EXPOSE 8080
ENV GATEHOUSE__SERVER__BIND=0.0.0.0:8080
ENTRYPOINT ["gatehouse"]
CMD ["serve"]
