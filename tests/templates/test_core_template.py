"""The core portfolio service is the shipped template `portfolio` (`core: true`): rendered, recorded and
upgraded like any template, and found by its flag, never by its name. Real ecosystems made by `init`,
the real CLI in a subprocess; no server is needed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ecoctl.commands.init import init_ecosystem
from ecoctl.errors import UsageError
from ecoctl.model import EcosystemFile
from ecoctl.support.resources import templates_dir
from ecoctl.template_record import RECORD_FILE, pristine_path
from ecoctl.workspace import Workspace
from tests.helpers import run_ecoctl

SHIPPED = templates_dir() / "portfolio" / "files"
LATEST = 3
"""templates/portfolio's version (versions/1/ and versions/2/ keep the earlier ones)."""


def checksum(root: Path, *skipped: str) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and relative not in skipped:
            digest.update(relative.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def shipped_files() -> dict[str, bytes]:
    return {path.relative_to(SHIPPED).as_posix(): path.read_bytes() for path in SHIPPED.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def service_files(folder: Path) -> dict[str, bytes]:
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*")
            if path.is_file() and path.name != RECORD_FILE}


@pytest.fixture
def eco(tmp_path):
    root = tmp_path / "eco"
    init_ecosystem(root, runtime="local", without=("web",))
    return root


def made_before_templates(root: Path) -> None:
    """What an ecosystem made before portfolio was a template has: the files, no record, no pristine copy."""
    (root / "services" / "portfolio" / RECORD_FILE).unlink()
    pristine_path(root, "portfolio").unlink()


def test_init_writes_the_core_service_from_its_template_and_records_it(eco):
    spec = EcosystemFile.load(eco / "ecosystem.yaml").model.services
    assert list(spec) == ["portfolio"]
    assert (spec["portfolio"].template, spec["portfolio"].port) == ("portfolio", 8000)
    assert spec["portfolio"].redirect_uris == ["http://127.0.0.1:8000/callback"]
    folder = eco / "services" / "portfolio"
    assert service_files(folder) == shipped_files()  # no placeholders: copied byte for byte
    record = (folder / RECORD_FILE).read_text()
    assert f"template: portfolio\nsource: shipped\nref: portfolio\nversion: {LATEST}\n" in record
    assert pristine_path(eco, "portfolio").is_file()  # upgrade's base

    plan = run_ecoctl("plan", "--json", "--only", "files,compose", cwd=eco)
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["notices"] == [] and json.loads(plan.stdout)["changes"] == []
    listed = json.loads(run_ecoctl("templates", "list", "--json", cwd=eco).stdout)
    assert {t["name"]: t["core"] for t in listed["templates"]} == \
        {"go-gin": False, "portfolio": True, "portfolio-web": True, "python-fastapi": False, "react-vite": False}
    assert listed["services"] == [{"service": "portfolio", "template": "portfolio", "version": LATEST,
                                   "latest": LATEST, "behind": False}]
    upgraded = run_ecoctl("upgrade", cwd=eco)
    assert upgraded.returncode == 0
    assert upgraded.stdout == f"portfolio: up to date (portfolio v{LATEST}), nothing to do\n"


def test_an_ecosystem_made_before_portfolio_was_a_template_keeps_working(eco):
    folder = eco / "services" / "portfolio"
    made_before_templates(eco)
    readme = folder / "README.md"
    readme.write_text("Our portfolio notes.\n\n" + readme.read_text())  # the team's own edit
    (folder / "portfolio_service" / "migrations" / "0002_ledger_version.sql").unlink()  # an older copy

    plan = run_ecoctl("plan", "--json", "--only", "files", cwd=eco)
    assert plan.returncode == 0, plan.stderr
    document = json.loads(plan.stdout)
    assert document["notices"] == [f"services/portfolio/ has no {RECORD_FILE}: `ecoctl upgrade portfolio "
                                   "--adopt-from VERSION` records the template version it was made from"]
    assert [(c["action"], c["name"], c["detail"]) for c in document["changes"]] == \
        [("create", "services/portfolio", f"1 of {len(shipped_files())} files missing")]
    applied = run_ecoctl("apply", "--yes", "--only", "files", cwd=eco)
    assert applied.returncode == 0, applied.stderr
    assert service_files(folder) == {**shipped_files(), "README.md": readme.read_bytes()}
    assert not (folder / RECORD_FILE).exists()  # the record is never guessed

    # `upgrade` of everything skips it and says how to adopt it; named, it is refused
    everything = run_ecoctl("upgrade", cwd=eco)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.startswith("portfolio: skipped, no .ecoctl-template.yml: `ecoctl upgrade "
                                        "portfolio --adopt-from VERSION`")
    assert json.loads(run_ecoctl("upgrade", "--json", cwd=eco).stdout)["unrecorded"] == ["portfolio"]
    named = run_ecoctl("upgrade", "portfolio", cwd=eco)
    assert named.returncode == 2 and len(named.stderr.strip().splitlines()) == 1
    assert "ecoctl upgrade portfolio --adopt-from VERSION" in named.stderr and "(one of 1, 2, 3)" in named.stderr
    listed = json.loads(run_ecoctl("templates", "list", "--json", cwd=eco).stdout)["services"]
    assert listed == [{"service": "portfolio", "template": "portfolio", "version": None, "latest": LATEST,
                       "behind": None}]

    # adopting records the version and changes no file: the team's edit stays
    before = checksum(folder)
    adopted = run_ecoctl("upgrade", "portfolio", "--adopt-from", "1", cwd=eco)
    assert adopted.returncode == 0, adopted.stderr
    assert checksum(folder, RECORD_FILE) == before
    # (from 1, then up to the latest: these files are already the latest's)
    assert f"version: {LATEST}\n" in (folder / RECORD_FILE).read_text() and pristine_path(eco, "portfolio").is_file()
    plan = json.loads(run_ecoctl("plan", "--json", "--only", "files", cwd=eco).stdout)
    assert plan["notices"] == [] and plan["changes"] == []


def test_the_core_service_is_neither_added_again_nor_removed(eco):
    before = checksum(eco)
    for args, says in [(["add-service", "portfolio", "--no-apply"], "reserved for the core service of template portfolio"),
                       (["add-service", "ledger", "--template", "portfolio", "--no-apply"],
                        "template portfolio is a core template"),
                       (["remove-service", "portfolio"], "portfolio is a core service")]:
        result = run_ecoctl(*args, cwd=eco)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert checksum(eco) == before


def test_a_renamed_core_service_is_found_by_its_template_not_its_name(eco):
    """ecosystem.yaml may call the core service anything: what makes it core is its template."""
    from ecoctl.template_run import core_services, local_run, with_core_services

    def rename(document):
        document["services"]["ledger"] = document["services"].pop("portfolio")
    EcosystemFile.load(eco / "ecosystem.yaml").update(rename)
    applied = run_ecoctl("apply", "--yes", "--only", "files,compose", cwd=eco)
    assert applied.returncode == 0, applied.stderr
    workspace = Workspace(eco)
    assert core_services(workspace) == ["ledger"]
    assert with_core_services(workspace, ["loyalty", "ledger"]) == ["ledger", "loyalty"]
    assert "service_name: ledger" in (eco / "services" / "ledger" / RECORD_FILE).read_text()
    run = local_run(workspace, "ledger", Path("/build/ledger"), "/usr/bin/python3")
    assert run.command == ("/build/ledger/venv/bin/python", "-m", "uvicorn", "portfolio_service.main:app",
                           "--app-dir", ".", "--host", "127.0.0.1", "--port", "8000")

    token = run_ecoctl("token", cwd=eco)  # the core service's, whatever its name (nothing runs: said)
    assert token.returncode == 1 and "(for eco-ledger) does not answer" in token.stderr, token.stderr
    removed = run_ecoctl("remove-service", "ledger", cwd=eco)
    assert removed.returncode == 2 and "ledger is a core service" in removed.stderr
    # the name the core template gives its service stays the core template's
    assert run_ecoctl("add-service", "portfolio", "--no-apply", cwd=eco).returncode == 2


def test_the_compose_entry_builds_with_the_templates_build_args(eco):
    EcosystemFile.load(eco / "ecosystem.yaml").update(
        lambda document: document["images"].__setitem__("python", "registry.example.com/python:3.12"))
    from ecoctl.template_run import docker_build_args

    assert docker_build_args(Workspace(eco), "portfolio") == {"BASE_IMAGE": "registry.example.com/python:3.12"}


@pytest.mark.parametrize("core, variables, says", [
    ("true", "  service_name: {required: true}\n", "must give service_name a default"),
    ("true", "  service_name: {default: Not-A-Name}\n", "must give service_name a default"),
    ("true", "", "must give service_name a default"),
    ("yes please", "  service_name: {default: gateway}\n", "`core` must be true or false"),
])
def test_a_core_template_must_name_its_service(tmp_path, core, variables, says):
    from ecoctl.service_templates import load_template

    (tmp_path / "files").mkdir()
    (tmp_path / "template.yaml").write_text(f"name: gateway\nversion: 1\ncore: {core}\nvariables:\n{variables}")
    with pytest.raises(UsageError, match=f"template.yaml:3: .*{says}"):
        load_template(tmp_path)


def test_a_team_core_template_names_the_service_it_reserves(tmp_path):
    from ecoctl.service_templates import load_template

    (tmp_path / "files").mkdir()
    (tmp_path / "template.yaml").write_text("name: gateway\ncore: true\nvariables:\n  service_name: {default: edge}\n")
    template = load_template(tmp_path)
    assert (template.core, template.core_service) == (True, "edge")
    assert load_template(templates_dir() / "python-fastapi").core_service is None
