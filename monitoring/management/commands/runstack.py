"""Start the whole embedded stack in the foreground: the ASGI server (HTTP + websocket),
a Celery worker and Celery beat. Ctrl-C (or SIGTERM) stops all three."""

import signal
import subprocess
import sys
import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run uvicorn, a Celery worker and Celery beat together until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("beat_schedule_load", stdout=self.stdout)
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
        processes = {name: subprocess.Popen(argv) for name, argv in commands.items()}
        base = f"http://{options['host']}:{options['port']}"
        self.stdout.write(
            "\nConcierge is starting:\n"
            f"  demo site with chat widget  {base}/\n"
            f"  support desk (staff)        {base}/admin/\n"
            f"  API docs                    {base}/api/docs/\n"
            f"  health / readiness          {base}/healthz  {base}/readyz\n"
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
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    failed = f"{name} exited with status {process.returncode}"
                    stopping = True
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
        if failed:
            raise CommandError(f"Stopped because {failed}.")
        self.stdout.write("Concierge stopped.")
