# syntax=docker/dockerfile:1
# A Backend-For-Frontend made from bff-template (`oberon new bff NAME`). One Dockerfile
# for every BFF: this repository's (BFF names the package and binary), e.g.
#   docker build -f infra/docker/bff.Dockerfile --build-arg BFF=events-bff -t events-bff .
#   docker build -f infra/docker/bff.Dockerfile --build-arg BFF=checkout-bff -t checkout-bff .
# and a team's, made outside this repository: `oberon new bff payments` writes this file
# into the new crate as its `Dockerfile`, BFF defaulting to the crate, so in it
#   docker build -t payments-bff .
# builds from the crate's own lock file and its vendored platform (`oberon/`).
# A BFF configures itself from <PACKAGE>_* environment variables (EVENTS_BFF_LISTEN,
# EVENTS_BFF_BACKEND_URL, ...; see its README); its default listen addresses are
# loopback, so a deployment sets <PACKAGE>_LISTEN=0.0.0.0:8081 for the API and
# <PACKAGE>_OPS_LISTEN=0.0.0.0:9081 for the probes and metrics (infra/k8s does).
# Distroless, uid 65532, nothing written to disk.

# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK: the runtime image has no shell or client to run one, and Kubernetes ignores it; the probes in infra/k8s call the real health endpoints
FROM rust:1.95-slim-bookworm AS build
ARG BFF=bff-template
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "${BFF}" --bin "${BFF}" \
    && install -D -m 755 "target/release/${BFF}" /out/bff

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/bff /usr/local/bin/bff
USER 65532:65532
EXPOSE 8081 9081
ENTRYPOINT ["/usr/local/bin/bff"]
