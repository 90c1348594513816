#!/usr/bin/env bash
# Installs whatever bertfleet needs and is missing, on Debian 12 with Node 20:
# Debian packages (OpenBLAS headers, nats-server, a C toolchain), the npm
# packages from package-lock.json, and the native OpenBLAS addon. Idempotent:
# a second run does nothing but check.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"

say() { printf 'setup: %s\n' "$*" >&2; }

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$node_major" -lt 20 ] || [ "$node_major" -gt 22 ]; then
  say "Node.js 20 (or 22) is required, found $(node --version 2>/dev/null || echo none)"
  exit 1
fi

# Debian packages: OpenBLAS for the accelerated CPU backend, nats-server for the
# control plane, a compiler for the addon, chromium for the browser tests
# (test/browser, driven by playwright-core).
debs=(libopenblas-dev nats-server g++ make python3 chromium)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages, at the versions in package-lock.json. tfjs-node and tfjs-node-gpu
# are optional: their install downloads libtensorflow and fails offline, and npm
# carries on. (`npm install`, not `npm ci`: npm 11's ci refuses this lock file for
# a Windows-only optional dependency of vite that the lock leaves out on Linux.)
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
fi

# The OpenBLAS addon, rebuilt when its sources changed.
addon=native/build/Release/wasm_blas.node
if [ ! -f "$addon" ] || [ -n "$(find native/src native/binding.gyp -newer "$addon" 2>/dev/null | head -n 1)" ]; then
  say "building the OpenBLAS addon"
  npm run --silent build:native >/dev/null
fi
say "ready"
