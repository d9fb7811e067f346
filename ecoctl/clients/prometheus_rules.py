"""Prometheus alerting rule files (monitoring/prometheus/rules/<service>.yml), edited round-trip and
checked by `promtool check rules`; the `rule_files:` entry of prometheus.yml that loads them, and its
`alerting:` block (where Prometheus sends alerts: Alertmanager).

A rule file is one the user may edit: ecoctl owns the rules it names (`owned`: alert names) in the
group named after the file, and changes those only, in place, with ruamel.yaml's round-trip parser,
so comments, other rules and other groups survive. Rules compare as plain data: a comment or a
re-indented file is never a difference.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.support.yaml import fast_compose, fast_load, yaml_errors

RULES_DIR = Path("monitoring/prometheus/rules")
RULES_GLOB = "rules/*.yml"
"""How prometheus.yml lists them (relative to prometheus.yml's folder)."""


class RuleFile:
    """A rule file's text, read (parsed only when asked: a file exactly as ecoctl writes it is
    recognised by its text)."""

    def __init__(self, path: Path, text: str, group: str, owned: set[str]):
        self.path, self.text, self.group, self.owned = Path(path), text, group, set(owned)

    @cached_property
    def _parsed(self) -> tuple[dict[str, dict], int]:
        data = fast_load(self.path, self.text) or {}
        groups = data.get("groups") if isinstance(data, dict) else None
        if not isinstance(groups, list):
            raise UsageError(f"{self.path}: expected `groups:` (a list of rule groups): fix the file or remove it")
        rules, others = {}, 0
        for entry in groups:
            mine = isinstance(entry, dict) and entry.get("name") == self.group
            listed = entry.get("rules") if isinstance(entry, dict) else None
            others += 0 if mine else 1
            for rule in listed if isinstance(listed, list) else []:
                if mine and isinstance(rule, dict) and rule.get("alert") in self.owned:
                    rules[rule["alert"]] = rule
                elif mine:
                    others += 1
        return rules, others

    @property
    def rules(self) -> dict[str, dict]:
        """The owned rules found in the file's group: alert name -> the rule as plain data."""
        return self._parsed[0]

    @property
    def others(self) -> int:
        """Rules and groups in the file that are not ecoctl's (kept; a file left with none is removed)."""
        return self._parsed[1]


def load(path: Path, group: str, owned: set[str]) -> RuleFile | None:
    """The rule file at PATH (None when missing); its owned rules in GROUP."""
    try:
        return RuleFile(path, Path(path).read_text(), group, owned)
    except FileNotFoundError:
        return None


def edited(path: Path, text: str, group: str, rules: list[dict], owned: set[str], header: str) -> str:
    """TEXT (empty: a new file starting with HEADER) with GROUP's owned rules made exactly RULES:
    each one updated in place or appended, owned ones not in RULES removed; all else kept."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not text.strip():
        return new_file(path, group, rules, header)
    document = _parse(path, text)
    target = next((entry for entry in document["groups"]
                   if isinstance(entry, dict) and entry.get("name") == group), None)
    if target is None:
        target = CommentedMap(name=group, rules=CommentedSeq())
        document["groups"].append(target)
    if not isinstance(target.get("rules"), list):
        target["rules"] = CommentedSeq()
    listed = target["rules"]
    wanted = {rule["alert"]: rule for rule in rules}
    for index in reversed(range(len(listed))):
        rule = listed[index]
        if isinstance(rule, dict) and rule.get("alert") in owned and rule["alert"] not in wanted:
            del listed[index]
    for name, rule in wanted.items():
        have = next((item for item in listed if isinstance(item, dict) and item.get("alert") == name), None)
        if have is None:
            listed.append(CommentedMap(rule))
            continue
        _set_all(have, rule)
    return _dump(document)


def _set_all(mapping: dict, wanted: dict) -> None:
    """MAPPING (round-trip) made equal to WANTED in place: keys it lacks removed, values that
    differ set (nested maps edited in place, a quoted scalar kept quoted), comments kept."""
    from ruamel.yaml.scalarstring import ScalarString

    for key in [key for key in mapping if key not in wanted]:
        del mapping[key]
    for key, value in wanted.items():
        old = mapping.get(key)
        if old == value:  # round-trip maps and lists compare as plain ones
            continue
        if isinstance(old, dict) and isinstance(value, dict):
            _set_all(old, value)
        else:
            mapping[key] = type(old)(value) if isinstance(value, str) and isinstance(old, ScalarString) else value


def new_file(path: Path, group: str, rules: list[dict], header: str) -> str:
    """A rule file holding GROUP with RULES, written as text (a round-trip dump costs ~15 ms a
    file: seconds for a thousand services) and read back to be sure it says exactly that."""
    text = rendered(group, rules, header)
    if fast_load(path, text) != {"groups": [{"name": group, "rules": rules}]}:
        raise EcoctlError(f"{path}: could not write the rules of {group} cleanly: report this")
    return text


def rendered(group: str, rules: list[dict], header: str) -> str:
    """The text of a rule file holding GROUP with RULES, as ecoctl writes it."""
    lines = ["groups:", f"  - name: {_scalar(group)}", "    rules:"]
    for rule in rules:
        for index, (key, value) in enumerate(rule.items()):
            lead = "      - " if index == 0 else "        "
            if isinstance(value, dict):
                lines.append(f"{lead}{key}:")
                lines += [f"          {name}: {_scalar(item)}" for name, item in value.items()]
            else:
                lines.append(f"{lead}{key}: {_scalar(value)}")
    return header + "\n".join(lines) + "\n"


_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ .-]*[A-Za-z0-9_.]")
_NUMBER = re.compile(r"[-+]?[0-9._]*([eE][-+]?[0-9]+)?")


def _scalar(value: Any) -> str:
    """VALUE as a YAML scalar: plain where that reads back as the same text, else quoted."""
    value = str(value)
    if (_PLAIN.fullmatch(value) and not _NUMBER.fullmatch(value)
            and value.lower() not in ("true", "false", "null", "yes", "no", "on", "off")):
        return value
    return f"'{value}'" if "'" not in value else json.dumps(value)


def without(path: Path, text: str, group: str, owned: set[str]) -> str | None:
    """TEXT without GROUP's owned rules (an empty group goes too); None when nothing else is left."""
    document = _parse(path, text)
    groups = document["groups"]
    for index in reversed(range(len(groups))):
        entry = groups[index]
        if not (isinstance(entry, dict) and entry.get("name") == group):
            continue
        listed = entry.get("rules") or []
        for position in reversed(range(len(listed))):
            if isinstance(listed[position], dict) and listed[position].get("alert") in owned:
                del listed[position]
        if not listed:
            del groups[index]
    return _dump(document) if groups else None


def check_rules(files: dict[Path, str]) -> None:
    """`promtool check rules` on each text as if it were its path (temp files: rule files name no
    other file), all in one run; one line naming the first file it fails. No promtool on PATH:
    nothing to check against, so nothing is refused."""
    if not files or (promtool := shutil.which("promtool")) is None:
        return
    with tempfile.TemporaryDirectory(prefix="ecoctl-rules-check-") as folder:
        candidates = {}
        for index, (path, text) in enumerate(files.items()):
            candidate = os.path.join(folder, f"{index}.yml")
            Path(candidate).write_text(text)
            candidates[candidate] = path
        done = subprocess.run([promtool, "check", "rules", *candidates], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()
                 and not line.strip().startswith(("Checking", "SUCCESS", "FAILED"))]
        reason = lines[0] if lines else "invalid rules"
        path = next((path for candidate, path in candidates.items() if reason.startswith(candidate)),
                    next(iter(files)))
        for candidate, named in candidates.items():
            reason = reason.replace(candidate, str(named))
        raise EcoctlError(f"{path}: not written, promtool check rules fails on it: {reason}: "
                          "fix the file by hand and rerun")


# -- prometheus.yml's rule_files ----------------------------------------------------------------
def lists_rules(config_text: str) -> bool:
    """Whether prometheus.yml's `rule_files` holds RULES_GLOB."""
    data = fast_load("prometheus.yml", config_text) if config_text.strip() else None
    listed = data.get("rule_files") if isinstance(data, dict) else None
    return isinstance(listed, list) and RULES_GLOB in listed


def with_rules_listed(path: Path, config_text: str) -> str:
    """prometheus.yml's text with RULES_GLOB in `rule_files` (added as text: every other byte stays)."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if lists_rules(config_text):
        return config_text
    root = fast_compose(path, config_text) if config_text.strip() else None
    lines = config_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    entry = f"  - {RULES_GLOB}\n"
    if isinstance(root, MappingNode):
        for key, value in root.value:
            if not (isinstance(key, ScalarNode) and key.value == "rule_files"):
                continue
            if isinstance(value, SequenceNode) and value.value and not value.flow_style:
                last = value.value[-1]
                dash = lines[last.start_mark.line].rindex("-", 0, last.start_mark.column)
                row = last.end_mark.line - (1 if last.end_mark.column == 0 else 0)
                lines.insert(row + 1, " " * dash + f"- {RULES_GLOB}\n")
                return _checked_listed(path, "".join(lines))
            if value.start_mark.line == key.start_mark.line == value.end_mark.line:
                # `rule_files:` (null) or `rule_files: []` or a flow list: one line, rewritten
                items = [str(item) for item in (_plain_load(config_text).get("rule_files") or [])]
                line = key.start_mark.line
                lines[line] = "rule_files:\n" + "".join(f"  - {item}\n" for item in items) + entry
                return _checked_listed(path, "".join(lines))
            raise UsageError(f"{path}:{key.start_mark.line + 1}: add `- {RULES_GLOB}` to rule_files by hand")
        before = next((key.start_mark.line for key, _ in root.value
                       if isinstance(key, ScalarNode) and key.value == "scrape_configs"), None)
        if before is not None and key_column(root, "scrape_configs") == 0:
            lines.insert(before, f"rule_files:\n{entry}\n")
            return _checked_listed(path, "".join(lines))
    return _checked_listed(path, "".join(lines) + f"rule_files:\n{entry}")


MARKER = "# managed by ecoctl"


def alerting(config_text: str) -> tuple[bool, bool, tuple[str, ...]]:
    """prometheus.yml's `alerting:` block: (present, marked as ecoctl's, its Alertmanager targets)."""
    data = fast_load("prometheus.yml", config_text) if config_text.strip() else None
    block = data.get("alerting") if isinstance(data, dict) else None
    if block is None:
        return False, False, ()
    managed = any(line.startswith("alerting:") and MARKER in line for line in config_text.splitlines())
    targets = tuple(str(target) for manager in (block.get("alertmanagers") or [] if isinstance(block, dict) else [])
                    if isinstance(manager, dict) for static in manager.get("static_configs") or []
                    if isinstance(static, dict) for target in static.get("targets") or [])
    return True, managed, targets


def with_alerting(path: Path, config_text: str, target: str | None) -> str:
    """prometheus.yml's text with ecoctl's `alerting:` block sending to TARGET (None: without the
    block), as a text edit of that block alone."""
    from ruamel.yaml.nodes import MappingNode

    block = ("" if target is None else
             f"alerting:  {MARKER}\n  alertmanagers:\n    - static_configs:\n        - targets: ['{target}']\n")
    root = fast_compose(path, config_text) if config_text.strip() else None
    lines = config_text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    span = None
    if isinstance(root, MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == "alerting" and key.start_mark.column == 0:
                end = value.end_mark.line + (0 if value.end_mark.column == 0 else 1)
                span = (key.start_mark.line, end)
    if span is not None:
        lines[span[0]:span[1]] = [block]
    elif target is not None:
        before = (next((key.start_mark.line for key, _ in root.value if getattr(key, "value", None) == "scrape_configs"
                        and key.start_mark.column == 0), None) if isinstance(root, MappingNode) else None)
        if before is None:
            lines.append(block)
        else:
            lines.insert(before, block + "\n")
    text = "".join(lines)
    if alerting(text)[2] != ((target,) if target else ()):
        raise EcoctlError(f"{path}: could not write the alerting block cleanly: set it by hand")
    return text


def key_column(root, name: str) -> int:
    return next(key.start_mark.column for key, _ in root.value if getattr(key, "value", None) == name)


def _checked_listed(path: Path, text: str) -> str:
    if not lists_rules(text):
        raise EcoctlError(f"{path}: could not add {RULES_GLOB} to rule_files cleanly: add it by hand")
    return text


# -- YAML ----------------------------------------------------------------------------------------
def _parse(path: Path, text: str):
    from ecoctl.support.yaml import roundtrip

    with yaml_errors(path, "fix the file by hand"):
        document = roundtrip().load(text)
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise UsageError(f"{path}: expected `groups:` (a list of rule groups): fix the file or remove it")
    return document


def _plain_load(text: str) -> dict:
    data = fast_load("prometheus.yml", text)
    return data if isinstance(data, dict) else {}


def _dump(document: Any) -> str:
    import io

    from ecoctl.support.yaml import roundtrip

    yaml = roundtrip()
    yaml.width = 4096  # a rule's expression stays on one line
    buffer = io.StringIO()
    yaml.dump(document, buffer)
    return buffer.getvalue()
