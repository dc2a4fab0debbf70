"""Faults, for real: Redis goes away mid-chat, PostgreSQL restarts mid-chat, and a Celery
worker is killed in the middle of a task. The chat degrades with a clear message and
recovers; no stored message or ticket is lost; the interrupted task runs again and its
effects happen once."""

import json
import os
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from websockets.sync.client import connect

from agents.turns import turn_gate_close
from tests.support import free_port, run_database_url, until, ws_frames_until
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory
from tickets import services
from tickets.models import Message, Ticket, TicketEvent

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def needs_real_services():
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("fault tests run on PostgreSQL and Redis")


def server_env(tmp_path, **extra):
    return {
        **os.environ,
        "DATABASE_URL": run_database_url(),
        "CONCIERGE_VAR_DIR": str(tmp_path / "var"),
        "CHROMA_PATH": str(settings.CHROMA_PATH),
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def start_redis(port: int, workdir: Path) -> None:
    subprocess.run(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                    "--daemonize", "yes", "--dir", str(workdir), "--pidfile", str(workdir / f"redis-{port}.pid")],
                   check=True)  # fmt: skip
    until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).returncode == 0, 10)


def stop_redis(port: int) -> None:
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True)


class Web:
    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(tmp_path / "web.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(self.port),
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert until(self._up, 60), (tmp_path / "web.log").read_text()[-2000:]

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2):  # noqa: S310 (loopback)
                return True
        except OSError:
            return False

    def session(self, widget_key: str) -> dict:
        request = urllib.request.Request(  # noqa: S310 (loopback)
            self.base + "/api/v1/widget/sessions",
            data=json.dumps({"widget_key": widget_key}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def chat(self, token: str):
        return connect(
            f"ws://127.0.0.1:{self.port}/ws/chat/?token={token}", origin=f"http://127.0.0.1:{self.port}", proxy=None
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def bot_reply(frame: dict) -> bool:
    return frame["type"] == "message" and frame["role"] == "bot"


def ask(ws, client_id: str, text: str = "can I rent skis?") -> list[dict]:
    ws.send(json.dumps({"type": "message", "id": client_id, "text": text}))
    return ws_frames_until(ws, bot_reply)


def test_chat_rides_out_a_redis_outage(trained_org, tmp_path):
    needs_real_services()
    port = free_port()
    start_redis(port, tmp_path)
    web = Web(server_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{port}/0"), tmp_path)
    try:
        session = web.session(trained_org.widget_key)
        with web.chat(session["token"]) as ws:
            ask(ws, "r1")
            stop_redis(port)  # channel layer, cache and broker gone
            during = ask(ws, "r2")
            assert during[0] == {"type": "ack", "id": "r2", "seq": 3}  # stored and acknowledged
        with web.chat(session["token"]) as ws:  # a new connection while Redis is still down
            first = json.loads(ws.recv(timeout=10))
            assert first["type"] == "error" and first["code"] == "degraded" and "saved" in first["message"]
            ask(ws, "r3")
            start_redis(port, tmp_path)
            time.sleep(1.5)
            ask(ws, "r4")
    finally:
        web.stop()
        stop_redis(port)
    roles = list(Message.objects.filter(conversation_id=session["conversation_id"]).values_list("role", flat=True))
    assert roles == ["customer", "bot"] * 4  # every message stored once and answered once


def pg_control(action: str) -> None:
    """Stop or start the test PostgreSQL that .ci/services.sh runs (same data folder, same options)."""
    state = os.environ.get("CONCIERGE_SERVICES_DIR", "/tmp/concierge-test-services")  # noqa: S108
    port = str(connection.settings_dict["PORT"])
    bin_dir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    runner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if action == "stop":
        subprocess.run([*runner, str(bin_dir / "pg_ctl"), "-D", f"{state}/pg", "-m", "fast", "-w", "stop"], check=True,
                       capture_output=True)  # fmt: skip
    else:
        options = f"-h 127.0.0.1 -p {port} -k {state} -c fsync=off -c synchronous_commit=off -c max_connections=300"
        subprocess.run([*runner, str(bin_dir / "pg_ctl"), "-D", f"{state}/pg", "-l", f"{state}/pg.log", "-w", "-t",
                        "60", "start", "-o", options], check=True, capture_output=True)  # fmt: skip


def test_chat_rides_out_a_postgresql_restart(trained_org, tmp_path):
    needs_real_services()
    if not Path(os.environ.get("CONCIERGE_SERVICES_DIR", "/tmp/concierge-test-services"), "pg").exists():  # noqa: S108
        pytest.skip("needs the PostgreSQL that .ci/services.sh runs")
    web = Web(server_env(tmp_path, REDIS_URL=settings.REDIS_URL), tmp_path)
    stopped = False
    try:
        session = web.session(trained_org.widget_key)
        with web.chat(session["token"]) as ws:
            ask(ws, "p1")
            connection.close()
            pg_control("stop")
            stopped = True
            ws.send(json.dumps({"type": "message", "id": "p2", "text": "can I rent skis?"}))
            refused = ws_frames_until(ws, lambda f: f["type"] == "error")[-1]
            assert refused["code"] == "unavailable" and "sent again" in refused["message"]
            pg_control("start")
            stopped = False
            # The widget sends the unacknowledged message again, under the same id, until it is stored.
            acked = None
            for _ in range(20):
                ws.send(json.dumps({"type": "message", "id": "p2", "text": "can I rent skis?"}))
                frame = json.loads(ws.recv(timeout=10))
                if frame["type"] == "ack":
                    acked = frame
                    break
                time.sleep(0.5)
            assert acked == {"type": "ack", "id": "p2", "seq": 3}
            ws_frames_until(ws, bot_reply)
    finally:
        if stopped:
            pg_control("start")
        web.stop()
        connection.close()
        # This test process's own pool would wait out its reconnection backoff: start it afresh,
        # and its chat threads too, so that no later test meets a connection from before the restart.
        connection.close_pool()
        turn_gate_close()
    roles = list(Message.objects.filter(conversation_id=session["conversation_id"]).values_list("role", flat=True))
    assert roles == ["customer", "bot", "customer", "bot"]


class StallingSmtp(socketserver.ThreadingTCPServer):
    """A loopback SMTP server that can hang before its greeting (a mail relay gone slow)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.stall = True
        self.stalled_connections = 0
        self.messages: list[str] = []
        super().__init__(("127.0.0.1", 0), SmtpHandler)


class SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: StallingSmtp = self.server  # type: ignore[assignment]
        if server.stall:
            server.stalled_connections += 1
            while server.stall:  # say nothing: the client waits for a greeting that never comes
                time.sleep(0.1)
            return
        self.wfile.write(b"220 fake ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 fake\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                body = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(chunk.decode(errors="replace"))
                server.messages.append("".join(body))
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_a_worker_killed_mid_task_is_replaced_and_the_task_takes_effect_once(org, tmp_path):
    needs_real_services()
    ann = StaffFactory(organization=org, username="ann", email="ann@example.com")
    smtp = StallingSmtp()
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    env = server_env(tmp_path, REDIS_URL=settings.REDIS_URL, CELERY_VISIBILITY_TIMEOUT="2", CELERY_RESTORE_INTERVAL="1",
                     EMAIL_URL=f"smtp://127.0.0.1:{smtp.server_address[1]}")  # fmt: skip
    worker_cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO"]
    logs = [open(tmp_path / f"worker{n}.log", "w") for n in (1, 2)]  # noqa: SIM115
    first = subprocess.Popen(worker_cmd, cwd=ROOT, env=env, stdout=logs[0], stderr=subprocess.STDOUT)
    second = None
    try:
        customer = CustomerFactory(organization=org, name="Maya")
        conversation = services.conversation_start(customer=customer)
        services.message_create(conversation=conversation, role="customer", text="I need a person")
        ticket = services.conversation_escalate(conversation=conversation, reason="asked", intent="human_request")
        # The worker routes the ticket, then hangs talking to the mail relay: kill it right there.
        assert until(lambda: smtp.stalled_connections > 0, 60), "the task never reached the email"
        assert Ticket.objects.get(pk=ticket.pk).assignee == ann
        first.kill()
        first.wait(timeout=10)
        smtp.stall = False
        second = subprocess.Popen(worker_cmd, cwd=ROOT, env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        assert until(lambda: smtp.messages, 90), (tmp_path / "worker2.log").read_text()[-3000:]
        assert until(lambda: Ticket.objects.get(pk=ticket.pk).escalation_notified_at, 20)
        time.sleep(4)  # past another visibility timeout: nothing runs a third time
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(timeout=20)
        smtp.shutdown()
        for log in logs:
            log.close()
    assert len(smtp.messages) == 1 and f"Ticket #{ticket.pk}" in smtp.messages[0]
    assert TicketEvent.objects.filter(ticket=ticket, kind="assigned", after=ann.pk).count() == 1
