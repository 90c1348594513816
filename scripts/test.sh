#!/usr/bin/env bash
# The test command: installs whatever is missing (scripts/setup.sh), type-checks,
# then runs every test (unit and integration, real nats-server and gRPC on
# loopback) and ends with one line "N passed, N failed".
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
npx tsc --noEmit -p tsconfig.json
report="$(mktemp -t bertfleet-vitest-XXXXXX.json)"
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + r.numTodoTests;
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
rm -f "$report"
exit "$status"
