"""The react-vite template's Dockerfile: the web app built in a Node stage (NODE_IMAGE: Debian's
nodejs and npm, `ecoctl-test/node:18` from tests/docker/setup.sh, since no registry is reachable),
served by serve.py from the Python image, as a non-root user, on the host network: the page, its
immutable assets, /config.json from the service contract, /healthz, and a clean `docker stop`.

`npm ci` inside the build reaches the npm registry through the host network."""

from __future__ import annotations

import re
import time

import pytest

from ecoctl.service_templates import find_template, render_template
from tests.helpers import free_port

NODE_IMAGE = "ecoctl-test/node:18"
BASE_IMAGE = "ecoctl-test/python:3"


def _engine_problem() -> str | None:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no engine here
        return f"no Docker engine ({type(exc).__name__}): start dockerd or run tests/docker/setup.sh"
    missing = []
    for image in (NODE_IMAGE, BASE_IMAGE):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    return f"test images missing ({', '.join(missing)}): run tests/docker/setup.sh" if missing else None


ENGINE_PROBLEM = _engine_problem()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")]


def test_the_web_image_builds_in_a_node_stage_and_serves(tmp_path):
    import docker
    import httpx

    port = free_port()
    folder = tmp_path / "shop-web"
    render_template(find_template("portfolio-web"), folder, {"service_name": "shop-web", "port": port})
    client = docker.from_env()
    tag = f"ecoctl-test-tpl/shop-web:{int(time.time())}"
    try:
        client.images.build(path=str(folder), tag=tag, rm=True, forcerm=True, network_mode="host",
                            buildargs={"NODE_IMAGE": NODE_IMAGE, "BASE_IMAGE": BASE_IMAGE})
    except docker.errors.BuildError as exc:
        log = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in exc.build_log)
        pytest.fail(f"docker build failed: {exc}\n{log[-4000:]}")
    environment = {"PORT": str(port), "OIDC_ISSUER": "http://127.0.0.1:9000/application/o/demo-shop-web/",
                   "OIDC_CLIENT_ID": "demo-shop-web", "API_URLS": "portfolio=http://127.0.0.1:8000"}
    container = client.containers.run(tag, detach=True, network_mode="host", environment=environment)
    try:
        assert client.images.get(tag).attrs["Config"]["User"] == "65534"
        site = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{site}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, container.logs().decode()[-2000:]
            time.sleep(0.5)
        page = httpx.get(f"{site}/portfolios")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
        script = re.search(r'src="(/assets/[^"]+\.js)"', page.text).group(1)
        assert httpx.get(site + script).headers["cache-control"] == "public, max-age=31536000, immutable"
        config = httpx.get(f"{site}/config.json").json()
        assert (config["client_id"], config["api"], config["title"]) == ("demo-shop-web", "/api/portfolio",
                                                                        "Portfolio Manager")
        container.stop(timeout=10)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 0, container.logs().decode()[-2000:]
    finally:
        container.remove(force=True)
        client.images.remove(tag, force=True)
