"""Each service's alerting rules, beside its scrape job: monitoring/prometheus/rules/<service>.yml,
loaded by prometheus.yml's `rule_files: [rules/*.yml]`, thresholds from ecosystem.yaml
(`services.<name>.alerts`).

ServiceDown (its target does not answer scrapes), ServiceErrors (5xx share over a threshold),
ServiceSlow (p95 latency over a threshold) are ecoctl's, in the group named after the service; the
user's rules anywhere (in that file too) are kept. The queries are also the dashboards' (grafana).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ecoctl import components
from ecoctl.clients import prometheus_rules
from ecoctl.clients.prometheus_rules import RULES_DIR, RULES_GLOB, RuleFile
from ecoctl.model import AlertmanagerSettings, AlertSettings
from ecoctl.plan import Change

KIND = "alert rules"
OWNED = ("ServiceDown", "ServiceErrors", "ServiceSlow")
WINDOW = "5m"


def job_selector(service: str, extra: str = "") -> str:
    return f'{{job="{service}"{"," + extra if extra else ""}}}'


def request_rate(service: str, extra: str = "") -> str:
    return f"sum(rate(http_requests_total{job_selector(service, extra)}[{WINDOW}]))"


def error_share(service: str) -> str:
    """The share of requests answered 5xx: 0 (not empty) with no 5xx, and with no requests at all."""
    errors = request_rate(service, 'status=~"5.."')
    return f"({errors} or on() vector(0)) / ({request_rate(service)} > 0 or on() vector(1))"


def p95_latency(service: str) -> str:
    return ("histogram_quantile(0.95, sum by (le) "
            f"(rate(http_request_duration_seconds_bucket{job_selector(service)}[{WINDOW}])))")


def desired_rules(service: str, settings: AlertSettings) -> list[dict]:
    labels = {"service": service}
    wait = settings.after
    return [
        {"alert": "ServiceDown", "expr": f"up{job_selector(service)} == 0", "for": wait,
         "labels": {**labels, "severity": "critical"},
         "annotations": {"summary": f"{service} is down",
                         "description": f"Prometheus has not scraped {service} at {{{{ $labels.instance }}}} "
                                        f"for {wait}."}},
        {"alert": "ServiceErrors", "expr": f"{error_share(service)} > {settings.error_percent / 100:g}",
         "for": wait, "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": f"{service} answers 5xx",
                         "description": f"{{{{ $value | humanizePercentage }}}} of {service}'s requests over "
                                        f"{WINDOW} answered 5xx (threshold {settings.error_percent}%)."}},
        {"alert": "ServiceSlow", "expr": f"{p95_latency(service)} > {settings.p95_ms / 1000:g}",
         "for": wait, "labels": {**labels, "severity": "warning"},
         "annotations": {"summary": f"{service} is slow",
                         "description": f"{service}'s p95 latency over {WINDOW} is {{{{ $value | humanizeDuration }}}} "
                                        f"(threshold {settings.p95_ms} ms)."}},
    ]


def rules_header(service: str) -> str:
    return (f"# Alerting rules of the {service} service. ecoctl keeps {', '.join(OWNED)} in the group\n"
            f"# `{service}` as ecosystem.yaml says (services.{service}.alerts); rules you add are kept.\n")


@dataclass(frozen=True)
class WriteRules:
    service: str
    rules: tuple


@dataclass(frozen=True)
class DeleteRules:
    service: str


@dataclass(frozen=True)
class ListRules:
    """prometheus.yml's rule_files gets RULES_GLOB."""


def rules_path(root: Path, service: str) -> Path:
    return root / RULES_DIR / f"{service}.yml"


def read_rules(root: Path, services: set[str]) -> dict[str, RuleFile]:
    """The rule file of each service, and of each file in rules/ holding rules of ecoctl's (a removed
    service's, to delete); files of the user's own are not read."""
    found = {}
    folder = root / RULES_DIR
    names = set(services) | ({path.stem for path in folder.glob("*.yml")} if folder.is_dir() else set())
    for name in sorted(names):
        loaded = prometheus_rules.load(rules_path(root, name), name, set(OWNED))
        if loaded is not None and (name in services or loaded.rules):
            found[name] = loaded
    return found


def diff_rules(system: str, desired: dict[str, list[dict]], actual: dict[str, RuleFile],
               listed: bool, loaded: set[str] | None = None) -> list[Change]:
    """LOADED: the rule groups the running Prometheus evaluates (None: it does not answer)."""
    changes = []
    if desired and not listed:
        changes.append(Change(system, "update", "rule files", "prometheus.yml",
                              f"add {RULES_GLOB} to rule_files", payload=ListRules()))
    for service, rules in desired.items():
        have = actual.get(service)
        wanted = {rule["alert"]: rule for rule in rules}
        same = have is not None and have.text == prometheus_rules.rendered(service, rules, rules_header(service))
        if not same and (have is None or not have.rules):
            changes.append(Change(system, "create", KIND, service, f"{RULES_DIR.name}/{service}.yml: "
                                  + ", ".join(wanted), service=service, payload=WriteRules(service, tuple(rules))))
        elif not same and have.rules != wanted:
            differ = [name for name in wanted if have.rules.get(name) != wanted[name]]
            changes.append(Change(system, "update", KIND, service, f"{', '.join(differ)} differ",
                                  service=service, payload=WriteRules(service, tuple(rules))))
        elif listed and loaded is not None and service not in loaded:
            # written, but the reload never happened (a run stopped half-way, a failed reload)
            changes.append(Change(system, "update", KIND, service, f"in {RULES_DIR.name}/{service}.yml, not "
                                  "loaded by the running Prometheus: reload", service=service,
                                  payload=WriteRules(service, tuple(rules))))
    for service, have in actual.items():
        if service not in desired and have.rules:
            changes.append(Change(system, "delete", KIND, service, "service removed", service=service,
                                  payload=DeleteRules(service)))
    return changes


@dataclass(frozen=True)
class Alerting:
    """prometheus.yml's `alerting:` block sends to TARGET (None: the block goes)."""

    target: str | None


@dataclass(frozen=True)
class WriteAlertmanager:
    text: str


@dataclass(frozen=True)
class DeleteAlertmanager:
    pass


PAYLOADS = (WriteRules, DeleteRules, ListRules, Alerting, WriteAlertmanager, DeleteAlertmanager)
AM_HEADER = "# Alertmanager for this ecosystem, generated by ecoctl"


def alertmanager_text(settings: AlertmanagerSettings) -> str:
    """Alertmanager's configuration: every alert to the webhook receiver when one is set."""
    import json

    receiver = "webhook" if settings.webhook_url else "none"
    lines = [f"{AM_HEADER} from ecosystem.yaml (core.monitoring.alertmanager):",
             "# edit that instead; `ecoctl apply` writes this file again.",
             "route:", f"  receiver: {receiver}", "  group_by: [alertname, service]", "  group_wait: 10s",
             "  group_interval: 1m", "  repeat_interval: 4h", "receivers:", f"  - name: {receiver}"]
    if settings.webhook_url:
        lines += ["    webhook_configs:", f"      - url: {json.dumps(settings.webhook_url)}",
                  "        send_resolved: true"]
    return "\n".join(lines) + "\n"


def diff_alerting(system: str, target: str | None, state: tuple, wanted: str | None,
                  have: str | None) -> list[Change]:
    """prometheus.yml's alerting block (TARGET: where Alertmanager listens; STATE: `alerting()`
    of the file) and alertmanager.yml (WANTED: its text; HAVE: the file's, None when missing)."""
    from ecoctl.support.yaml import fast_load

    changes = []
    present, managed, targets = state
    if target is not None and (not present or (managed and targets != (target,))):
        changes.append(Change(system, "update" if present else "create", "alerting", "prometheus.yml",
                              f"alerts to Alertmanager at {target}", payload=Alerting(target)))
    elif target is None and managed:
        changes.append(Change(system, "delete", "alerting", "prometheus.yml", "Alertmanager is not enabled",
                              payload=Alerting(None)))
    name = components.ALERTMANAGER_CONFIG
    if wanted is not None and (have is None or fast_load(name, have) != fast_load(name, wanted)):
        changes.append(Change(system, "update" if have is not None else "create", "alertmanager config", name,
                              "regenerated from ecosystem.yaml" if have is not None else "",
                              payload=WriteAlertmanager(wanted)))
    elif wanted is None and have is not None and have.startswith(AM_HEADER):
        changes.append(Change(system, "delete", "alertmanager config", name, "Alertmanager is not enabled",
                              payload=DeleteAlertmanager()))
    return changes


def rule_edits(root: Path, changes: list[Change]) -> list[tuple[Path, str | None]]:
    """(file, its new text; None: remove it) for each rule change among CHANGES, every new text
    checked by promtool (nothing is written yet). A removed service's file stays when it holds
    rules of the user's. ListRules is prometheus.yml's: the provider edits that file."""
    owned = set(OWNED)
    edits = []
    written: dict[Path, str] = {}
    for change in changes:
        payload = change.payload
        if isinstance(payload, WriteAlertmanager):
            edits.append((root / components.ALERTMANAGER_CONFIG, payload.text))
        elif isinstance(payload, DeleteAlertmanager):
            edits.append((root / components.ALERTMANAGER_CONFIG, None))
        if not isinstance(payload, (WriteRules, DeleteRules)):
            continue
        path = rules_path(root, payload.service)
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = ""
        if isinstance(payload, WriteRules):
            new = prometheus_rules.edited(path, text, payload.service, list(payload.rules), owned,
                                          rules_header(payload.service))
            if new != text:
                edits.append((path, new))
                written[path] = new
        elif text:
            edits.append((path, prometheus_rules.without(path, text, payload.service, owned)))
    prometheus_rules.check_rules(written)  # one promtool run for them all
    return edits


def write_edits(edits: list[tuple[Path, str | None]]) -> None:
    from ecoctl.support.atomic import write_atomic

    for path, text in edits:
        if text is None:
            path.unlink(missing_ok=True)
        else:  # a file of ecoctl's alone (new) is written again by the next apply if lost: no fsync
            write_atomic(path, text, mode=0o644, durable=path.exists())
