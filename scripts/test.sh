#!/usr/bin/env bash
# Installs everything missing, then runs the whole suite: lint, types, tests.
# Extra arguments go to pytest (e.g. `scripts/test.sh tests/unit -x`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/bootstrap.sh" test
cd "$root"
venv="$root/.venv/bin"
echo "== ruff"; "$venv/ruff" check src tests bench; "$venv/ruff" format --check src tests bench
echo "== mypy"; "$venv/mypy"
echo "== pytest"; exec "$venv/python" -m pytest "$@"
