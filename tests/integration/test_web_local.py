"""The portfolio web app under the local runtime, through the real CLI: `add-service web --template
portfolio-web`, then `up` says what to install where npm is missing, builds it (npm ci + vite build)
once per change of its sources, serves it under supervisord (hashed assets immutable, pages
no-cache, a Content-Security-Policy, the single-page fallback) and prints its URL; `status` shows it."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.helpers import init_local, run_ecoctl

pytestmark = pytest.mark.skipif(shutil.which("npm") is None,
                                reason="npm is not installed: tests/run.sh installs Debian's nodejs and npm")


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    root, ports = init_local(tmp_path_factory.mktemp("web-local"), "web")
    added = run_ecoctl("add-service", "web", "--template", "portfolio-web", "--port", str(ports["web"]),
                       "--no-apply", cwd=root)
    try:
        assert added.returncode == 0, added.stderr
        yield root, ports
    finally:
        run_ecoctl("down", "--volumes", "--yes", cwd=root, timeout=120)


def path_without(folder: Path, *programs: str) -> str:
    """PATH as it is, less PROGRAMS: a folder of links to everything else on it (readable by the
    programs' user, who runs them)."""
    folder.mkdir(mode=0o755)
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            link = folder / name
            if name not in programs and not link.exists():
                link.symlink_to(os.path.join(directory, name))
    return f"{Path(sys.executable).parent}{os.pathsep}{folder}"


def test_up_without_npm_skips_the_web_app_and_says_what_to_install(web):
    """portfolio-web is `optional`: without Node.js the rest of the stack comes up (exit 0), and
    up, status and logs say what to install, as for Redis."""
    root, _ = web
    links = Path(tempfile.mkdtemp(prefix="ecoctl-path-"))
    links.chmod(0o755)
    why = ("building web needs `npm`, which is not on PATH: apt-get install nodejs npm (Node.js 18 or later), "
           "then run `ecoctl up` again")
    try:
        env = {"PATH": path_without(links / "bin", "npm", "npx", "node")}
        up = run_ecoctl("up", cwd=root, timeout=600, env=env)
        status = run_ecoctl("status", cwd=root, env=env)
        logs = run_ecoctl("logs", "web", cwd=root, env=env)
        doctor = run_ecoctl("doctor", cwd=root, env=env)
    finally:
        shutil.rmtree(links)
    assert up.returncode == 0, up.stderr[-3000:]
    assert f"web is not started: {why}" in up.stderr and f"web is not running: {why}" in up.stdout
    assert not re.search(r"^web\s+http://", up.stdout, re.M) and re.search(r"^portfolio\s+http://\S+\s+healthy",
                                                                          up.stdout, re.M), up.stdout
    assert re.search(rf"^web\s+absent\s+none\s+.*{re.escape(why[:40])}", status.stdout, re.M), status.stdout
    assert logs.returncode == 1 and "web does not run here, so it has no logs: building web needs `npm`" in logs.stderr
    assert re.search(r"^skip npm .*not found on PATH: the local runtime runs without web", doctor.stdout, re.M)
    assert "apt-get install nodejs npm (Node.js 18 or later)" in doctor.stdout, doctor.stdout
    assert "Traceback" not in up.stderr + status.stderr + logs.stderr + doctor.stderr


def test_up_builds_serves_and_prints_the_web_app(web):
    root, ports = web
    up = run_ecoctl("up", "--json", cwd=root, timeout=900)
    assert up.returncode == 0, up.stderr[-3000:]
    services = {s["name"]: s for s in json.loads(up.stdout)["services"]}
    site = f"http://127.0.0.1:{ports['web']}"
    assert services["web"]["health"] == "healthy" and services["web"]["url"] == site
    page = httpx.get(f"{site}/portfolios/3")  # an app route: the page itself
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        answer = httpx.get(site + asset)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{site}/assets/nothing-here.js").status_code == 404
    assert httpx.get(f"{site}/config.json").json()["title"] == "Portfolio Manager"
    status = run_ecoctl("status", cwd=root)
    assert re.search(rf"web\s+running\s+healthy\s+{re.escape(site)}\s+build: `npm ci`", status.stdout), status.stdout


def test_the_build_runs_again_only_when_a_source_changes(web):
    """Built once per host and change of its inputs (the build cache, `shared: node-build`): an
    `up` with nothing changed builds nothing; a changed screen (text never built on this host) is
    built, and served."""
    import uuid

    root, ports = web
    again = run_ecoctl("up", cwd=root, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "building web" not in again.stdout + again.stderr  # nothing changed: no build
    text = f"Every portfolio has one currency ({uuid.uuid4()})."
    screen = root / "services" / "web" / "src" / "screens" / "Portfolios.tsx"
    screen.write_text(screen.read_text().replace("Each portfolio keeps its holdings in one currency.", text))
    rebuilt = run_ecoctl("up", cwd=root, timeout=600)
    assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
    assert "building web (2 step(s)" in rebuilt.stderr, rebuilt.stderr[-2000:]
    log = (root / ".ecoctl" / "logs" / "web-build.log").read_text()
    assert "$ npm ci" in log and "/builds/." in log  # built beside its cache entry, then renamed into place
    page = httpx.get(f"http://127.0.0.1:{ports['web']}/")
    script = re.search(r'src="(/assets/[^"]+\.js)"', page.text).group(1)
    assert text in httpx.get(f"http://127.0.0.1:{ports['web']}{script}").text
    from ecoctl.runtimes import get_runtime
    from ecoctl.workspace import Workspace

    cached = Path(os.path.realpath(get_runtime(Workspace(root)).build_dir("web")))
    assert cached.parent.name == "builds", cached  # the host's build cache: the entry of its key
    if os.geteuid() == 0:  # built by the programs' user, never by root
        assert 0 not in {os.stat(cached).st_uid, os.stat(cached / "dist" / "index.html").st_uid}


def test_removing_the_web_app_touches_no_database_and_it_comes_back(web):
    """The web app (portfolio-web is `optional`) may be removed and added again; it had nothing in
    PostgreSQL, so its removal plans nothing there."""
    root, ports = web
    removed = run_ecoctl("remove-service", "web", "--yes", cwd=root, timeout=300)
    assert removed.returncode == 0, removed.stderr[-2000:]
    assert "role" not in removed.stdout and "database" not in removed.stdout, removed.stdout
    assert not re.search(r"^web\s", run_ecoctl("status", cwd=root).stdout, re.M)
    again = run_ecoctl("add-service", "web", "--template", "portfolio-web", "--port", str(ports["web"]), cwd=root,
                       timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert httpx.get(f"http://127.0.0.1:{ports['web']}/healthz").status_code == 200
