"""The chat widget as a company's website loads it: what it weighs and how fast it is up.

- Size: widget.js + widget.css gzipped (level 9), against the 20 KB budget.
- Time from the script tag starting to load to an open chat websocket, in headless Chromium,
  for a page on a second loopback origin (an allowed website) against uvicorn on the embedded
  defaults: a first visit (the page calls Concierge.open() at once: settings, session, socket)
  and a returning visitor (the token is in localStorage: settings and socket). Each load is a
  fresh page; the browser cache is disabled, so every load fetches the script and stylesheet.

    .venv/bin/python bench/widget.py [--loads 20]

Writes bench/results/widget.json.
"""

import argparse
import gzip
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.stack import embedded_server, free_port, percentile, write_result  # noqa: E402

STATIC = ROOT / "templates" / "static" / "concierge"
BUDGET_BYTES = 20 * 1024
# Before the widget script runs: note when the first chat websocket opens.
PROBE = (
    "<script>(function(){var W=window.WebSocket;window.WebSocket=function(u,p){var s=new W(u,p);"
    "s.addEventListener('open',function(){if(!window.__open){window.__open=performance.now();}});return s;};"
    "window.WebSocket.prototype=W.prototype;})();</script>"
)


def sizes() -> dict[str, int]:
    out = {}
    for name in ("widget.js", "widget.css"):
        raw = (STATIC / name).read_bytes()
        out[name] = len(raw)
        out[f"{name}.gz"] = len(gzip.compress(raw, compresslevel=9))
    out["total.gz"] = out["widget.js.gz"] + out["widget.css.gz"]
    return out


def page(base: str, key: str, open_now: bool) -> str:
    opener = (
        "<script>window.addEventListener('load',function(){window.Concierge.open();});</script>" if open_now else ""
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Shop</title>" + PROBE + "</head><body><h1>Shop</h1>"
        f"<script src='{base}/static/concierge/widget.js' data-widget-key='{key}' defer></script>{opener}</body></html>"
    )


def serve(pages: dict[str, str]) -> tuple[str, http.server.ThreadingHTTPServer]:
    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{port}", server


def browser(profile: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return driver


def measure(driver, url: str, script_url: str) -> float:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    try:
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return window.__open || null"))
    except Exception:
        print(driver.get_log("browser"))
        raise
    return float(
        driver.execute_script(
            "var e = performance.getEntriesByName(arguments[0])[0]; return window.__open - e.startTime;", script_url
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=20)
    args = parser.parse_args()
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        sys.exit("bench/widget.py needs chromium and chromedriver (Debian packages chromium, chromium-driver)")
    weights = sizes()
    pages: dict[str, str] = {}
    shop, pages_server = serve(pages)
    first, returning = [], []
    # Every load is a new visitor from 127.0.0.1: lift the per-address session limit.
    with embedded_server(RATE_WIDGET_SESSIONS_PER_IP="100000/min", RATE_WIDGET_SESSIONS_PER_ORG="100000/min") as (
        base,
        env,
    ):
        subprocess.run([sys.executable, "manage.py", "widget_origins", "--add", shop], cwd=ROOT, env=env, check=True,
                       capture_output=True)  # fmt: skip
        query = "from tenancy.models import Organization; print(Organization.objects.first().widget_key)"
        key = subprocess.run([sys.executable, "manage.py", "shell", "-c", query], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout.split()[-1]  # fmt: skip
        pages["/first"] = page(base, key, open_now=True)
        pages["/back"] = page(base, key, open_now=False)
        script_url = f"{base}/static/concierge/widget.js"
        profile = tempfile.mkdtemp(prefix="concierge-widget-bench-")
        driver = browser(profile)
        try:
            measure(driver, shop + "/first", script_url)  # warm up the server (models, connections)
            for _ in range(args.loads):
                driver.get(shop + "/back")
                driver.execute_script("localStorage.clear()")
                first.append(measure(driver, shop + "/first", script_url))
                returning.append(measure(driver, shop + "/back", script_url))
        finally:
            driver.quit()
            pages_server.shutdown()
    report = {
        "benchmark": "widget",
        "setup": "headless Chromium, page on a second loopback origin, uvicorn on the embedded defaults, cache off",
        "bytes": weights,
        "budget_gz_bytes": BUDGET_BYTES,
        "within_budget": weights["total.gz"] <= BUDGET_BYTES,
        "loads": args.loads,
        "script_to_open_socket_ms": {
            "first_visit": {"p50": percentile(first, 0.5), "p95": percentile(first, 0.95)},
            "returning_visitor": {"p50": percentile(returning, 0.5), "p95": percentile(returning, 0.95)},
        },
    }
    path = write_result("widget", report)
    print(
        f"widget.js + widget.css gzipped: {weights['total.gz']:,} bytes "
        f"({weights['widget.js.gz']:,} + {weights['widget.css.gz']:,}; budget {BUDGET_BYTES:,})"
    )
    for name, values in (("first visit", first), ("returning visitor", returning)):
        print(
            f"script load -> open socket, {name}: p50 {percentile(values, 0.5)} ms, p95 {percentile(values, 0.95)} ms"
        )
    print(f"written {path}")


if __name__ == "__main__":
    main()
