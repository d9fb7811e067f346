"""A running Prometheus over HTTP: `/-/reload`, `prometheus_config_last_reload_successful`,
`/api/v1/targets`, `/api/v1/alerts`."""

from __future__ import annotations

import time

from ecoctl.errors import EcoctlError

def reload(url: str, timeout: float = 10.0) -> bool:
    """POST /-/reload. False when no Prometheus answers at `url` (it reads the file when it starts)."""
    import httpx

    try:
        with _client(url, timeout) as client:
            response = client.post(f"{url}/-/reload")
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return False
    except httpx.HTTPError as exc:
        raise EcoctlError(f"Prometheus at {url} did not answer /-/reload ({type(exc).__name__}): "
                          "restart it") from None
    if response.status_code == 403 or (response.status_code != 200 and "lifecycle" in response.text.lower()):
        raise EcoctlError(f"Prometheus at {url} refuses /-/reload (lifecycle API disabled): "
                          "restart it with --web.enable-lifecycle, or restart it to read the new file")
    if response.status_code != 200:
        reason = response.text.strip().splitlines()[0] if response.text.strip() else response.status_code
        raise EcoctlError(f"Prometheus at {url} could not reload its configuration: {reason}: "
                          "run `promtool check config` on prometheus.yml")
    if not last_reload_successful(url):
        raise EcoctlError(f"Prometheus at {url} reports its last configuration reload failed: "
                          "check its log, then rerun")
    return True


def reload_state(url: str) -> tuple[float, bool]:
    """(`prometheus_config_last_reload_success_timestamp_seconds`, `..._last_reload_successful`)."""
    stamp, ok = 0.0, False
    for line in _get(url, "/metrics").text.splitlines():
        if line.startswith("prometheus_config_last_reload_success_timestamp_seconds "):
            stamp = float(line.split()[1])
        elif line.startswith("prometheus_config_last_reload_successful "):
            ok = float(line.split()[1]) == 1.0
    return stamp, ok


def wait_reloaded(url: str, before: tuple[float, bool], timeout: float = 15.0) -> None:
    """After a reload was asked another way (SIGHUP): wait until the server reports a reload newer
    than BEFORE (`reload_state` read before asking), and fail with one line when it failed."""
    deadline = time.monotonic() + timeout
    interval = 0.02  # a reload takes tens of milliseconds: seen at once, then polled less often
    while True:
        stamp, ok = reload_state(url)
        if ok and stamp > before[0]:
            return
        if not ok and before[1]:  # it was fine before: this reload failed
            break
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
        interval = min(interval * 2, 0.1)
    raise EcoctlError(f"Prometheus at {url} reports its last configuration reload failed: "
                      "check its log (`ecoctl logs prometheus`), then rerun")


def last_reload_successful(url: str) -> bool:
    """The server's own `prometheus_config_last_reload_successful` gauge, read from its /metrics."""
    for line in _get(url, "/metrics").text.splitlines():
        if line.startswith("prometheus_config_last_reload_successful "):
            return float(line.split()[1]) == 1.0
    return False


def active_targets(url: str) -> list[dict]:
    """The server's active targets (`/api/v1/targets?state=active`), each with labels and health."""
    return _get(url, "/api/v1/targets", state="active").json()["data"]["activeTargets"]


def firing_alerts(url: str) -> list[dict] | None:
    """The alerts firing now (`/api/v1/alerts`, pending ones left out), each as {name, service,
    severity, since, summary}; None when no Prometheus answers at `url`."""
    if not _listening(url):
        return None
    try:
        alerts = _get(url, "/api/v1/alerts").json()["data"]["alerts"]
    except (EcoctlError, ValueError, KeyError, TypeError):
        return None
    firing = []
    for alert in alerts:
        labels, annotations = alert.get("labels") or {}, alert.get("annotations") or {}
        if alert.get("state") != "firing":
            continue
        firing.append({"name": labels.get("alertname", ""), "service": labels.get("service") or labels.get("job", ""),
                       "severity": labels.get("severity", ""), "since": alert.get("activeAt", ""),
                       "summary": annotations.get("summary", "")})
    return sorted(firing, key=lambda alert: (alert["service"], alert["name"], alert["since"]))


def loaded_rule_groups(url: str) -> set[str] | None:
    """The rule groups a running Prometheus evaluates (`/api/v1/rules`); None when none answers."""
    if not _listening(url):
        return None
    try:
        return {str(group["name"]) for group in _get(url, "/api/v1/rules").json()["data"]["groups"]}
    except (EcoctlError, ValueError, KeyError, TypeError):
        return None


def loaded_jobs(url: str) -> set[str] | None:
    """The jobs of the configuration a running Prometheus has loaded (`/api/v1/status/config`: a
    reload that succeeded shows there at once, where targets follow with discovery's ~5 s delay);
    None when nothing answers at `url`."""
    if not _listening(url):
        return None  # nothing there: no need to load an HTTP client to hear that
    import httpx

    try:
        with _client(url, timeout=5.0) as client:
            response = client.get(f"{url}/api/v1/status/config")
        response.raise_for_status()
        return _config_jobs(response.json()["data"]["yaml"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError, EcoctlError):
        return None  # not running, or not a Prometheus: nothing to compare with


def _config_jobs(text: str) -> set[str]:
    from ecoctl.support.yaml import fast_load

    data = fast_load("the loaded Prometheus configuration", text) or {}
    return {str(job["job_name"]) for job in data.get("scrape_configs") or []
            if isinstance(job, dict) and "job_name" in job}


def wait_for_jobs(url: str, present: set[str] = frozenset(), absent: set[str] = frozenset(),
                  timeout: float = 15.0) -> None:
    """Wait until the configuration the server has loaded holds every job in `present` and none in
    `absent` (right after a successful reload it does; scraping them starts within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = loaded_jobs(url) or set()
        missing, left = set(present) - jobs, set(absent) & jobs
        if not missing and not left:
            return
        if time.monotonic() > deadline:
            what = (f"job {sorted(missing)[0]!r} is not in its loaded configuration" if missing
                    else f"job {sorted(left)[0]!r} is still in its loaded configuration")
            raise EcoctlError(f"Prometheus at {url} reloaded but {what} after {timeout:.0f}s: "
                              "check its log and `ecoctl status`")
        time.sleep(0.25)


def _listening(url: str) -> bool:
    """Whether something accepts a TCP connection at `url`'s host and port (a quick refusal)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=2.0):
            return True
    except (OSError, ValueError):
        return False


def _get(url: str, path: str, **params):
    import httpx

    try:
        with _client(url) as client:
            response = client.get(f"{url}{path}", params=params)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise EcoctlError(f"Prometheus at {url} did not answer {path} ({type(exc).__name__}): "
                          "check that it runs (`ecoctl status`)") from None
    return response


def _client(url: str, timeout: float = 10.0):
    import httpx

    # plain HTTP on loopback needs no CA bundle (loading one costs ~0.1 s per client)
    return httpx.Client(timeout=timeout, trust_env=False, verify=not url.startswith("http://"))


