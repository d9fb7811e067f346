#!/bin/sh
# CI setup for the Docker runtime tests (tests/test_docker_runtime.py), run as root before pytest.
# Idempotent: installs docker.io + debootstrap if missing, starts dockerd if nothing answers, and
# builds (only when absent) a debootstrap base image and the ecoctl-test/* images the tests give
# through `images:`. No registry is reachable: nothing is pulled; Debian's archive serves the builds.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${ECOCTL_DEBIAN_SUITE:-bookworm}
MIRROR=${ECOCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=ecoctl-base/$SUITE:latest
LOG=/var/log/ecoctl-dockerd.log
T0=$(date +%s)

step() { # step NAME: print the time the previous step took
    now=$(date +%s)
    [ -n "${STEP:-}" ] && echo "setup: $STEP ($((now - STEP_T))s)"
    STEP=$1 STEP_T=$now
}

step "packages"
missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

step "dockerd"
if ! docker info >/dev/null 2>&1; then
    if [ -n "${DOCKER_HOST:-}" ]; then
        echo "setup: DOCKER_HOST=$DOCKER_HOST does not answer; unset it to start a local dockerd" >&2
        exit 1
    fi
    nohup dockerd >>"$LOG" 2>&1 &
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt 60 ]; then
            echo "setup: dockerd did not answer within 60s; last lines of $LOG:" >&2
            tail -n 20 "$LOG" >&2
            exit 1
        fi
        sleep 1
    done
fi

step "base image $BASE"
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    root=$(mktemp -d /var/tmp/ecoctl-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >/var/tmp/ecoctl-debootstrap.log 2>&1; then
        echo "setup: debootstrap failed; last lines of /var/tmp/ecoctl-debootstrap.log:" >&2
        tail -n 20 /var/tmp/ecoctl-debootstrap.log >&2
        exit 1
    fi
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | docker import - "$BASE" >/dev/null
    rm -rf "$root"
    trap - EXIT
fi

# Each image: its own build context; the python one also gets the host's extra CA certificates,
# so `pip install` works behind a TLS-inspecting proxy as it does on the host.
build() { # build TAG DIR
    tag=$1 dir=$2
    step "image $tag"
    docker image inspect "$tag" >/dev/null 2>&1 && return 0
    context=$(mktemp -d /var/tmp/ecoctl-build.XXXXXX)
    trap 'rm -rf "$context"' EXIT
    cp -r "$HERE/$dir/." "$context/"
    mkdir -p "$context/extra-ca"
    for cert in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$cert" ] && cp "$cert" "$context/extra-ca/"
    done
    DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE="$BASE" -t "$tag" "$context" >/dev/null
    rm -rf "$context"
    trap - EXIT
}

build ecoctl-test/postgres:16 postgres
build ecoctl-test/redis:7 redis
build ecoctl-test/prometheus:latest prometheus
build ecoctl-test/python:3 python
step "done"
echo "setup: total $(($(date +%s) - T0))s"
