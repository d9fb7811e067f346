"""Prometheus's configuration file: scrape jobs, edited in place, checked by `promtool check config`.

The file is one the user may edit, so a change touches the bytes of one job and nothing else:
ruamel.yaml parses the file and tells where each job starts and ends; the edit splices that span.
Jobs ecoctl writes carry a `# managed by ecoctl` comment on their `job_name` line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ecoctl.errors import EcoctlError, UsageError
from ecoctl.support.atomic import write_atomic
from ecoctl.support.yaml import fast_compose, fast_load, yaml_errors

CONFIG_PATH = Path("monitoring/prometheus/prometheus.yml")
MARKER = "# managed by ecoctl"
_MARKER_RE = re.compile(r"#\s*managed by ecoctl\s*$")
METRICS_PATH = "/metrics"
SCRAPE_INTERVAL = "15s"
NEW_FILE = "global:\n  scrape_interval: 15s\n"


@dataclass(frozen=True)
class ScrapeJob:
    """One entry of `scrape_configs`, reduced to what ecoctl compares."""

    name: str
    targets: tuple[str, ...]
    metrics_path: str | None = METRICS_PATH
    scrape_interval: str | None = SCRAPE_INTERVAL
    managed: bool = True
    extras: dict[str, Any] = field(default_factory=dict, compare=False)
    """Other keys of the job (kept when ecoctl rewrites a job it manages)."""
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    """The target labels of a job with one static config (kept when ecoctl rewrites it)."""

    def same_settings(self, other: "ScrapeJob") -> bool:
        return (self.targets, self.metrics_path, self.scrape_interval) == \
            (other.targets, other.metrics_path, other.scrape_interval)


@dataclass
class _Span:
    first: int
    """Index of the job's first line (its `-` line)."""
    last: int
    """Index of the job's last line holding content (trailing comment lines are not the job's)."""
    dash_col: int
    key_col: int


class PrometheusConfig:
    """The text of prometheus.yml, its scrape jobs, and edits that return new text."""

    def __init__(self, text: str, path: Path = CONFIG_PATH):
        self.text = text
        self.path = path
        self.jobs: dict[str, ScrapeJob] = {}
        self._spans: dict[str, _Span] = {}
        self._parse()

    @classmethod
    def load(cls, path: Path, parsed: "PrometheusConfig | None" = None) -> "PrometheusConfig":
        """The file at `path` (missing: empty); `parsed`, an earlier load, if the text is still its."""
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            text = ""
        same = parsed is not None and (parsed.text, parsed.path) == (text, Path(path))
        return parsed if same else cls(text, Path(path))

    # -- reading -------------------------------------------------------------------------------

    def _parse(self) -> None:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        self._lines = self.text.splitlines(keepends=True)
        self._root = self._key = self._seq = None
        with yaml_errors(self.path, "fix the file by hand"):  # the C parser when installed (~30x faster)
            data = fast_load(self.path, self.text)  # first: it refuses a text too deep to compose
            root = fast_compose(self.path, self.text)
        if root is None or (isinstance(root, ScalarNode) and data is None):
            return
        if not isinstance(root, MappingNode) or not isinstance(data, dict):
            raise UsageError(f"{self.path}:1: expected a mapping (global:, scrape_configs:): fix the file")
        self._root = root
        for key, value in root.value:
            if isinstance(key, ScalarNode) and key.value == "scrape_configs":
                self._key, self._seq = key, value
        jobs = data.get("scrape_configs") or []
        if self._seq is None or not isinstance(self._seq, SequenceNode):
            if jobs:
                raise UsageError(f"{self.path}: scrape_configs must be a list: fix the file")
            return
        for item, job in zip(self._seq.value, jobs):
            if not isinstance(item, MappingNode) or not isinstance(job, dict) or "job_name" not in job:
                continue
            name = str(job["job_name"])
            if name in self.jobs:
                continue  # a duplicate: promtool refuses the file, the user must fix it
            span = self._span_of(item)
            self._spans[name] = span
            self.jobs[name] = self._job_from(name, job, span)

    def _span_of(self, item) -> _Span:
        last_mark = max(_leaves(item), key=lambda mark: mark.index)
        last = last_mark.line
        if last_mark.column == 0 and last > item.start_mark.line:
            last -= 1  # a block scalar ends at the start of the next line
        first = item.start_mark.line
        line = self._lines[first]
        prefix = line[:item.start_mark.column]
        if "-" in prefix:
            dash_col = prefix.rindex("-")
        else:  # `-` alone on a line above the mapping
            first -= 1
            while first > 0 and self._lines[first].strip() != "-":
                first -= 1
            dash_col = self._lines[first].index("-")
        return _Span(first, last, dash_col, item.start_mark.column)

    def _job_from(self, name: str, job: dict, span: _Span) -> ScrapeJob:
        targets: list[str] = []
        statics = [static for static in job.get("static_configs") or [] if isinstance(static, dict)]
        for static in statics:
            targets.extend(str(target) for target in static.get("targets") or [])
        labels = statics[0].get("labels") if len(statics) == 1 else None
        labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        managed = any(_MARKER_RE.search(line.rstrip("\r\n"))
                      for line in self._lines[span.first:span.last + 1])
        extras = {key: value for key, value in job.items()
                  if key not in ("job_name", "static_configs", "metrics_path", "scrape_interval")}
        return ScrapeJob(name, tuple(targets), _str_or_none(job.get("metrics_path")),
                         _str_or_none(job.get("scrape_interval")), managed, extras, labels)

    def job_text(self, name: str) -> str:
        """The exact lines of one job, as they are in the file."""
        span = self._spans[name]
        return "".join(self._lines[span.first:span.last + 1])

    # -- editing (each returns the new text; self is unchanged) ----------------------------------

    def with_job(self, job: ScrapeJob) -> str:
        """The text with `job` added after the last job, or replacing the job of that name."""
        from ruamel.yaml.nodes import SequenceNode

        lines = list(self._lines)
        if job.name in self._spans:
            span = self._spans[job.name]
            lines[span.first:span.last + 1] = [render_job(job, span.dash_col, span.key_col)]
            return self._checked("".join(lines), job)
        if self._spans:
            last = max(self._spans.values(), key=lambda span: span.last)
            first = min(self._spans.values(), key=lambda span: span.first)
            _end_line(lines, last.last)
            lines.insert(last.last + 1, render_job(job, first.dash_col, first.key_col))
            return self._checked("".join(lines), job)
        if isinstance(self._seq, SequenceNode) and self._seq.value:
            raise UsageError(f"{self.path}: scrape_configs holds entries without job_name: fix the file")
        if self._key is not None:
            return self._checked(self._into_empty_list(lines, job), job)
        # no scrape_configs at all: append it (a missing or empty file gets a global block first)
        text = "".join(lines) if self.text.strip() else NEW_FILE
        if text and not text.endswith("\n"):
            text += "\n"
        return self._checked(text + "scrape_configs:\n" + render_job(job, 2, 4), job)

    def with_jobs(self, jobs: list[ScrapeJob]) -> str:
        """`with_job` for many jobs at once: each existing one replaced in place, the new ones added
        after the last job in the given order; the result is parsed and checked once."""
        if not jobs:
            return self.text
        if not self._spans:  # the first job goes where `with_job` puts it; the rest follow it
            text = self.with_job(jobs[0])
            return PrometheusConfig(text, self.path).with_jobs(jobs[1:]) if len(jobs) > 1 else text
        lines = list(self._lines)
        new = [job for job in jobs if job.name not in self._spans]
        last = max(self._spans.values(), key=lambda span: span.last)
        if new:
            first = min(self._spans.values(), key=lambda span: span.first)
            lines.insert(last.last + 1, "".join(render_job(job, first.dash_col, first.key_col) for job in new))
            _end_line(lines, last.last)
        replaced = sorted(((self._spans[job.name], job) for job in jobs if job.name in self._spans),
                          key=lambda pair: pair[0].first)
        for span, job in reversed(replaced):  # bottom-up: earlier line numbers stay valid
            lines[span.first:span.last + 1] = [render_job(job, span.dash_col, span.key_col)]
        return self._checked_all("".join(lines), jobs)

    def without_jobs(self, names: list[str]) -> str:
        """`without_job` for many jobs at once (checked once)."""
        spans = sorted((self._spans[name].first, self._spans[name].last) for name in set(names)
                       if name in self._spans)
        if not spans:
            return self.text
        lines = list(self._lines)
        for first, last in reversed(spans):
            del lines[first:last + 1]
        text = "".join(lines)
        left = set(names) & set(PrometheusConfig(text, self.path).jobs)
        if left:
            raise EcoctlError(f"{self.path}: could not remove job {sorted(left)[0]!r} cleanly: remove it by hand")
        return text

    def _checked_all(self, text: str, jobs: list[ScrapeJob]) -> str:
        written = PrometheusConfig(text, self.path).jobs
        for job in jobs:
            if job.name not in written or not written[job.name].same_settings(job):
                raise EcoctlError(f"{self.path}: could not write job {job.name!r} cleanly "
                                  "(unusual layout): add it by hand")
        return text

    def _into_empty_list(self, lines: list[str], job: ScrapeJob) -> str:
        """`scrape_configs:` (null) or `scrape_configs: []`: the job goes right after the key."""
        row, col = self._key.start_mark.line, self._key.start_mark.column
        value = self._seq
        if value.start_mark.index != value.end_mark.index:  # `[]` or `~`: drop it from the key's line
            if value.start_mark.line != row or value.end_mark.line != row:
                raise UsageError(f"{self.path}:{row + 1}: write scrape_configs as a block list to let "
                                 "ecoctl add jobs")
            line = lines[row]
            head, rest = line[:value.start_mark.column].rstrip(), line[value.end_mark.column:]
            lines[row] = head + (" " + rest.lstrip() if rest.strip() else rest)
        _end_line(lines, row)
        lines.insert(row + 1, render_job(job, col + 2, col + 4))
        return "".join(lines)

    def without_job(self, name: str) -> str:
        """The text with the job removed (its lines only; comments around it stay)."""
        if name not in self._spans:
            return self.text
        span = self._spans[name]
        lines = list(self._lines)
        del lines[span.first:span.last + 1]
        text = "".join(lines)
        if name in PrometheusConfig(text, self.path).jobs:
            raise EcoctlError(f"{self.path}: could not remove job {name!r} cleanly: remove it by hand")
        return text

    def _checked(self, text: str, job: ScrapeJob) -> str:
        written = PrometheusConfig(text, self.path).jobs.get(job.name)
        if written is None or not written.same_settings(job):
            raise EcoctlError(f"{self.path}: could not write job {job.name!r} cleanly "
                              "(unusual layout): add it by hand")
        return text


def render_job(job: ScrapeJob, dash_col: int, key_col: int) -> str:
    """A job in the seed's form, at the file's indentation, marked as ecoctl's."""
    pad, inner = " " * dash_col, " " * key_col
    targets = ", ".join(_quote(target) for target in job.targets)
    lines = [
        f"{pad}-{' ' * max(1, key_col - dash_col - 1)}job_name: {_quote_key(job.name)}  {MARKER}",
        f"{inner}static_configs:",
        f"{inner}  - targets: [{targets}]",
    ]
    if job.labels:
        pairs = ", ".join(f"{_quote_key(key)}: {_quote(value)}" for key, value in job.labels.items())
        lines.append(f"{inner}    labels: {{{pairs}}}")
    if job.metrics_path is not None:
        lines.append(f"{inner}metrics_path: {_quote(job.metrics_path)}")
    if job.scrape_interval is not None:
        lines.append(f"{inner}scrape_interval: {job.scrape_interval}")
    if job.extras:
        lines.extend(inner + line for line in _dump(job.extras).splitlines())
    return "\n".join(lines) + "\n"


def write_config(path: Path, text: str, started: "Check | None" = None) -> bool:
    """Validate `text` with promtool (when installed), then replace the file atomically. Returns
    False when the file already holds exactly `text`. On a failed check the old file stays.
    `started` (from `start_check`): its verdict is used if it checked exactly `text`, else `text` is
    checked now; it is finished or stopped either way."""
    path = Path(path)
    try:
        try:
            if path.read_text() == text:
                return False
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        if started is not None and (started.path, started.text) == (path, text):
            started.finish()
        else:
            check_config(path, text)
        write_atomic(path, text)
        return True
    finally:
        if started is not None:
            started.stop()


def check_config(path: Path, text: str) -> None:
    """`promtool check config` on `text` as if it were `path` (a temp file beside it, so relative
    rule_files resolve). No promtool on PATH: nothing to check against, so nothing is refused."""
    if (check := start_check(path, text)) is not None:
        check.finish()


def start_check(path: Path, text: str) -> "Check | None":
    """`check_config` started and not waited for (None: no promtool on PATH). Call `finish()` for
    the verdict, or `stop()`; either removes the candidate file."""
    if (promtool := shutil.which("promtool")) is None:
        return None
    fd, candidate = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.check-", suffix=".yml")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        process = subprocess.Popen([promtool, "check", "config", candidate], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except BaseException:
        os.unlink(candidate)
        raise
    return Check(path, text, candidate, process)


@dataclass
class Check:
    """A running `promtool check config` on `text` (in the temp file `candidate`) for `path`."""

    path: Path
    text: str
    candidate: str
    process: subprocess.Popen

    def finish(self) -> None:
        """Wait for promtool (60 s at most); raise the one-line refusal when it fails the file."""
        try:
            stdout, stderr = self.process.communicate(timeout=60)
        finally:
            self.stop()
        if self.process.returncode != 0:
            output = (stderr + "\n" + stdout).replace(self.candidate, str(self.path))
            failures = [line.strip() for line in output.splitlines() if "FAILED" in line]
            reason = failures[0].removeprefix("FAILED:").strip() if failures else "invalid configuration"
            raise EcoctlError(f"{self.path}: not written, promtool check config fails on the new file: "
                              f"{reason}: fix the file by hand and rerun")

    def stop(self) -> None:
        """Kill promtool (by its PID) if it still runs, reap it, remove the candidate; idempotent."""
        if self.process.returncode is None:  # not reaped yet: kill() skips a process that has exited
            self.process.kill()
            self.process.communicate()
        Path(self.candidate).unlink(missing_ok=True)


def _leaves(node):
    """Marks where each leaf of a node ends (scalars and flow collections)."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    if isinstance(node, MappingNode) and not node.flow_style:
        for key, value in node.value:
            yield from _leaves(key)
            yield from _leaves(value)
    elif isinstance(node, SequenceNode) and not node.flow_style:
        for item in node.value:
            yield from _leaves(item)
    else:
        yield node.end_mark


def _end_line(lines: list[str], index: int) -> None:
    if lines and not lines[index].endswith("\n"):
        lines[index] += "\n"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_PLAIN = re.compile(r"^[A-Za-z0-9_./-][A-Za-z0-9_./:-]*$")


def _quote(value: str) -> str:
    """A YAML single-quoted scalar (the seed's style for targets)."""
    return "'" + value.replace("'", "''") + "'"


def _quote_key(value: str) -> str:
    return value if _PLAIN.fullmatch(value) and ":" not in value else _quote(value)


def _dump(data: dict) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.default_flow_style = False
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()
