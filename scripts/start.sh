#!/usr/bin/env bash
# The main command: installs whatever is missing (scripts/setup.sh), then runs
# the local cluster (nats-server, a coordinator, 2 workers) on the embedded
# default data: pretraining, finetuning, evaluation. Extra flags go to
# `bertfleet cluster`.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/bin/bertfleet" cluster "$@"
