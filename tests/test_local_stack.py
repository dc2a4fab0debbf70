"""`make run`'s stack for real: uvicorn, a Celery worker and beat on the embedded defaults
(SQLite, local filesystem broker), started by `manage.py runstack` and stopped with Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback only)
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_runstack_serves_site_and_runs_worker_and_beat(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(CONCIERGE_VAR_DIR=str(tmp_path), CONCIERGE_HEARTBEAT_SECONDS="1", PYTHONUNBUFFERED="1")
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "bootstrap_demo"], env=env, cwd=ROOT, check=True, capture_output=True)
    port = free_port()
    log = (tmp_path / "stack.log").open("w")
    stack = subprocess.Popen(
        [*manage, "runstack", "--port", str(port), "--concurrency", "1"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline:
            try:
                status, body = fetch(base + "/readyz")
                ready = json.loads(body)
                if ready["checks"]["celery"]["ok"]:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        assert ready is not None, (tmp_path / "stack.log").read_text()[-3000:]
        # Beat scheduled the heartbeat, the worker ran it against the shared SQLite database.
        assert ready["checks"]["celery"]["ok"], ready
        assert ready["checks"]["database"]["detail"] == "sqlite"
        status, body = fetch(base + "/")
        assert status == 200 and b"data-widget-key=" in body
        status, body = fetch(base + "/admin/login/")
        assert status == 200 and b"Concierge" in body
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=30)
        log.close()
    output = (tmp_path / "stack.log").read_text()
    assert code == 0, output[-3000:]
    assert "Concierge stopped." in output
