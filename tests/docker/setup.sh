#!/bin/sh
# CI setup for the Docker runtime tests (tests/test_docker_runtime.py), run as root before pytest.
# Idempotent: installs docker.io + debootstrap if missing, starts dockerd if nothing answers, and
# builds (only when absent) a debootstrap base image and the ecoctl-test/* images the tests give
# through `images:`. No registry is reachable: nothing is pulled; Debian's archive serves the builds.
# The base is bootstrapped on a tmpfs, and the images build in parallel (the Go one from the host's Go).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${ECOCTL_DEBIAN_SUITE:-bookworm}
MIRROR=${ECOCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=ecoctl-base/$SUITE:latest
IMAGES="ecoctl-test/postgres:16=postgres ecoctl-test/pgbouncer:1.18=pgbouncer ecoctl-test/redis:7=redis ecoctl-test/caddy:2=caddy ecoctl-test/prometheus:latest=prometheus ecoctl-test/alertmanager:latest=alertmanager ecoctl-test/python:3=python ecoctl-test/go:1.26=go ecoctl-test/node:18=node"
DOCKERD_LOG=/var/log/ecoctl-dockerd.log
WORK=$(mktemp -d /var/tmp/ecoctl-setup.XXXXXX)
T0=$(date +%s)

cleanup() {
    if mountpoint -q "$WORK/root" 2>/dev/null; then umount -l "$WORK/root"; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

say() { echo "setup: $* ($(($(date +%s) - T0))s)"; }
fail() { # fail MESSAGE LOG
    echo "setup: $1; last lines of $2:" >&2
    tail -n 20 "$2" >&2
    exit 1
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >"$WORK/apt.log" 2>&1 || fail "apt-get install $* failed" "$WORK/apt.log"
}

# 1. Packages.
missing=""
command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
# shellcheck disable=SC2086
[ -z "$missing" ] || { apt_install $missing; say "installed$missing"; }

# 2. The engine.
if ! docker info >/dev/null 2>&1; then
    if [ -n "${DOCKER_HOST:-}" ]; then
        echo "setup: DOCKER_HOST=$DOCKER_HOST does not answer; unset it to start a local dockerd" >&2
        exit 1
    fi
    nohup dockerd >>"$DOCKERD_LOG" 2>&1 &
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -le 60 ] || fail "dockerd did not answer within 60s" "$DOCKERD_LOG"
        sleep 1
    done
    say "dockerd started (log: $DOCKERD_LOG)"
fi

# 3. The base image: debootstrap on a tmpfs (dpkg's fsyncs cost minutes on a disk), then import.
if ! have_image "$BASE"; then
    mkdir -p "$WORK/root"
    mount -t tmpfs -o size=2g tmpfs "$WORK/root" 2>/dev/null || true
    debootstrap --variant=minbase "$SUITE" "$WORK/root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || fail "debootstrap $SUITE failed" "$WORK/debootstrap.log"
    rm -rf "$WORK"/root/var/cache/apt/archives/*.deb "$WORK"/root/var/lib/apt/lists/*
    # Image builds run dpkg too: skip its fsyncs there as well (throwaway test images).
    echo force-unsafe-io >"$WORK/root/etc/dpkg/dpkg.cfg.d/ecoctl-unsafe-io"
    tar -C "$WORK/root" -c . | docker import - "$BASE" >/dev/null
    say "base image $BASE imported"
fi

# 4. The images, in parallel. The python one also gets the host's extra CA certificates, so
# `pip install` works behind a TLS-inspecting proxy as it does on the host.
pids=""
for entry in $IMAGES; do
    tag=${entry%%=*} dir=${entry#*=}
    have_image "$tag" && continue
    context="$WORK/build-$dir"
    mkdir -p "$context/extra-ca"
    cp -r "$HERE/$dir/." "$context/"
    if [ "$dir" = go ]; then  # the host's toolchain (Debian's golang is too old); none: no Go image
        goroot=$(go env GOROOT 2>/dev/null) || { say "no go on PATH: skipping ecoctl-test/go"; continue; }
        mkdir -p "$context/go"
        tar -C "$goroot" --exclude=./test --exclude=./doc --exclude=./api -c . | tar -C "$context/go" -x
    fi
    for cert in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$cert" ] && cp "$cert" "$context/extra-ca/"
    done
    DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE="$BASE" -t "$tag" "$context" \
        >"$WORK/build-$dir.log" 2>&1 &
    pids="$pids $!:$dir"
done
for entry in $pids; do
    wait "${entry%%:*}" || fail "building tests/docker/${entry#*:} failed" "$WORK/build-${entry#*:}.log"
done
[ -z "$pids" ] || say "images built:$(for entry in $pids; do printf ' %s' "${entry#*:}"; done)"
say "done"
