# The bertfleet CPU image for k8s/: Node 20 on Debian 12 (bookworm), OpenBLAS, the
# wasm-blas addon. Two stages: `build` installs the production npm packages and
# compiles the addon with a C toolchain; the runtime stage has neither the
# toolchain nor dev dependencies and runs as user 10001. The GPU image is
# Dockerfile.gpu (same layout). Build from the repository root:
#   docker build -t REGISTRY/bertfleet:0.1.0 .
# .dockerignore keeps local state (node_modules, runs, caches, keys) out of the context.
#
# Base images are pinned by digest (multi-platform index digests of the exact tags).
# They could not be resolved against the registry where this file was written (no
# registry access); each was taken from public repositories that pin the same tag
# to the same digest:
#   node:20.20.2-bookworm       sha256:8f693eaa...: pinned as `node:20.20.2-bookworm@`,
#     `node:20-bookworm@` and `node:20@` (the same image while 20.20.2 was the newest
#     Node 20) in several unrelated public Dockerfiles, one noting it came from
#     `docker pull node:20-bookworm` on 2026-05-29.
#   node:20.20.2-bookworm-slim  sha256:2cf067cf...: pinned as `node:20.20.2-bookworm-slim@`
#     (and `node:20-bookworm-slim@`, `node:20-slim@`) in many public Dockerfiles, and
#     shown in public BuildKit logs resolving docker.io/library/node:20-slim.
# Check before the first production build (`docker buildx imagetools inspect
# node:20.20.2-bookworm-slim`); a wrong digest fails the build, it cannot pull
# another image. To move to a newer Node 20, change tag and digest together, in
# both stages here and in Dockerfile.gpu.
#
# No nats-server here: k8s/ runs the official NATS image. `bertfleet cluster`
# (which starts its own nats-server) is for a machine set up with scripts/setup.sh.

FROM node:20.20.2-bookworm@sha256:8f693eaa7e0a8e71560c9a82b55fd54c2ae920a2ba5d2cde28bac7d1c01c9ba5 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas-dev g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bertfleet
COPY package.json package-lock.json ./
# --omit=dev: no vitest, typescript, playwright. --ignore-scripts: the optional
# @tensorflow/tfjs-node(-gpu) would otherwise download libtensorflow, and they are
# then removed: a CPU image carries no tfjs-node, so the backend is the run config's
# ("wasm-blas" in k8s/base/run-config.json) and nothing else can load.
# The other production packages with install scripts (package-lock.json
# hasInstallScript) need none of them: core-js prints a banner, protobufjs checks
# its CLI's versions, esbuild (under tsx) finds its binary in its optional
# @esbuild/linux-* package without its postinstall.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/@tensorflow/tfjs-node node_modules/@tensorflow/tfjs-node-gpu
# The addon, as scripts/setup.sh builds it (`npm run build:native`: node-gyp with the
# headers of this Node, linked against OpenBLAS).
COPY native/binding.gyp native/binding.gyp
COPY native/src native/src
RUN npm run build:native

FROM node:20.20.2-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0
# libopenblas0: the OpenBLAS shared library the addon links (libopenblas.so.0).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 bertfleet \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bertfleet
WORKDIR /opt/bertfleet
COPY --from=build /opt/bertfleet/node_modules node_modules
COPY --from=build /opt/bertfleet/native/build/Release/wasm_blas.node native/build/Release/wasm_blas.node
# TypeScript sources, run through tsx (a production dependency) rather than compiled
# JavaScript, for one reason: the image then runs exactly the code and the start-up
# path every test runs (bin/bertfleet with tsx's loader), including the compute
# thread, which loads compute-thread.ts through tsx's API (worker/compute-thread-boot.mjs),
# and the files found beside the sources (proto/, web/, the addon). A compiled tree
# would be a second layout that no test exercises. The cost: tsx compiles each module
# once per process start (about a second), cached under /tmp, which k8s/ mounts writable.
# Not in the image: bench/ (`bertfleet bench` needs PyTorch and a checkout), test/.
COPY package.json package-lock.json tsconfig.json ./
COPY bin bin
COPY cli cli
COPY coordinator coordinator
COPY worker worker
COPY shared shared
COPY proto proto
COPY web web
# Non-root, numeric (so the kubelet can check runAsNonRoot); the pods also set
# runAsUser 10001 and a read-only root filesystem (k8s/).
USER 10001:10001
ENTRYPOINT ["/opt/bertfleet/bin/bertfleet"]
