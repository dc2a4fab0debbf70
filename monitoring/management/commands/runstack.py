"""Start the whole embedded stack in the foreground: a Chroma server on loopback (unless
CHROMA_HOST names one), the ASGI server (HTTP + websocket), a Celery worker and Celery beat.
Ctrl-C (or SIGTERM) stops them all.

The web process and the worker must share one vector store: the worker indexes what staff
publish and the web process answers from it at once. Two embedded Chroma clients on one folder
would not see each other's writes, so the stack serves the folder from one Chroma server.

A process that exits while the stack runs (a crash, the out-of-memory killer) is started again
after a second, on the same address, and the terminal says so; one that exits RESTARTS times
within RESTART_WINDOW seconds stops the whole stack with its status, as a broken setup would."""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from knowledge.vector_server import LocalChromaServer

RESTARTS = 3  # exits of one process within RESTART_WINDOW seconds before the stack gives up
RESTART_WINDOW = 60.0
RESTART_DELAY = 1.0  # seconds; Ctrl-C reaches the children too, and must win over a restart


class Command(BaseCommand):
    help = "Run uvicorn, a Celery worker and Celery beat together until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")
        parser.add_argument(
            "--chroma-port", type=int, default=0, help="Local Chroma server port (default: a free one)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        address_free(options["host"], options["port"])
        call_command("beat_schedule_load", stdout=self.stdout)
        chroma = None
        env = dict(os.environ)
        if not settings.CHROMA_HOST:
            chroma_log = open(settings.VAR_DIR / "chroma.log", "ab")  # noqa: SIM115 (open while the stack runs)
            try:
                chroma = LocalChromaServer(settings.CHROMA_PATH, port=options["chroma_port"], log=chroma_log).start()
            except RuntimeError as exc:
                raise CommandError(f"Could not start the local Chroma server: {exc}") from exc
            env["CHROMA_HOST"] = chroma.address
        python = sys.executable
        commands = {
            "web": [
                python, "-m", "uvicorn", "config.asgi:application",
                "--host", options["host"], "--port", str(options["port"]), "--no-access-log",
            ],
            "worker": [
                python, "-m", "celery", "-A", "config", "worker",
                "--loglevel", "INFO", "--concurrency", str(options["concurrency"]), "--hostname", "local@%h",
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
        }  # fmt: skip
        processes = {name: subprocess.Popen(argv, env=env) for name, argv in commands.items()}
        base = f"http://{options['host']}:{options['port']}"
        self.stdout.write(
            "\nConcierge is starting:\n"
            f"  demo site with chat widget  {base}/\n"
            f"  support desk (staff)        {base}/admin/\n"
            f"  API docs                    {base}/api/docs/\n"
            f"  health / readiness          {base}/healthz  {base}/readyz\n"
            f"  vector store (Chroma)       {env.get('CHROMA_HOST') or settings.CHROMA_PATH}\n"
            "Press Ctrl-C to stop.\n"
        )
        self.stdout.flush()

        stopping = False

        def stop(*_: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        failed = ""
        exits: dict[str, list[float]] = {}
        while not stopping:
            watched = {**processes, **({"chroma": chroma.process} if chroma and chroma.process else {})}
            for name, process in watched.items():
                if process.poll() is None or stopping:
                    continue
                now = time.monotonic()
                recent = exits[name] = [t for t in exits.get(name, []) if now - t < RESTART_WINDOW] + [now]
                if len(recent) >= RESTARTS:
                    failed = (
                        f"{name} exited {len(recent)} times within {RESTART_WINDOW:.0f} s, "
                        f"the last with status {process.returncode}"
                    )
                    stopping = True
                    break
                self.stderr.write(f"{name} exited with status {process.returncode}; starting it again.")
                time.sleep(RESTART_DELAY)
                if stopping:
                    break
                if name == "chroma" and chroma is not None:
                    try:
                        chroma.start()
                    except RuntimeError as exc:
                        failed, stopping = f"the Chroma server could not start again ({exc})", True
                        break
                else:
                    processes[name] = subprocess.Popen(commands[name], env=env)
            time.sleep(0.2)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        if chroma is not None:
            chroma.stop()
        if failed:
            raise CommandError(f"Stopped because {failed}.")
        self.stdout.write("Concierge stopped.")


def address_free(host: str, port: int) -> None:
    """Refuse at once, before anything starts, a web address another program holds."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CommandError(f"Cannot serve on {host}:{port} ({exc.strerror}); choose another with --port.") from exc
