"""Serves the built web app (Python's standard library only, so every runtime can run it).

    python serve.py DIST_DIR

- `/assets/*` (Vite's content-hashed files): `Cache-Control: public, max-age=31536000, immutable`;
  `index.html` and every other page: `no-cache`; a path with no file is the single-page app's
  (index.html), except under `/assets/`, where it is a 404.
- `/config.json`: what the app needs at run time (the issuer, its public client, the API's path),
  from the environment, so one build serves every ecosystem.
- `/api/NAME/...`: forwarded to the API NAME (`API_URLS=portfolio=http://127.0.0.1:8000,...`), so
  the browser talks to one origin and the APIs need no CORS.
- Every answer carries a Content-Security-Policy: scripts, styles and fetches from this origin only,
  plus fetches to the OIDC issuer (its token endpoint) and forms/navigation to it.
- `/healthz` and `/metrics` (http_requests_total, http_request_duration_seconds), as the service
  contract asks of every service.

Environment: PORT (3000), HOST (127.0.0.1), OIDC_ISSUER, OIDC_CLIENT_ID, OIDC_SCOPE, API_URLS.
"""

from __future__ import annotations

import gzip
import http.client
import json
import mimetypes
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding"}
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def api_urls(value: str) -> dict[str, str]:
    """`name=url,name=url` → {name: url}."""
    pairs = (item.split("=", 1) for item in value.split(",") if "=" in item)
    return {name.strip(): url.strip().rstrip("/") for name, url in pairs if name.strip() and url.strip()}


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


class Site:
    """What the server serves, read once at start."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root.resolve()
        self.apis = api_urls(env.get("API_URLS", ""))
        settings = json.loads((Path(__file__).parent / "app.json").read_text())
        first = next(iter(self.apis), "")
        self.config = json.dumps({
            "issuer": env.get("OIDC_ISSUER", ""), "client_id": env.get("OIDC_CLIENT_ID", ""),
            "scope": env.get("OIDC_SCOPE") or settings.get("scope", "openid profile email offline_access"),
            "api": f"/api/{first}" if first else "", "title": settings.get("title", "Web app"),
        }).encode()
        issuer = origin(env.get("OIDC_ISSUER", ""))
        frames = issuer or "'none'"  # oidc-client-ts's silent renew without a refresh token
        self.csp = "; ".join([
            "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
            "font-src 'self'", f"connect-src 'self' {issuer}".strip(), f"frame-src {frames}",
            f"form-action 'self' {issuer}".strip(), "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"])
        self._gzipped: dict[Path, bytes] = {}
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str], int] = {}
        self.durations: dict[tuple[str, str], list[float]] = {}

    def file(self, path: str) -> Path | None:
        """The file a URL path names inside the root, or None (never outside the root)."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate if candidate.is_file() else None

    def gzipped(self, path: Path, data: bytes) -> bytes:
        with self._lock:
            if path not in self._gzipped:
                self._gzipped[path] = gzip.compress(data, 9, mtime=0)
            return self._gzipped[path]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (method, route, str(status))
            self.requests[key] = self.requests.get(key, 0) + 1
            self.durations.setdefault((method, route), []).append(seconds)

    def metrics(self) -> bytes:
        lines = ["# HELP http_requests_total Requests answered.", "# TYPE http_requests_total counter"]
        with self._lock:
            for (method, route, status), count in sorted(self.requests.items()):
                lines.append(f'http_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}')
            lines += ["# HELP http_request_duration_seconds Time to answer.",
                      "# TYPE http_request_duration_seconds histogram"]
            for (method, route), samples in sorted(self.durations.items()):
                labels = f'method="{method}",route="{route}"'
                for bound in BUCKETS:
                    lines.append(f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                                 f"{sum(1 for s in samples if s <= bound)}")
                lines.append(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {len(samples)}')
                lines.append(f"http_request_duration_seconds_sum{{{labels}}} {sum(samples)}")
                lines.append(f"http_request_duration_seconds_count{{{labels}}} {len(samples)}")
        return ("\n".join(lines) + "\n").encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "ecoctl-web"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as written: no 40 ms delayed-ACK stalls
    site: Site

    def log_message(self, format: str, *args) -> None:  # one line per request, on stderr
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_GET(self) -> None:
        self._timed(self._get)

    def do_HEAD(self) -> None:
        self._timed(self._get)

    def do_POST(self) -> None:
        self._timed(self._other)

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _timed(self, answer) -> None:
        started = time.perf_counter()
        route, status = answer()
        self.site.observe(self.command, route, status, time.perf_counter() - started)

    def _other(self) -> tuple[str, int]:
        if self.path.startswith("/api/"):
            return self._proxy()
        return "other", self._send(405, b"", "text/plain", {"Allow": "GET, HEAD"})

    def _get(self) -> tuple[str, int]:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            return self._proxy()
        if path == "/healthz":
            ready = (self.site.root / "index.html").is_file()
            return "/healthz", self._send(200 if ready else 503, b'{"status":"ok"}' if ready else b'{"status":"no build"}',
                                          "application/json", {"Cache-Control": "no-store"})
        if path == "/metrics":
            return "/metrics", self._send(200, self.site.metrics(), "text/plain; version=0.0.4", {})
        if path == "/config.json":
            return "/config.json", self._send(200, self.site.config, "application/json", {"Cache-Control": "no-store"})
        found = self.site.file(path) if path != "/" else None
        if found is not None and path.startswith("/assets/"):
            return "/assets", self._file(found, IMMUTABLE)
        if found is not None and found.name != "index.html":
            return "file", self._file(found, "no-cache")
        if path.startswith("/assets/"):
            return "/assets", self._send(404, b"not found", "text/plain", {"Cache-Control": "no-store"})
        index = self.site.file("index.html")
        if index is None:
            return "page", self._send(503, b"the web app has not been built", "text/plain", {})
        return "page", self._file(index, "no-cache")

    def _file(self, path: Path, cache: str) -> int:
        data = path.read_bytes()
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
        if kind.startswith(COMPRESSIBLE) and "gzip" in self.headers.get("Accept-Encoding", ""):
            data = self.site.gzipped(path, data)
            headers["Content-Encoding"] = "gzip"
        if kind.startswith("text/") or kind == "application/javascript":
            kind += "; charset=utf-8"
        return self._send(200, data, kind, headers)

    def _send(self, status: int, body: bytes, kind: str, headers: dict[str, str]) -> int:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", self.site.csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "same-origin")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def _proxy(self) -> tuple[str, int]:
        """/api/NAME/rest → the API NAME's /rest: method, body and end-to-end headers as they are."""
        _, _, name, *rest = self.path.split("/", 3)
        upstream = self.site.apis.get(name)
        route = f"/api/{name}" if upstream else "/api"
        if upstream is None:
            return route, self._problem(404, f"this web app calls no API named {name!r}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        target = urlsplit(upstream)
        connection = (http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection)(
            target.netloc, timeout=30)
        headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
        try:
            connection.request(self.command, f"{target.path}/{rest[0] if rest else ''}", body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        except OSError as exc:
            return route, self._problem(502, f"the {name} API did not answer ({exc.__class__.__name__}): is it running?")
        finally:
            connection.close()
        passed = {key: value for key, value in answer.getheaders()
                  if key.lower() not in HOP_BY_HOP | {"content-type", "server", "date"}}
        return route, self._send(answer.status, data, answer.getheader("Content-Type", "application/octet-stream"), passed)

    def _problem(self, status: int, detail: str) -> int:
        body = json.dumps({"type": "about:blank", "title": http.client.responses.get(status, "Error"),
                           "status": status, "detail": detail}).encode()
        return self._send(status, body, "application/problem+json", {"Cache-Control": "no-store"})


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python serve.py DIST_DIR\n")
        return 2
    Handler.site = Site(Path(argv[1]), dict(os.environ))
    server = ThreadingHTTPServer((os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "3000"))), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # as PID 1 in a container too: a clean stop
    sys.stderr.write(f"serving {argv[1]} on http://{server.server_address[0]}:{server.server_address[1]}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
