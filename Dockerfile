# syntax=docker/dockerfile:1
# Turnstile: the `turnstile` host binary plus the built plugin components.
#
#   docker build -t turnstile:local .
#   docker run --rm turnstile:local --help
#
# The plugins are baked in under /opt/turnstile/plugins-dist; docker-compose.yml
# mounts ./.turnstile/plugins at /plugins instead, so plugins can be rebuilt
# without rebuilding the image.

############################ build ############################
FROM rust:1.95-bookworm AS builder

# rdkafka builds its bundled librdkafka with cmake and links zlib.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake build-essential zlib1g-dev libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-wasip2

WORKDIR /src
COPY . .

# Cache mounts keep the registry and target dir between builds (BuildKit), so
# only what changed is recompiled. Artifacts are copied out in the same step
# because a cache mount is not part of the image. scripts/build-plugins prints
# the path of every .wasm it built, one per line.
RUN --mount=type=cache,id=turnstile-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=turnstile-target,target=/src/target \
    set -eux; \
    cargo build --release --locked -p turnstile; \
    scripts/build-plugins > /tmp/plugins.txt; \
    mkdir -p /out/plugins; \
    cp target/release/turnstile /out/; \
    xargs cp -t /out/plugins/ < /tmp/plugins.txt; \
    ls -l /out /out/plugins

############################ runtime ############################
FROM debian:bookworm-slim

# No extra packages: librdkafka is compiled into the binary, and what it links
# dynamically (glibc, libgcc_s, zlib) is already in the slim image.
COPY --from=builder /out/turnstile /usr/local/bin/turnstile
COPY --from=builder /out/plugins/ /opt/turnstile/plugins-dist/

WORKDIR /var/lib/turnstile
ENTRYPOINT ["turnstile"]
CMD ["--help"]
