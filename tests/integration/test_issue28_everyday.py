"""Issue 28, the newcomer's path through the real CLI on the local runtime, with Redis and Prometheus
hidden from PATH: the README's commands in order (ecoctl on PATH as its activate step puts it; both
add-service examples: the second takes the next free port and says so), a Go build's live line on a
terminal and its output in the log, every skipped component said in up/status/logs/doctor, no
runtime switch while the stack runs, a removed running service added again, a template error that
records nothing, `token --user` of someone not a development user refused."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers import EDGE_PORT_LINES, free_port

HIDDEN = ("redis-server", "prometheus", "promtool")
README = Path(__file__).resolve().parents[2] / "README.md"


def path_without(folder: Path, hidden: tuple[str, ...]) -> str:
    """A PATH holding every program of this one but HIDDEN (links, first one of each name wins)."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            target = folder / entry.name
            if entry.name not in hidden and not target.exists() and os.access(entry.path, os.X_OK):
                target.symlink_to(entry.path)
    return f"{Path(sys.executable).parent}{os.pathsep}{folder}"


def readme_commands() -> list[str]:
    """The README's first command (its install aside: the test's venv is installed) and its
    next block, split at `&&`."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    first = [part.strip() for part in blocks[0].strip().split("&&")]
    assert first[:3] == ["python3 -m venv .venv", ".venv/bin/pip install -q .", ". .venv/bin/activate"]
    examples = [part.split("#")[0].strip() for part in blocks[1].strip().split("&&")]
    return first[3:] + examples


class Eco:
    def __init__(self, folder: Path, env: dict):
        self.folder, self.env, self.root = folder, env, folder / "demo"
        self.ran: dict[str, subprocess.CompletedProcess] = {}
        self.web_port = 3000

    def sh(self, command: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-c", command], cwd=cwd or self.root, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.sh(shlex.join(["ecoctl", *args]), timeout=timeout)


@pytest.fixture(scope="module")
def eco(tmp_path_factory):
    folder = tmp_path_factory.mktemp("issue28")
    env = {**os.environ, "PATH": path_without(folder / "bin", HIDDEN) + os.pathsep + "/usr/local/go/bin"}
    eco = Eco(folder, env)
    for command in readme_commands():
        if command == "cd demo":
            text = (eco.root / "ecosystem.yaml").read_text()
            for setting in ("    port: 5432", "    port: 6379", "    port: 9000", "prometheus_port: 9090",
                            "    port: 8000", *EDGE_PORT_LINES):
                text = text.replace(setting, f"{setting.rsplit(' ', 1)[0]} {free_port()}")
            eco.web_port = free_port()  # the web app init ships, and its redirect URI
            text = text.replace("    port: 3000", f"    port: {eco.web_port}").replace(
                "http://127.0.0.1:3000/", f"http://127.0.0.1:{eco.web_port}/")
            (eco.root / "ecosystem.yaml").write_text(text)  # the README's ports: other runs share this host
            continue
        cwd = folder if command.startswith("ecoctl init") else eco.root
        eco.ran[command] = eco.sh(command + " --runtime local" if command.startswith("ecoctl init") else command, cwd)
        if eco.ran[command].returncode != 0:
            break
    yield eco
    eco.run("down", "--volumes", "--yes")


def test_the_readme_commands_all_exit_0(eco):
    assert list(eco.ran) == [command for command in readme_commands() if command != "cd demo"], [r.stderr[-1500:] for r in eco.ran.values()]
    for command, result in eco.ran.items():
        assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    assert "Next: cd demo && ecoctl up" in eco.ran["ecoctl init demo"].stdout  # a command that works here


def test_up_prints_the_web_app_init_shipped_and_status_shows_it(eco):
    assert "+ services/web: the web service's code, from its template" in eco.ran["ecoctl init demo"].stdout
    site = f"http://127.0.0.1:{eco.web_port}"
    up = eco.ran["ecoctl up"].stdout
    assert re.search(rf"^web\s+{re.escape(site)}\s+healthy\s+sign in as dev: `ecoctl secrets password dev`", up,
                     re.M), up
    assert re.search(rf"^web\s+running\s+healthy\s+{re.escape(site)}", eco.run("status").stdout, re.M)


def test_the_second_add_service_takes_the_next_free_port_and_says_so(eco):
    from ecoctl.model import EcosystemFile

    services = EcosystemFile.load(eco.root / "ecosystem.yaml").model.services
    rewards = services["rewards"].port
    assert rewards != services["loyalty"].port
    assert f"port {rewards}: the template's port 8080 is taken" in eco.ran["ecoctl add-service rewards --template go-gin"].stdout


def test_a_go_build_keeps_its_output_in_the_log_and_status_names_the_build(eco):
    log = (eco.root / ".ecoctl/logs/rewards-build.log").read_text()
    assert log.startswith("$ go build -v "), log[-2000:]
    added = eco.ran["ecoctl add-service rewards --template go-gin"].stdout
    assert "building rewards:" not in added  # off a terminal: the log holds the tool's output
    row = next(line for line in eco.run("status").stdout.splitlines() if line.startswith("rewards"))
    assert "build: `go build`" in row and "environment: uv" not in row


def test_a_build_shows_one_live_line_on_a_terminal(eco):
    (eco.root / "services/rewards/main.go").write_text(
        (eco.root / "services/rewards/main.go").read_text() + f"\n// {uuid.uuid4()}: compiled anew\n")
    command = shlex.join(["script", "-qec", "ecoctl up", "/dev/null"])
    result = eco.sh(command)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "building rewards: rewards" in result.stdout  # go -v's own line, in the live line
    log = (eco.root / ".ecoctl/logs/rewards-build.log").read_text()
    assert re.search(r"^rewards$", log, re.M), log[-2000:]  # and in the log


def test_skipped_components_say_why_and_how_in_up_status_logs_doctor(eco):
    progress, up = eco.ran["ecoctl up"].stderr, eco.ran["ecoctl up"].stdout
    assert "redis is not started: redis-server not found on PATH: apt-get install redis-server" in progress
    assert "redis is not running: redis-server not found on PATH: apt-get install redis-server" in up
    assert "prometheus is not running: prometheus not found on PATH: apt-get install prometheus" in up
    assert "REDIS_PASSWORD" not in up and not re.search(r"^redis\s+redis://", up, re.M)  # no credential, no address
    status = eco.run("status").stdout
    assert re.search(r"^redis\s+absent.*redis-server not found on PATH: apt-get install redis-server", status, re.M)
    logs = eco.run("logs", "redis")
    assert logs.returncode == 1 and logs.stderr.strip() == (
        "error: redis does not run here, so it has no logs: redis-server not found on PATH: "
        "apt-get install redis-server")
    doctor = eco.run("doctor").stdout
    assert re.search(r"^skip redis-server .*not found on PATH.*apt-get install redis-server", doctor, re.M)


def test_init_refuses_to_switch_runtimes_while_the_stack_runs(eco):
    result = eco.run("init", "--force", "--runtime", "docker", ".")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: the local runtime runs this ecosystem's stack: stop it with "
                                     "`ecoctl down` first, then switch to docker")
    assert "runtime: local" in (eco.root / "ecosystem.yaml").read_text()


def test_a_removed_running_service_added_again_starts(eco):
    assert eco.run("remove-service", "loyalty").returncode == 0
    again = eco.run("add-service", "loyalty")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "loyalty is healthy" in again.stdout
    assert eco.run("restart", "loyalty").returncode == 0


def test_a_template_error_records_nothing(eco, tmp_path):
    broken = tmp_path / "broken"
    (broken / "files").mkdir(parents=True)
    (broken / "template.yaml").write_text("name: broken\nversion: 1\ndefault_port: 8090\n"
                                          "variables:\n  service_name: {required: true}\n")
    (broken / "files/app.txt.j2").write_text("{{ nope( }}\n")
    result = eco.run("add-service", "bad", "--template", str(broken))
    assert result.returncode == 2 and result.stderr.startswith("error: template broken: app.txt.j2")
    assert "bad:" not in (eco.root / "ecosystem.yaml").read_text()
    assert eco.run("plan", "--detailed-exitcode").returncode == 0


def test_a_token_for_someone_not_a_development_user_is_refused(eco):
    result = eco.run("token", "portfolio", "--user", "mallory")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("error: 'mallory' is not a development user: add it to core.signin.users "
                                     "in ecosystem.yaml and run `ecoctl up`")
