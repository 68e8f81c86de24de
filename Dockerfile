# syntax=docker/dockerfile:1
#
# The lunamatch image: every binary (lunamatch-ingest, lunamatch-match, the
# lunamatch CLI, lunamatch-devkafka) and the data files under
# /usr/share/lunamatch, on a slim Debian 12 runtime that holds only the shared
# libraries the binaries load. Built in two stages so that compilers and
# headers never reach the runtime image.
#
#   docker build -t lunamatch:0.1.0 \
#     --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# The runtime package list below is checked by tests/deploy (deploy.image):
# every library the installed binaries resolve must come from these packages
# (or their dependencies, or the base image), and the installed services must
# start and serve as uid 10001 with only the environment the manifests set.
# docs/deployment.md describes the image.

ARG DEBIAN_TAG=12-slim
# The base image's digest (sha256:<64 hex digits>), empty by default: then
# both stages start from whatever debian:${DEBIAN_TAG} is at build time.
# Set, both stages start from exactly that image (the tag is then only
# informative), and the label org.opencontainers.image.base.digest says
# which; docs/deployment.md, "The image", says how to find it.
ARG DEBIAN_DIGEST=

# ---- build stage ------------------------------------------------------------
FROM debian:${DEBIAN_TAG}${DEBIAN_DIGEST:+@${DEBIAN_DIGEST}} AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The build dependencies of scripts/install-deps.sh, without the test-only
# ones. Versions follow the Debian 12 point release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      protobuf-c-compiler libprotobuf-c-dev \
      libnng-dev libmbedtls-dev libssl-dev librdkafka-dev liblmdb-dev libjansson-dev libmicrohttpd-dev libpng-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Prefix /usr: the services look for their data files in /usr/share/lunamatch.
# The library goes to /usr/lib, which the dynamic loader searches on every
# architecture.
RUN cmake -S . -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib \
      -DLUNAMATCH_BUILD_TESTS=OFF -DLUNAMATCH_WERROR=ON \
 && cmake --build /build \
 && DESTDIR=/out cmake --install /build

# ---- runtime stage ----------------------------------------------------------
FROM debian:${DEBIAN_TAG}${DEBIAN_DIGEST:+@${DEBIAN_DIGEST}} AS runtime

# Declared again: the global ARGs above reach the FROM lines only.
ARG DEBIAN_TAG
ARG DEBIAN_DIGEST
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="lunamatch" \
      org.opencontainers.image.description="Job-matching backend: Kafka ingest into an LMDB record store, and ranked, explained matches over nng RPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.vendor="lunamatch" \
      org.opencontainers.image.base.name="debian:${DEBIAN_TAG}" \
      org.opencontainers.image.base.digest="${DEBIAN_DIGEST}"

# Runtime libraries only: one package per library the binaries link
# (apt adds what those depend on, such as libzstd1 for librdkafka1).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libjansson4 liblmdb0 libmbedtls14 libmicrohttpd12 libnng1 libpng16-16 libprotobuf-c1 librdkafka1 libssl3 \
 && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged identity: volumes and Kubernetes securityContext
# (runAsUser 10001, fsGroup 10001) refer to these numbers.
RUN groupadd --system --gid 10001 lunamatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/lunamatch \
      --no-create-home --shell /usr/sbin/nologin lunamatch \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/lunamatch

COPY --from=build /out/usr/bin/ /usr/bin/
COPY --from=build /out/usr/share/lunamatch/ /usr/share/lunamatch/

ENV LUNAMATCH_DATA_DIR=/var/lib/lunamatch \
    LUNAMATCH_TAXONOMY_FILE=/usr/share/lunamatch/skills.tsv \
    LUNAMATCH_RATES_FILE=/usr/share/lunamatch/rates.tsv \
    LUNAMATCH_FAIRNESS_FILE=/usr/share/lunamatch/fairness/requirements.tsv \
    LUNAMATCH_GAZETTEER_FILE=/usr/share/lunamatch/geo/cities.tsv \
    LUNAMATCH_MODEL_FILE=/usr/share/lunamatch/model/default.json

USER 10001:10001
WORKDIR /var/lib/lunamatch
VOLUME ["/var/lib/lunamatch"]
# 7700 RPC (match), 7701 HTTP probes and metrics (match), 7702 the same (ingest).
# The services listen on 127.0.0.1 by default, which a published port does not
# reach: set LUNAMATCH_RPC_URL and LUNAMATCH_HTTP_ADDR per container, as
# docker-compose.yml and deploy/k8s do (docs/deployment.md, "The image"). Not
# set here: both services read LUNAMATCH_HTTP_ADDR, each for its own port.
EXPOSE 7700 7701 7702

CMD ["lunamatch-match"]
