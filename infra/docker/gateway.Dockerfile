# syntax=docker/dockerfile:1
# The gateway: `oberon-gateway --config FILE --listen ADDR`.
# Build from the repository root:
#   docker build -f infra/docker/gateway.Dockerfile -t oberon-gateway .
#
# Stage 1 builds the one binary with the workspace's lock file; stage 2 is distroless
# (glibc + libgcc, no shell, no package manager) running as uid 65532. The binary needs
# no OpenSSL (rustls) and writes nothing to disk, so the root filesystem can be
# read-only (infra/k8s does that).

# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the runtime image has no shell or client to run one, and Kubernetes ignores it; the probes in infra/k8s call the real health endpoints
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oberon-gateway --bin oberon-gateway \
    && install -D -m 755 target/release/oberon-gateway /out/oberon-gateway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/oberon-gateway /usr/local/bin/oberon-gateway
# The demo's configuration, so the image runs on its own; a deployment mounts its
# own at /etc/oberon/gateway/gateway.toml (infra/k8s).
COPY demo/gateway.toml /etc/oberon/gateway/gateway.toml
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/oberon-gateway"]
CMD ["--config", "/etc/oberon/gateway/gateway.toml", "--listen", "0.0.0.0:8080"]
