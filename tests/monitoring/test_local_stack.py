"""`make run`'s stack for real: a local Chroma server, uvicorn, a Celery worker and beat on the
embedded defaults (SQLite, local filesystem broker), started by `manage.py runstack` and stopped
with Ctrl-C. An article published from another process (a management command, as an operator
would) is cited by the running assistant at once, and no longer once it is unpublished. A process
of the stack that dies is started again and the stack serves on."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from tests.knowledge.test_freshness import ALPACA_BODY, ALPACA_QUESTION
from tests.support import free_port, http, until, ws_frames_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (loopback only)
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
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
        # The staff API on SQLite: a page's tags in a query of their own (PostgreSQL reads
        # them in the rows' query), one ticket rendered as the list renders it.
        made = subprocess.run([*manage, "drf_create_token", "agent"], env=env, cwd=ROOT, capture_output=True, text=True)
        staff = {"Authorization": f"Token {made.stdout.split()[2]}"}
        listed = json.loads(fetch(base + "/api/v1/tickets/?page_size=50", staff)[1])["results"]
        tagged = [row for row in listed if row["tags"]]
        assert ["damaged", "warranty"] in [row["tags"] for row in tagged] and len(tagged) < len(listed), listed
        assert all(json.loads(fetch(base + f"/api/v1/tickets/{row['id']}/", staff)[1]) == row for row in tagged)

        # One vector store for every process: the stack serves var/chroma from a Chroma server.
        assert ready["checks"]["chroma"]["detail"].startswith("server 127.0.0.1:"), ready
        widget_key = re.search(rb'data-widget-key="([^"]+)"', fetch(base + "/")[1]).group(1).decode()
        assert "alpaca" not in ask(port, widget_key)

        article = tmp_path / "alpacas.md"
        article.write_text(f"---\ntitle: Alpacas at the climbing wall\n---\n{ALPACA_BODY}\n")
        ingest = subprocess.run([*manage, "kb_ingest", str(article), "--org", "trailhead"], env=env, cwd=ROOT,
                                capture_output=True, text=True)  # fmt: skip
        assert ingest.returncode == 0, ingest.stderr
        cited = until(lambda: "alpaca" in ask(port, widget_key), timeout=10)
        assert cited, (tmp_path / "stack.log").read_text()[-3000:]

        retract = subprocess.run([*manage, "kb_article", "unpublish", "alpacas", "--org",
                                  "trailhead"], env=env, cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        assert retract.returncode == 0 and "Unpublished" in retract.stdout, retract.stderr
        assert until(lambda: "alpaca" not in ask(port, widget_key), timeout=10)
        # The turns' audit entries were chained by the Python path (PostgreSQL does it in one
        # database call), and the chain checks out.
        verify = subprocess.run([*manage, "audit_verify", "--org", "trailhead"], env=env, cwd=ROOT,
                                capture_output=True, text=True)  # fmt: skip
        assert verify.returncode == 0 and re.search(r"trailhead: ok, [1-9]\d* entries", verify.stdout), verify

        # Nothing has died so far; should something have, the stack started it again and served
        # on (what the product promises), and the run's warnings say which and how.
        if "; starting it again." in log_tail(tmp_path, size=0):
            warnings.warn(f"a process of the stack exited by itself:\n{log_tail(tmp_path)}", stacklevel=1)

        # A process that dies (here killed, as the out-of-memory killer would) is started again.
        worker_ready = re.compile(r"local@\S+ ready\.")
        readies = len(worker_ready.findall(log_tail(tmp_path, size=0)))
        for name, pattern in (("worker", "celery -A config worker"), ("web", "uvicorn config.asgi")):
            os.kill(child_pid(stack, pattern), signal.SIGKILL)
            said = f"{name} exited with status -9; starting it again."
            assert until(lambda said=said: said in log_tail(tmp_path), timeout=10)
        assert until(lambda: len(worker_ready.findall(log_tail(tmp_path, size=0))) > readies, timeout=60)
        assert until(lambda: b"data-widget-key=" in fetch_or(base + "/"), timeout=60)
        assert "alpaca" not in ask(port, widget_key)
    except Exception as exc:  # every failure says what the stack printed
        exc.add_note(f"stack.log:\n{log_tail(tmp_path)}\nchroma.log:\n{log_tail(tmp_path, 'chroma.log', 1500)}")
        raise
    finally:
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=30)
        log.close()
    output = (tmp_path / "stack.log").read_text()
    assert code == 0, output[-3000:]
    assert "Concierge stopped." in output
    assert not (tmp_path / "chroma.server").exists()  # the local server is gone and no longer announced


def log_tail(var_dir: Path, name: str = "stack.log", size: int = 4000) -> str:
    """The last ``size`` characters of a log the stack writes in its var directory (0: all)."""
    path = var_dir / name
    return path.read_text(errors="replace")[-size:] if path.exists() else f"({name} was not written)"


def fetch_or(url: str) -> bytes:
    """The body at ``url``, or nothing while the server is down."""
    try:
        return fetch(url)[1]
    except OSError:
        return b""


def child_pid(stack: subprocess.Popen[bytes], pattern: str) -> int:
    """The pid of the stack's child process whose command line contains ``pattern``."""
    found = subprocess.run(["pgrep", "-P", str(stack.pid), "-f", pattern], capture_output=True, text=True)
    pids = found.stdout.split()
    assert len(pids) == 1, (pattern, found)
    return int(pids[0])


def ask(port: int, widget_key: str, within: float = 30) -> str:
    """The titles an answer to the alpaca question cites, in one string, lowercased. A web
    process the stack is starting again (it died) is waited for, up to ``within`` seconds: the
    stack promises to serve on, and its log, checked by the test, says that it restarted."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    deadline = time.monotonic() + within
    while True:
        try:
            status, body = http(f"http://127.0.0.1:{port}/api/v1/widget/sessions", {"widget_key": widget_key})
            assert status == 201, body
            token = json.loads(body)["token"]
            with connect(f"ws://127.0.0.1:{port}/ws/chat/?token={token}", origin=f"http://127.0.0.1:{port}") as ws:
                ws.send(json.dumps({"type": "message", "id": "q", "text": ALPACA_QUESTION}))
                answer = ws_frames_until(ws, lambda f: f["type"] == "message" and f["role"] == "bot")[-1]
            return " ".join(source["title"] for source in answer["sources"]).lower()
        except (OSError, ConnectionClosed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_runstack_refuses_an_address_in_use_before_starting_anything(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "CONCIERGE_VAR_DIR": str(tmp_path)}
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "runstack", "--port", str(port)], env=env,
                                cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert f"Cannot serve on 127.0.0.1:{port} (Address already in use); choose another with --port." in result.stderr
    assert not (tmp_path / "chroma").exists()  # nothing was started
