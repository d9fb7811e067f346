"""A removed service's kept code: `remove-service X` keeps `services/X/` (and X's database) unless
asked otherwise, and `add-service X` re-attaches them.

The rule: `services/X/` may be re-attached to a new service X when ecoctl made it for a service
called X, known by either
  1. its record, `services/X/.ecoctl-service.json`, which remove-service writes when it keeps the
     folder (the service's name, template, port and pattern at removal); or
  2. its shape (a folder kept by an older ecoctl, or copied back): at least half of the paths the
     template renders for X exist there (for python-fastapi: pyproject.toml, Dockerfile, the
     package X/, tests/, ...).
Anything else in `services/X/` is somebody's own code, and add-service refuses to adopt it.
Re-adding keeps every existing file (the files provider creates missing files only) and, unless
options say otherwise, the recorded template, port and pattern; the record is removed once the
service is back in ecosystem.yaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ecoctl.model import ServiceSpec
    from ecoctl.service_templates import TemplateInfo

RECORD = ".ecoctl-service.json"
RECORDED_KEYS = ("template", "port", "pattern", "host", "reads", "redirect_uris")


def folder(workspace, name: str) -> Path:
    return workspace.root / "services" / name


def read_record(workspace, name: str) -> dict[str, Any] | None:
    """The record remove-service left in services/NAME/, if it is one for NAME."""
    path = folder(workspace, name) / RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("service") == name else None


def write_record(workspace, name: str, spec: "ServiceSpec") -> None:
    from ecoctl.support.atomic import write_atomic

    record = {"service": name, "kept_by": "ecoctl remove-service", **{key: getattr(spec, key) for key in RECORDED_KEYS}}
    write_atomic(folder(workspace, name) / RECORD, json.dumps(record, indent=2) + "\n", mode=0o644)


def drop_record(workspace, name: str) -> None:
    (folder(workspace, name) / RECORD).unlink(missing_ok=True)


def looks_rendered(workspace, name: str, template: "TemplateInfo", port: int) -> bool:
    """Whether at least half of what TEMPLATE renders for NAME is in services/NAME/."""
    from ecoctl.service_templates import service_file_paths

    variables = {"service_name": name, "port": port, "base_image": workspace.ecosystem.image("python")}
    paths = service_file_paths(template, variables)
    present = sum(1 for rel in paths if (folder(workspace, name) / rel).exists())
    return bool(paths) and present * 2 >= len(paths)
