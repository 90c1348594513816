# The bertfleet CPU image for k8s/: Node 20 on Debian 12 (bookworm), OpenBLAS, the
# wasm-blas addon. Two stages: `build` installs the production npm packages and
# compiles the addon with a C toolchain; the runtime stage has neither the
# toolchain nor dev dependencies and runs as user 10001.
#
# Base images are pinned by exact version tag. Their digests are NOT pinned: they
# could not be looked up where this file was written (no registry access). Before
# building for production, resolve them (`docker buildx imagetools inspect
# node:20.20.2-bookworm-slim`) and write `FROM node:20.20.2-bookworm-slim@sha256:...`
# in both stages (k8s/README.md, "Build and push the image").
#
# No nats-server here: k8s/ runs the official NATS image. `bertfleet cluster`
# (which starts its own nats-server) is for a machine set up with scripts/setup.sh.

FROM node:20.20.2-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas-dev g++ make python3 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/bertfleet
COPY package.json package-lock.json ./
# --omit=dev: no vitest, typescript, playwright. --ignore-scripts: the optional
# @tensorflow/tfjs-node(-gpu) would otherwise download libtensorflow, and they are
# then removed: a CPU image must not carry tfjs-node, or `--backend auto` could pick
# it on some pods and not others (backend fingerprint mismatch at registration).
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

FROM node:20.20.2-bookworm-slim
# libopenblas0: the OpenBLAS shared library the addon links (libopenblas.so.0).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libopenblas0 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 bertfleet \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bertfleet
WORKDIR /opt/bertfleet
COPY --from=build /opt/bertfleet/node_modules node_modules
COPY --from=build /opt/bertfleet/native/build/Release/wasm_blas.node native/build/Release/wasm_blas.node
# TypeScript sources, run through tsx at run time (a production dependency):
# bin/bertfleet starts node with tsx's loader, and the code is never compiled to
# JavaScript. tsx writes its compile cache under /tmp, which k8s/ mounts writable.
COPY package.json package-lock.json tsconfig.json ./
COPY bin bin
COPY cli cli
COPY coordinator coordinator
COPY worker worker
COPY shared shared
COPY proto proto
COPY web web
# Non-root; the pods also set runAsUser 10001 and a read-only root filesystem (k8s/).
USER 10001:10001
ENTRYPOINT ["/opt/bertfleet/bin/bertfleet"]
