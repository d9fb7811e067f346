#!/usr/bin/env bash
# The fresh-machine check: the README's test command (`bash tests/run.sh`) on a clean clone of this
# repository's committed HEAD (and ../shared beside it, as CI has), inside a new container made from
# the Debian base image tests/docker/setup.sh builds. The container has what a fresh machine of this
# kind has and nothing installed by hand: Debian's own python3, git, the CA certificates this host
# trusts, Go's toolchain at /usr/local/go (read-only from this host, where these machines have it),
# and a minimal PATH without it; root there may read other users' /proc entries (CAP_SYS_PTRACE),
# manage network namespaces (`ip netns`: CAP_SYS_ADMIN) and the firewall (`nft -c` reads the
# kernel's ruleset: CAP_NET_ADMIN), as root on the machine may; all of it inside the container's own
# network namespace. Everything else (prometheus, redis, the venv, uv, the test extra)
# is installed by tests/run.sh itself. Run it as root before you stop:
#   bash tests/fresh-machine.sh [pytest args...]     # default: the whole suite
# It cannot run the Docker tests (no engine inside the container: Docker-in-Docker is not set up),
# so ECOCTL_TEST_DOCKER=0 skips tests/docker/setup.sh and those tests skip, saying why. The clone,
# its venv and the container are removed at the end; pytest's exit code is this script's.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
shared=$(cd .. && pwd)/shared
image=ecoctl-fresh/bookworm:latest

bash tests/docker/setup.sh >&2  # the engine and the debootstrap base image
if ! docker image inspect "$image" >/dev/null 2>&1; then
  context=$(mktemp -d /var/tmp/ecoctl-fresh-image.XXXXXX)
  trap 'rm -rf "$context"' EXIT
  mkdir "$context/extra-ca"
  for cert in /usr/local/share/ca-certificates/*.crt; do [ -f "$cert" ] && cp "$cert" "$context/extra-ca/"; done
  cat >"$context/Dockerfile" <<'EOF'
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 git ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY extra-ca/ /usr/local/share/ca-certificates/
RUN update-ca-certificates >/dev/null 2>&1 \
 && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >/etc/pip.conf
EOF
  DOCKER_BUILDKIT=0 docker build -q --network host --build-arg BASE=ecoctl-base/bookworm:latest \
    -t "$image" "$context" >/dev/null
  rm -rf "$context"
  trap - EXIT
fi

work=$(mktemp -d /var/tmp/ecoctl-fresh.XXXXXX)
chmod 0755 "$work"
name=ecoctl-fresh-$$
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git clone -q "$repo" "$work/main"
[ -d "$shared" ] && cp -r "$shared" "$work/shared"
echo "fresh-machine: $(git -C "$work/main" log -1 --format='%h %s' | cut -c1-100)" >&2

go_mount=()
[ -d /usr/local/go ] && go_mount=(-v /usr/local/go:/usr/local/go:ro)
set +e
docker run --name "$name" --rm --shm-size 1g --cap-add SYS_PTRACE --cap-add SYS_ADMIN --cap-add NET_ADMIN "${go_mount[@]}" -v "$work:/work" -w /work/main \
  -e ECOCTL_TEST_DOCKER=0 "$image" \
  env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
  ECOCTL_TEST_DOCKER=0 bash tests/run.sh "$@"
status=$?
set -e
echo "fresh-machine: tests/run.sh exited $status" >&2
exit "$status"
