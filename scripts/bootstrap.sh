#!/usr/bin/env bash
# Installs what peerline needs on a Debian machine: Debian packages (as root), a
# virtual environment in .venv and the package itself. Cheap when done already.
# Usage: scripts/bootstrap.sh demo|test
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
purpose=${1:-demo}

# What the demo needs: a Python to build the venv from, and the kernel's tools for the lab.
deb_demo=(python3 python3-venv python3-dev gcc iproute2 nftables iptables procps kmod ca-certificates)
# What the tests add: the real peers they talk to.
deb_test=(coturn sip-tester baresip kamailio chromium libssl-dev)

packages=("${deb_demo[@]}")
[ "$purpose" = test ] && packages+=("${deb_test[@]}")

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts coturn's service on install on some releases: we run our own.
    if command -v systemctl >/dev/null && systemctl is-active --quiet coturn 2>/dev/null; then
      systemctl stop coturn || true
    fi
  else
    echo "bootstrap: not root or no apt-get; missing Debian packages: ${missing[*]} (tests that need them will skip)" >&2
  fi
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null &&
     "$candidate" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "bootstrap: need Python >= 3.11 with venv" >&2; exit 1; }

venv="$root/.venv"
stamp="$venv/.peerline-stamp"
want=$(cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh" | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ]; then
  echo "bootstrap: creating $venv"
  "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing peerline and its development tools into .venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -e "$root[dev]"
  echo "$want" > "$stamp"
fi

# The tests' SIP-over-WebSocket phone: JsSIP under Node.js, from the npm registry,
# at the versions package-lock.json pins (skipped, and so are its tests, without npm).
jssip="$root/tests/interop/jssip"
if [ "$purpose" = test ] && [ -f "$jssip/package-lock.json" ]; then
  if ! command -v npm >/dev/null; then
    echo "bootstrap: no npm; the SIP-over-WebSocket tests (JsSIP) will skip" >&2
  elif ! cmp -s "$jssip/package-lock.json" "$jssip/node_modules/.peerline-lock" 2>/dev/null; then
    echo "bootstrap: installing JsSIP for the SIP-over-WebSocket tests (npm ci)"
    npm ci --prefix "$jssip" --no-audit --no-fund --silent
    cp "$jssip/package-lock.json" "$jssip/node_modules/.peerline-lock"
  fi
fi
