"""The portfolio web app's first load, beside a blank Vite React app built the same way.

    python bench/webapp_first_load.py [--runs 5]

Both are built here with the same toolchain (the portfolio-web template rendered, `npm ci`, `vite
build`; the blank app is `<h1>` in a React root, built by the same Vite and React plugin from the same
node_modules) and served by the same serve.py on loopback. Printed for each: the bytes of its JS and
CSS gzipped (what a browser downloads), and the time from navigation until its first screen shows in
Debian's Chromium (Playwright), cold cache, the median of --runs: for the portfolio app, the list of
portfolios of a signed-in user, the API answered by a stub on loopback (so the number is the app's
own, not the database's); for the blank app, its heading. Needs npm and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
BLANK_MAIN = """import React from "react";
import ReactDOM from "react-dom/client";
ReactDOM.createRoot(document.getElementById("root")!).render(<React.StrictMode><h1>Hello</h1></React.StrictMode>);
"""
BLANK_INDEX = """<!doctype html>
<html lang="en"><head><meta charset="UTF-8" /><title>Blank</title></head>
<body><div id="root"></div><script type="module" src="/src/main.tsx"></script></body></html>
"""
BLANK_VITE = """import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
export default defineConfig({ plugins: [react()] });
"""


def build_environment() -> dict[str, str]:
    env = dict(os.environ)
    if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
        env.setdefault("NODE_EXTRA_CA_CERTS", "/etc/ssl/certs/ca-certificates.crt")
    return env


def run(argv: list[str], folder: Path) -> None:
    done = subprocess.run(argv, cwd=folder, env=build_environment(), capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"`{' '.join(argv)}` failed in {folder}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def build_apps(work: Path) -> tuple[Path, Path]:
    from ecoctl.service_templates import find_template, render_template

    web = work / "web"
    render_template(find_template("portfolio-web"), web, {"service_name": "web", "port": 3000})
    run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], web)
    run(["npm", "run", "build", "--", "--outDir", str(work / "web-dist"), "--emptyOutDir"], web)
    blank = work / "blank"
    (blank / "src").mkdir(parents=True)
    (blank / "src" / "main.tsx").write_text(BLANK_MAIN)
    (blank / "index.html").write_text(BLANK_INDEX)
    (blank / "vite.config.ts").write_text(BLANK_VITE)
    (blank / "package.json").write_text('{"name": "blank", "private": true, "type": "module"}\n')
    (blank / "node_modules").symlink_to(web / "node_modules")
    run([str(web / "node_modules" / ".bin" / "vite"), "build", "--outDir", str(work / "blank-dist"), "--emptyOutDir"], blank)
    for name in ("serve.py", "app.json"):  # served the same way
        shutil.copy(web / name, blank / name)
    return work / "web-dist", work / "blank-dist"


def gzip_bytes(dist: Path) -> dict[str, int]:
    sizes = {"js": 0, "css": 0}
    for path in (dist / "assets").iterdir():
        kind = path.suffix.lstrip(".")
        if kind in sizes:
            sizes[kind] += len(gzip.compress(path.read_bytes(), 9))
    return sizes


class StubApi(BaseHTTPRequestHandler):
    """GET /portfolios: a page of ten; GET /portfolios/N/valuation: a small valuation."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path.startswith("/portfolios?"):
            items = [{"id": n, "name": f"Portfolio {n}", "currency": "EUR" if n % 2 else "USD",
                      "created_at": "2026-01-01T00:00:00Z"} for n in range(1, 11)]
            body = {"items": items, "total": 10, "limit": 10, "offset": 0}
        else:
            number = int(self.path.split("/")[2])
            zero = "0.0000000000"
            body = {"portfolio_id": number, "currency": "EUR" if number % 2 else "USD", "holdings": [],
                    "totals": {"market_value": zero, "cost_basis": zero, "unrealized_gain": zero,
                               "realized_gain": zero, "dividends": zero, "cash": "100.0000000000",
                               "total_value": "100.0000000000", "unpriced_positions": 0}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(dist: Path, folder: Path, api: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {"PATH": os.environ["PATH"], "PORT": str(port), "OIDC_ISSUER": "http://127.0.0.1:9/application/o/web/",
           "OIDC_CLIENT_ID": "web", "API_URLS": f"portfolio={api}"}
    process = subprocess.Popen([sys.executable, str(folder / "serve.py"), str(dist)],
                               cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, url
        except OSError:
            time.sleep(0.05)
    sys.exit("serve.py did not start")


SIGNED_IN = """(() => {
  const user = {id_token: "x", access_token: "stub", refresh_token: "stub", token_type: "Bearer",
                scope: "openid", profile: {sub: "dev", name: "dev", iss: "i", aud: "web", exp: 4102444800, iat: 1},
                expires_at: 4102444800};
  sessionStorage.setItem("oidc.user:http://127.0.0.1:9/application/o/web/:web", JSON.stringify(user));
})();"""


def first_load_ms(browser, url: str, ready: str, signed_in: bool, runs: int) -> float:
    times = []
    for _ in range(runs):
        context = browser.new_context()
        if signed_in:
            context.add_init_script(SIGNED_IN)
        page = context.new_page()
        page.goto(url, wait_until="commit")
        shown = page.wait_for_function(f"() => document.querySelector({ready!r}) && performance.now()",
                                       polling="raf", timeout=30_000)
        times.append(shown.json_value())
        context.close()
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="page loads per app (the median is printed)")
    args = parser.parse_args()
    if shutil.which("npm") is None or not os.access(CHROMIUM, os.X_OK):
        sys.exit("needs npm and /usr/bin/chromium: apt-get install nodejs npm chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="webapp-bench-") as temp:
        work = Path(temp)
        web_dist, blank_dist = build_apps(work)
        api = ThreadingHTTPServer(("127.0.0.1", 0), StubApi)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        servers = [serve(web_dist, work / "web", f"http://127.0.0.1:{api.server_address[1]}"),
                   serve(blank_dist, work / "blank", "http://127.0.0.1:9")]
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                web_ms = first_load_ms(browser, f"{servers[0][1]}/portfolios", "[aria-label=Portfolios] li", True, args.runs)
                blank_ms = first_load_ms(browser, f"{servers[1][1]}/", "h1", False, args.runs)
                browser.close()
        finally:
            for process, _ in servers:
                process.terminate()
                process.wait(10)
            api.shutdown()
        rows = [("portfolio-web", gzip_bytes(web_dist), web_ms), ("blank Vite React", gzip_bytes(blank_dist), blank_ms)]
    print(f"{'app':<18} {'JS gzip':>10} {'CSS gzip':>10} {'first screen (median of ' + str(args.runs) + ')':>30}")
    for name, sizes, ms in rows:
        print(f"{name:<18} {sizes['js']:>9,}B {sizes['css']:>9,}B {ms:>27.0f} ms")
    web, blank = rows[0], rows[1]
    print(f"portfolio-web / blank: {(web[1]['js'] + web[1]['css']) / (blank[1]['js'] + blank[1]['css']):.1f}x the bytes, "
          f"{web[2] / blank[2]:.1f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
