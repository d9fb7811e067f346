"""Issue 28 item 14 through the real CLI: with 1000 services ecoctl writes a 1.3 MB compose.yaml, past
the 1 MiB cap of a file a user hands it, and must still read what it wrote: plan, status,
remove-service, and the swarm runtime, which takes its core services from it."""

from __future__ import annotations

from tests.helpers import docker_engine_problem, free_port, run_ecoctl

SERVICES = 1000


def service_entries(count: int) -> str:
    return "".join(f"  svc{i:04d}:\n    template: python-fastapi\n    port: {20000 + i}\n    pattern: compose\n"
                   f"    redirect_uris:\n      - http://127.0.0.1:{20000 + i}/callback\n" for i in range(count))


def test_compose_yaml_of_1000_services_stays_readable(tmp_path):
    assert run_ecoctl("init", "eco", "--runtime", "docker", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "eco"
    text = (root / "ecosystem.yaml").read_text()  # nothing answers there (other runs share this host)
    (root / "ecosystem.yaml").write_text(text.replace("    port: 9000", f"    port: {free_port()}"))
    with open(root / "ecosystem.yaml", "a") as spec:
        spec.write(service_entries(SERVICES))
    done = run_ecoctl("apply", "--yes", "--only", "compose", cwd=root)
    assert done.returncode == 0, done.stderr
    assert (root / "compose.yaml").stat().st_size > 1 << 20
    plan = run_ecoctl("plan", "--only", "compose", "--detailed-exitcode", cwd=root)
    assert (plan.returncode, plan.stderr) == (0, ""), plan.stderr
    status = run_ecoctl("status", cwd=root)
    assert "larger than" not in status.stderr, status.stderr
    if docker_engine_problem() is None:  # without an engine, status says so (and lists nothing)
        assert "svc0999" in status.stdout, status.stderr
    removed = run_ecoctl("remove-service", "svc0999", "--yes", cwd=root)
    assert "larger than" not in removed.stderr, removed.stderr
    assert "svc0999:" not in (root / "compose.yaml").read_text(), removed.stdout[-3000:] + removed.stderr[-3000:]
    assert "svc0998:" in (root / "compose.yaml").read_text()
    from ecoctl.runtimes.swarm_stack import compose_services

    assert {"postgres", "svc0000", "svc0998"} <= set(compose_services(root / "compose.yaml"))  # the swarm runtime's read


def test_a_compose_yaml_past_8_mib_is_still_refused(tmp_path):
    assert run_ecoctl("init", "eco", "--runtime", "docker", "--without", "web", cwd=tmp_path).returncode == 0
    root = tmp_path / "eco"
    with open(root / "compose.yaml", "a") as compose:
        compose.write("# padding\n" * 900_000)
    plan = run_ecoctl("plan", "--only", "compose", cwd=root)
    assert plan.returncode == 2
    assert plan.stderr.strip() == f"error: {root / 'compose.yaml'}: larger than 8192 KiB: check the path"
