"""Prometheus scrape jobs: one per service in ecosystem.yaml and one per core component that serves
metrics (Prometheus itself first), in monitoring/prometheus/prometheus.yml; and each service's
alerting rules beside its job (see `prometheus_alerts`).

ecoctl manages the jobs of the services in ecosystem.yaml, the core components' and the jobs it
wrote before (marked `# managed by ecoctl`); every other job is the user's and is never touched. A
core job with the right target is in place even without the mark (files made before it was
ecoctl's). Each write is checked with promtool first, then a running Prometheus is reloaded and
asked whether it took the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ecoctl import components
from ecoctl.clients import prometheus, prometheus_config, prometheus_rules
from ecoctl.clients.prometheus_config import PrometheusConfig, ScrapeJob
from ecoctl.clients.prometheus_rules import RuleFile
from ecoctl.model import Ecosystem, ServiceSpec
from ecoctl.plan import Change, Provider
from ecoctl.providers import prometheus_alerts
from ecoctl.providers.files import core_job

KIND = "scrape job"


@dataclass(frozen=True)
class ScrapeState:
    jobs: dict[str, ScrapeJob]
    """Every job in prometheus.yml."""
    loaded: set[str] | None
    """The jobs the running Prometheus scrapes; None when it does not answer."""
    rules: dict[str, RuleFile] = field(default_factory=dict)
    """Each service's rule file (and a removed service's, while it holds ecoctl's rules)."""
    listed: bool = True
    """prometheus.yml's rule_files loads rules/*.yml."""
    alerting: tuple = (False, False, ())
    """prometheus.yml's alerting block: present, ecoctl's, its targets (`prometheus_rules.alerting`)."""
    alertmanager: str | None = None
    """alertmanager.yml's text (None: no file)."""
    loaded_groups: set[str] | None = None
    """The rule groups the running Prometheus evaluates; None when it does not answer."""


@dataclass(frozen=True)
class Desired:
    jobs: dict[str, ScrapeJob]
    rules: dict[str, list[dict]]
    """Service -> its alerting rules."""
    alertmanager: str | None = None
    """Where Prometheus sends alerts (None: Alertmanager is not enabled)."""
    alertmanager_config: str | None = None


def scrape_target(service: str, spec: ServiceSpec, in_containers: bool) -> str:
    """Where Prometheus reaches a service: by its name on the stack's network when the stack runs
    in containers, on loopback when it runs on this host, at the service's host when it runs elsewhere."""
    if spec.pattern == "external":
        host = spec.host or "127.0.0.1"
    elif in_containers:
        host = service
    else:
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"{host}:{spec.port}"


def desired_jobs(ecosystem: Ecosystem, in_containers: bool) -> dict[str, ScrapeJob]:
    """The core components' jobs (from the catalog), then one per service."""
    jobs = {name: core_job(name, target, path)
            for name, (target, path) in components.scrape_targets(ecosystem, in_containers).items()}
    jobs.update((name, ScrapeJob(name, (scrape_target(name, spec, in_containers),)))
                for name, spec in ecosystem.services.items())
    return jobs


@dataclass(frozen=True)
class WriteJob:
    job: ScrapeJob


@dataclass(frozen=True)
class DeleteJob:
    name: str


class PrometheusProvider(Provider):
    """With `options.reload` off, only the file is written (a Prometheus started later reads it);
    with it on, `runtime.reload_prometheus` makes a running one read it."""

    name = "prometheus"

    _check: "prometheus_config.Check | None" = None
    """The promtool check `prepare` started, until `apply_all` or `close` finishes or stops it."""
    _parsed: "PrometheusConfig | None" = None
    """The file as last parsed, reused while its text is the same (a parse verifies every edit too)."""
    _edits: tuple = ()
    """(text before, changes, text after) of the last `_edited`: prepare's edit reused by apply_all."""

    @property
    def reload(self) -> bool:
        return self.options.reload

    @property
    def path(self) -> Path:
        return self.workspace.root / prometheus_config.CONFIG_PATH

    def read(self) -> ScrapeState:
        """Every job in the file (the user's too: diff needs them to leave them alone), and the jobs
        a running Prometheus has loaded (None when none answers, or with reload off)."""
        config = self._config()
        loaded = prometheus.loaded_jobs(self.workspace.prometheus_url) if self.reload else None
        rules = prometheus_alerts.read_rules(self.workspace.root, set(self.workspace.ecosystem.services))
        try:
            alertmanager = (self.workspace.root / components.ALERTMANAGER_CONFIG).read_text()
        except FileNotFoundError:
            alertmanager = None
        groups = prometheus.loaded_rule_groups(self.workspace.prometheus_url) if loaded is not None else None
        return ScrapeState(config.jobs, loaded, rules, prometheus_rules.lists_rules(config.text),
                           prometheus_rules.alerting(config.text), alertmanager, groups)

    def desired(self) -> Desired:
        ecosystem = self.workspace.ecosystem
        target = components.scrape_targets(ecosystem, self.runtime.in_containers).get(components.ALERTMANAGER.name)
        settings = ecosystem.core.monitoring.alertmanager
        return Desired(desired_jobs(ecosystem, self.runtime.in_containers),
                       {name: prometheus_alerts.desired_rules(name, spec.alerts)
                        for name, spec in ecosystem.services.items()},
                       target[0] if target else None,
                       prometheus_alerts.alertmanager_text(settings) if target else None)

    def diff(self, desired: Desired, actual: ScrapeState) -> list[Change]:
        changes = []
        services = self.workspace.ecosystem.services
        for name, job in desired.jobs.items():
            have = actual.jobs.get(name)
            service = name if name in services else None
            if have is None:
                changes.append(Change(self.name, "create", KIND, name, f"target {job.targets[0]}",
                                      service=service, payload=WriteJob(job)))
            elif not job.same_settings(have):
                changes.append(Change(self.name, "update", KIND, name, _difference(have, job),
                                      service=service, payload=WriteJob(job)))
            elif actual.loaded is not None and name not in actual.loaded:
                # written, but the reload never happened (a run stopped half-way, a failed reload)
                changes.append(Change(self.name, "update", KIND, name,
                                      "in prometheus.yml, not loaded by the running Prometheus: reload",
                                      service=service, payload=WriteJob(job)))
        for name, have in actual.jobs.items():
            if have.managed and name not in desired.jobs:
                core = components.named(name) is not None
                changes.append(Change(self.name, "delete", KIND, name,
                                      "not run by this ecosystem" if core else "service removed",
                                      service=None if core else name, payload=DeleteJob(name)))
        return (changes + prometheus_alerts.diff_rules(self.name, desired.rules, actual.rules, actual.listed,
                                                      actual.loaded_groups)
                + prometheus_alerts.diff_alerting(self.name, desired.alertmanager, actual.alerting,
                                                  desired.alertmanager_config, actual.alertmanager))

    def prepare(self, changes: list[Change]) -> None:
        """Start promtool on the file these changes make, in the background, so the postgres and
        authentik changes are applied meanwhile. `apply_all` uses its verdict only if the text it
        writes is the text checked."""
        self._stop_check()
        try:
            now, text = self._edited(changes)
            if text != now:  # (no directory yet: mkstemp fails, and apply_all checks as it writes)
                self._check = prometheus_config.start_check(self.path, text)
        except Exception:  # apply_all meets the same problem and reports it in its turn
            return

    def apply_all(self, changes: list[Change], on_change) -> None:
        """Every job edit made in memory, then one promtool check (the one `prepare` started, when
        the text is still the same), one write, one reload (and one wait for the running
        Prometheus to show them all); each change is done after that."""
        try:
            rules = prometheus_alerts.rule_edits(self.workspace.root, changes)  # each checked by promtool
            _, text = self._edited(changes)
            prometheus_config.write_config(self.path, text, self._check)
            prometheus_alerts.write_edits(rules)
        finally:
            self._stop_check()
        writes = {change.payload.job.name for change in changes if isinstance(change.payload, WriteJob)}
        deletes = {change.payload.name for change in changes if isinstance(change.payload, DeleteJob)}
        self._reload(present=writes, absent=deletes)
        for change in changes:
            on_change(change)

    def _config(self) -> PrometheusConfig:
        """prometheus.yml as it is on disk now."""
        config = PrometheusConfig.load(self.path, parsed=self._parsed)
        self._parsed = config
        return config

    def _edited(self, changes: list[Change]) -> tuple[str, str]:
        """prometheus.yml's text now, and with these changes made (in memory)."""
        config = self._config()
        if self._edits[:1] == (config.text,) and self._edits[1] == changes:
            return config.text, self._edits[2]
        text = self._edit(config, changes)
        self._edits = (config.text, list(changes), text)
        return config.text, text

    def _edit(self, config: PrometheusConfig, changes: list[Change]) -> str:
        writes = [change.payload.job for change in changes if isinstance(change.payload, WriteJob)]
        deletes = [change.payload.name for change in changes if isinstance(change.payload, DeleteJob)]
        unknown = [change for change in changes if not isinstance(change.payload, (WriteJob, DeleteJob, *RULES))]
        if unknown:
            raise TypeError(f"{self.name} provider cannot apply {unknown[0]}")
        text = config.with_jobs([_keeping_extras(config, job) for job in writes])
        text = PrometheusConfig(text, self.path).without_jobs(deletes) if deletes else text
        if any(isinstance(change.payload, prometheus_alerts.ListRules) for change in changes):
            text = prometheus_rules.with_rules_listed(self.path, text)
        for change in changes:
            if isinstance(change.payload, prometheus_alerts.Alerting):
                text = prometheus_rules.with_alerting(self.path, text, change.payload.target)
        return text

    def _stop_check(self) -> None:
        started, self._check = self._check, None
        if started is not None:
            started.stop()

    def close(self) -> None:
        """A check `prepare` started and no apply used (an earlier system failed, or the plan
        was not applied): promtool stopped by its PID, its candidate file removed."""
        self._stop_check()

    def write_job(self, payload: WriteJob) -> None:
        config = PrometheusConfig.load(self.path)
        prometheus_config.write_config(self.path, config.with_job(_keeping_extras(config, payload.job)))
        self._reload(present={payload.job.name})

    def delete_job(self, payload: DeleteJob) -> None:
        prometheus_config.write_config(self.path, PrometheusConfig.load(self.path).without_job(payload.name))
        self._reload(absent={payload.name})

    def _reload(self, present: set[str] = frozenset(), absent: set[str] = frozenset()) -> None:
        reload_prometheus = self.runtime.reload_prometheus
        if self.reload and reload_prometheus is not None and reload_prometheus():
            prometheus.wait_for_jobs(self.workspace.prometheus_url, present=present, absent=absent)

    def write_rules(self, payload) -> None:
        """One rule change on its own (apply_all does them all at once)."""
        self.apply_all([Change(self.name, "update", prometheus_alerts.KIND, "", payload=payload)], lambda _: None)

    appliers = {WriteJob: write_job, DeleteJob: delete_job,
                **dict.fromkeys(prometheus_alerts.PAYLOADS, write_rules)}


RULES = prometheus_alerts.PAYLOADS


def _keeping_extras(config: PrometheusConfig, job: ScrapeJob) -> ScrapeJob:
    """`job` as ecoctl writes it; a job the user gave extra keys (relabel_configs, scrape_timeout,
    labels) keeps them."""
    current = config.jobs.get(job.name)
    extras = current.extras if current is not None else {}
    labels = current.labels if current is not None else {}
    return ScrapeJob(job.name, job.targets, job.metrics_path, job.scrape_interval, True, extras, labels)


def _difference(have: ScrapeJob, want: ScrapeJob) -> str:
    parts = []
    if have.targets != want.targets:
        parts.append(f"targets {', '.join(have.targets) or 'none'} -> {', '.join(want.targets)}")
    if have.metrics_path != want.metrics_path:
        parts.append(f"metrics_path {have.metrics_path} -> {want.metrics_path}")
    if have.scrape_interval != want.scrape_interval:
        parts.append(f"scrape_interval {have.scrape_interval} -> {want.scrape_interval}")
    return "; ".join(parts)
