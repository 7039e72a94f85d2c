# syntax=docker/dockerfile:1
# The renderer, which also serves the components' assets (/assets/<component>/<hash>/…):
# `oberon-renderer --site DIR --components DIR --listen ADDR`.
# Build from the repository root:
#   docker build -f infra/docker/renderer.Dockerfile -t oberon-renderer .
#
# Stage 1 builds the renderer, oberon-componentize and the oberon CLI; stage 2 builds
# the example components (Rust for wasm32-unknown-unknown; Python and JavaScript with
# the CLI), wraps the Rust ones into components and installs them
# as <name>/component.wasm + assets/ (the layout the renderer loads) with
# infra/docker/install-components.sh; the last stage is
# distroless, uid 65532. The renderer reads its site and components and writes
# nothing, so the root filesystem can be read-only. The components are baked into
# the image (a new component version is a new image): the manifests do not use the
# component registry (`--registry s3://…`) yet.

# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the runtime image has no shell or client to run one, and Kubernetes ignores it; the probes in infra/k8s call the real health endpoints
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p oberon-renderer --bin oberon-renderer \
       -p oberon-guest-build --bin oberon-componentize -p oberon-cli --bin oberon \
    && install -D -m 755 target/release/oberon-renderer /out/oberon-renderer \
    && install -D -m 755 target/release/oberon-componentize /out/oberon-componentize \
    && install -D -m 755 target/release/oberon /out/oberon

# Node.js 20+ for ComponentizeJS (Debian bookworm's is 18).
FROM node:20-bookworm-slim AS node

FROM rust:1.95-slim-bookworm AS components
WORKDIR /src
RUN rustup target add wasm32-unknown-unknown \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
COPY components components
COPY infra/docker/install-components.sh /usr/local/bin/install-components
COPY --from=build /out/oberon-componentize /usr/local/bin/oberon-componentize
COPY --from=build /out/oberon /usr/local/bin/oberon
# The Python and JavaScript components' tools (componentize-py, ComponentizeJS),
# installed from PyPI and npm at the versions the oberon binary pins.
ENV OBERON_TOOLS_DIR=/tools
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    install-components /src/components /out/components

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/oberon-renderer /usr/local/bin/oberon-renderer
COPY --from=components /out/components /opt/oberon/components
# The demo site, so the image runs on its own; a deployment mounts its site.toml,
# pages and layouts at /etc/oberon/site (infra/k8s).
COPY demo/site.toml /etc/oberon/site/site.toml
COPY demo/pages /etc/oberon/site/pages
COPY demo/layouts /etc/oberon/site/layouts
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/oberon-renderer"]
CMD ["--site", "/etc/oberon/site", "--components", "/opt/oberon/components", "--listen", "0.0.0.0:8081", "--watch-ms", "0"]
