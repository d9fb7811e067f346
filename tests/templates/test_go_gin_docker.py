"""The go-gin template's Dockerfile: built with BUILD_IMAGE/BASE_IMAGE overridden by the locally built
images (tests/docker/setup.sh: `ecoctl-test/go:1.26` holds the host's Go; the final stage is the bare
debootstrap base), run on the host network against the PostgreSQL fixture: /healthz 200, the
image's own `healthcheck` subcommand passes, it runs as a non-root user, `docker stop` exits 0.

`go mod download` inside the build reaches the module proxy through the host network."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from go_service import SERVICE, Keys, ServiceDatabase, render, service_env  # noqa: E402

BUILD_IMAGE = "ecoctl-test/go:1.26"
BASE_IMAGE = "ecoctl-base/bookworm:latest"


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        return f"no Docker engine ({type(exc).__name__}): start dockerd or run tests/docker/setup.sh"
    missing = [image for image in (BUILD_IMAGE, BASE_IMAGE) if not _has_image(client, image)]
    if missing:
        return f"test images missing ({', '.join(missing)}): run tests/docker/setup.sh"
    return None


def _has_image(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def build(service_dir: Path, tag: str, network: str) -> None:
    """The Dockerfile built as ecoctl builds it (BuildKit through compose's builder); a failure shows
    the builder's last lines."""
    from ecoctl.clients.docker import build_image
    from ecoctl.errors import EcoctlError

    lines: list[str] = []
    try:
        build_image(service_dir, {"BUILD_IMAGE": BUILD_IMAGE, "BASE_IMAGE": BASE_IMAGE}, tag, lines.append,
                    network=network)
    except EcoctlError as exc:
        pytest.fail(f"docker build failed: {exc}\n" + "\n".join(lines[-60:]))


ENGINE_PROBLEM = _engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


def test_image_builds_from_local_images_and_serves(tmp_path, pg):
    import docker
    import httpx

    from tests.helpers import free_port

    service_dir = render(tmp_path / SERVICE)
    client = docker.from_env()
    tag = f"ecoctl-test-tpl/{SERVICE}-go:{int(time.time())}"
    build(service_dir, tag, network="host")
    database = ServiceDatabase(pg, "tpl_go_docker_db", "tpl_go_docker_user").create()
    keys = Keys(tmp_path)
    port = free_port()
    env = service_env(database.env, port, {"OIDC_JWKS_URL": keys.url})
    env.pop("PATH"), env.pop("HOME")
    container = client.containers.run(tag, detach=True, network_mode="host", environment=env)
    try:
        image = client.images.get(tag)
        assert image.attrs["Config"]["User"] == "10001:10001"
        assert image.attrs["Config"]["Healthcheck"]["Test"][-1] == "healthcheck"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"{base}/healthz", timeout=5)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            container.reload()
            assert container.status == "running", container.logs().decode()[-3000:]
            assert time.monotonic() < deadline, f"/healthz never 200: {container.logs().decode()[-3000:]}"
            time.sleep(0.2)
        assert response.json()["database"] == "ok"
        auth = {"Authorization": f"Bearer {keys.token()}"}
        assert httpx.get(f"{base}/items", headers=auth).status_code == 200
        assert httpx.get(f"{base}/items").status_code == 401
        code, output = container.exec_run([f"/usr/local/bin/{SERVICE}", "healthcheck"])
        assert code == 0, output.decode()
        code, output = container.exec_run(["id", "-u"])
        assert code != 0 or output.decode().strip() == "10001"
        container.stop(timeout=20)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, container.logs().decode()[-3000:]
    finally:
        container.remove(force=True)
        keys.close()
        database.drop()
        client.images.remove(tag, force=True, noprune=False)


def test_a_second_service_builds_from_the_engines_module_cache_without_a_network(tmp_path):
    """Every go-gin service one engine builds shares Go's module cache (a BuildKit cache mount): once
    one service's build has downloaded the template's modules, another service (its own go.mod, so no
    layer of the first applies) builds with no network at all."""
    import docker

    client = docker.from_env()
    stamp = int(time.time())
    first = f"ecoctl-test-tpl/cache-first:{stamp}"
    second = f"ecoctl-test-tpl/cache-second:{stamp}"
    try:
        build(render(tmp_path / "first", service="cachefirst"), first, network="host")
        build(render(tmp_path / "second", service="cachesecond"), second, network="none")
        assert client.images.get(second).attrs["Config"]["Entrypoint"] == ["/usr/local/bin/cachesecond"]
    finally:
        for tag in (first, second):
            try:
                client.images.remove(tag, force=True, noprune=False)
            except docker.errors.ImageNotFound:
                pass


def test_the_swarm_runtime_builds_a_go_gin_service_from_its_templates_build_args(tmp_path):
    """Swarm builds each service's image itself (swarm ignores `build:`): with the template's declared
    build args (BUILD_IMAGE from `images: go`, BASE_IMAGE from `images: base`), as compose does."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.runtimes.swarm import SwarmRuntime
    from ecoctl.workspace import Workspace
    from tests.helpers import run_ecoctl

    root = tmp_path / "eco"
    init_ecosystem(root, runtime="swarm", without=("web",))
    name = f"sb{int(time.time())}"

    def configure(document):
        document["name"] = name
        document["images"] = {**(document.get("images") or {}), "go": BUILD_IMAGE, "base": BASE_IMAGE}

    Workspace(root).ecosystem_file.update(configure)
    added = run_ecoctl("add-service", "rewards", "--template", "go-gin", "--no-apply", cwd=root)
    assert added.returncode == 0, added.stderr
    runtime = SwarmRuntime(Workspace(root))
    try:
        tag = runtime.image_for("rewards")
        image = runtime.client.images.get(tag)
        assert tag.startswith(f"{name}/rewards:") and image.attrs["Config"]["User"] == "10001:10001"
        assert image.attrs["Config"]["Entrypoint"] == ["/usr/local/bin/rewards"]
        assert image.tags == [tag]  # the build's own tag is gone
        assert "$ docker build services/rewards" in (root / ".ecoctl" / "logs" / "swarm-build.log").read_text()
    finally:
        for image in runtime.client.images.list(name=f"{name}/*"):
            for image_tag in image.tags:
                runtime.client.images.remove(image_tag, force=True)
        runtime.close()
