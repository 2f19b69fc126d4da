#!/usr/bin/env bash
# Installs everything missing, then runs `peerline demo` (pass its options after).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh" demo
exec "$root/.venv/bin/peerline" demo "$@"
