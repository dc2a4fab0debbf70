"""The production stack for real, on loopback: gunicorn with uvicorn workers (the deploy
kit's gunicorn.conf.py, DEBUG off) on PostgreSQL and Redis, a Celery worker and beat on
Redis, and a widget chat through it: session, websocket turn with a cited answer, a handoff
routed by the worker, readiness, multiprocess metrics and JSON logs."""

import json
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from tests.support import (
    CELERY_WORKER,
    GUNICORN,
    ROOT,
    Processes,
    free_port,
    healthy,
    http,
    production_env,
    until,
    ws_frames_until,
)
from tests.tenancy.factories import StaffFactory
from tickets.models import Ticket

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_gunicorn_uvicorn_workers_celery_and_beat_serve_a_chat(trained_org, tmp_path):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the production stack runs on PostgreSQL and Redis")
    ann = StaffFactory(organization=trained_org, username="ann", email="ann@example.com")
    port = free_port()
    env = production_env(tmp_path, port)
    run = {"cwd": ROOT, "env": env, "timeout": 120, "capture_output": True, "text": True}
    static = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"], **run)
    assert static.returncode == 0, static.stderr
    schedule = subprocess.run([sys.executable, "manage.py", "beat_schedule_load"], **run)
    assert schedule.returncode == 0 and "added" in schedule.stdout, schedule.stderr

    stack = Processes(tmp_path, env)
    stack.start("web", GUNICORN)
    stack.start("worker", CELERY_WORKER)
    stack.start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                         "--schedule", str(tmp_path / "beat-schedule")])  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        assert until(lambda: healthy(base), timeout=90), stack.log("web")[-3000:]
        status, body = http(f"{base}/api/v1/widget/sessions", {"widget_key": trained_org.widget_key, "name": "Maya"})
        assert status == 201, body
        session = json.loads(body)

        ws_url = f"ws://127.0.0.1:{port}/ws/chat/?token={session['token']}"
        with connect(ws_url, origin=ws_url.replace("ws://", "http://").split("/ws/")[0], proxy=None) as ws:
            ws.send(json.dumps({"type": "message", "id": "p1", "text": "how long do refunds take?"}))
            frames = ws_frames_until(ws, lambda f: f["type"] == "message" and f["role"] == "bot")
            assert frames[0] == {"type": "ack", "id": "p1", "seq": 1}
            assert frames[-1]["sources"] and not frames[-1]["handoff"]
            # Idle longer than redis-py's default 5 s read timeout: the channel layer's blocking
            # receive must survive it (it did not, before the channel layer set no read timeout).
            time.sleep(6.5)
            ws.send(json.dumps({"type": "message", "id": "p2", "text": "I want to talk to a human agent now"}))
            handoff = ws_frames_until(ws, lambda f: f["type"] == "message" and f["role"] == "bot")[-1]
            assert handoff["handoff"] is True

        # The escalation was queued by a web worker and routed by the Celery worker over Redis.
        routed = until(lambda: Ticket.objects.filter(conversation_id=session["conversation_id"], assignee=ann).first())
        assert routed is not None, stack.log("worker")[-3000:]

        # Beat → worker heartbeat makes the stack ready.
        def ready():
            status, body = http(f"{base}/readyz")
            return status == 200 and json.loads(body)["checks"]["celery"]["ok"]

        assert until(ready, timeout=60), http(f"{base}/readyz")
        status, metrics = http(f"{base}/metrics")
        text = metrics.decode()
        assert status == 200
        turns = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                    if line.startswith("concierge_chat_turns_total{"))  # fmt: skip
        assert turns == 2  # counted across both web processes
        assert 'concierge_http_requests_total{method="POST",status="201",view="api/v1/widget/sessions"}' in text
    finally:
        stack.stop()

    access = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines() if line.startswith("{")]
    session_line = next(
        e for e in access if e.get("logger") == "concierge.access" and "widget/sessions" in e["message"]
    )
    assert len(session_line["request_id"]) == 32 and session_line["status"] == 201
    turn_lines = [e for e in access if e["message"].startswith("bot turn")]
    assert {e["conversation_id"] for e in turn_lines} == {session["conversation_id"]}
