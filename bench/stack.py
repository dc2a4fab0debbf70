"""The production stack on loopback, for the load benchmarks: its own PostgreSQL (fsync on)
and Redis on their own ports, gunicorn with uvicorn workers (deploy/gunicorn.conf.py, DEBUG
off), a Celery worker, the demo company loaded. Used by chat_load.py, api_load.py and soak.py.

    with ProductionStack(web_workers=2) as stack:
        stack.base_url, stack.widget_key, stack.api_token, stack.rss_mb(), stack.sql(...)
"""

import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PGPORT, REDIS_PORT = 55433, 56380
SERVICES_DIR = "/tmp/concierge-bench-services"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 65536), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**machine(), **data}, indent=2) + "\n")
    return path


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _pss_kb(pid: int) -> int:
    """Proportional set size: pages shared between processes (a forked worker's copy of what
    the master loaded, shared libraries) are split among them, so PSS adds up to what the
    processes take from the machine together; RSS counts shared pages once per process."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


@contextmanager
def embedded_server(**extra_env: str) -> Iterator[tuple[str, dict[str, str]]]:
    """uvicorn on the embedded defaults (SQLite, in-memory channel layer) in a throw-away folder,
    the demo company loaded: yields (base URL, environment for manage.py)."""
    workdir = tempfile.mkdtemp(prefix="concierge-bench-embedded-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(CONCIERGE_VAR_DIR=workdir, ORT_DISABLE_TELEMETRY="1", DEBUG="false", LOG_LEVEL="WARNING")
    env.update(SECURE_SSL_REDIRECT="false", **extra_env)  # plain HTTP on loopback
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run([*manage, "bootstrap_demo"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                time.sleep(0.2)
        yield base, env
    finally:
        server.terminate()
        server.wait(timeout=15)


class ProductionStack:
    def __init__(self, *, web_workers: int = 2, worker: bool = True, beat: bool = False, quiet: bool = True) -> None:
        self.web_workers = web_workers
        self.with_worker = worker
        self.with_beat = beat
        self.quiet = quiet
        self.workdir = Path(tempfile.mkdtemp(prefix="concierge-bench-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.widget_key = ""
        self.api_token = ""
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{PGPORT}/concierge_bench",
            "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 60,
            "SECURE_SSL_REDIRECT": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CONCIERGE_VAR_DIR": str(self.workdir / "var"),
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(web_workers),
            "CONCIERGE_BENCH_ENDPOINTS": "1",
            # Every simulated customer and the API client share one loopback address and one
            # token: lift the per-address, per-organization and per-user limits. The per-session
            # chat limit (20/min) stays, and human pace is far below it.
            "RATE_WIDGET_SESSIONS_PER_IP": "1000000/min",
            "RATE_WIDGET_SESSIONS_PER_ORG": "1000000/min",
            "RATE_CHAT_MESSAGES_PER_IP": "1000000/min",
            "RATE_CHAT_MESSAGES_PER_ORG": "1000000/min",
            "RATE_API_PER_USER": "100000000/min",
            "CONCIERGE_HEARTBEAT_SECONDS": "5",
            "EMAIL_URL": f"filemail://{self.workdir / 'mail'}",
            "LOG_LEVEL": "WARNING",
            "CONCIERGE_PROFILE_SAMPLE_RATE": os.environ.get("BENCH_PROFILE_RATE", "0"),
            "ORT_DISABLE_TELEMETRY": "1",
            "ANONYMIZED_TELEMETRY": "False",
        }

    # --- lifecycle ---

    def services(self, action: str) -> None:
        env = {
            **os.environ,
            "PGPORT": str(PGPORT),
            "REDIS_PORT": str(REDIS_PORT),
            "CONCIERGE_SERVICES_DIR": SERVICES_DIR,
            "PG_OPTIONS": "-c fsync=on -c synchronous_commit=on",
        }
        subprocess.run(["bash", str(ROOT / ".ci" / "services.sh"), action], env=env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip

    def manage(self, *args: str, timeout: int = 600) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                                text=True, timeout=timeout)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def __enter__(self) -> "ProductionStack":
        raise_fd_limit()
        print(f"starting PostgreSQL :{PGPORT} and Redis :{REDIS_PORT} ...", flush=True)
        self.services("start")
        self.sql("CREATE DATABASE concierge_bench", database="postgres")
        started = time.perf_counter()
        self.manage("migrate", "--noinput")
        self.manage("bootstrap_demo")
        self.manage("collectstatic", "--noinput")
        self.manage("beat_schedule_load")
        self.widget_key = self.sql("SELECT widget_key FROM tickets_organization WHERE slug = 'trailhead'")[0][0]
        self.api_token = self.manage("drf_create_token", "agent").split()[2]
        print(f"demo loaded in {time.perf_counter() - started:.0f} s; starting gunicorn ...", flush=True)
        self.start_web()
        if self.with_worker:
            self.start("worker", ["-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING"])
        if self.with_beat:
            self.start("beat", ["-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                                "--schedule", str(self.workdir / "beat-schedule")])  # fmt: skip
        self.wait_ready()
        return self

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=self.env, stdout=log,
                                                stderr=subprocess.STDOUT)  # fmt: skip

    def start_web(self) -> None:
        self.start("web", ["-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.asgi:application"])

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the web server did not come up: " + (self.workdir / "web.log").read_text()[-2000:])

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
        self.services("stop")

    # --- measuring and disturbing ---

    def web_pids(self) -> list[int]:
        master = self.processes["web"].pid
        return [master, *_children(master)]

    def service_pids(self) -> dict[str, list[int]]:
        """This stack's PostgreSQL (the postmaster and its backends) and Redis, from their pid
        files; not another PostgreSQL or Redis on the machine (the test services')."""
        found: dict[str, list[int]] = {}
        pidfiles = {"postgres": f"{SERVICES_DIR}/pg/postmaster.pid", "redis": f"{SERVICES_DIR}/redis.pid"}
        for name, pidfile in pidfiles.items():
            try:
                pid = int(Path(pidfile).read_text().split()[0])
            except (FileNotFoundError, IndexError, ValueError):
                found[name] = []
                continue
            found[name] = [pid, *_children(pid)]
        return found

    def rss_mb(self) -> dict[str, float]:
        """Web processes (master and workers) in all, as RSS and as PSS; the Celery worker's RSS."""
        pids = self.web_pids()
        web = sum(_rss_kb(pid) for pid in pids) / 1024
        web_pss = sum(_pss_kb(pid) for pid in pids) / 1024
        worker = _rss_kb(self.processes["worker"].pid) / 1024 if "worker" in self.processes else 0.0
        return {"web": round(web, 1), "web_pss": round(web_pss, 1), "worker": round(worker, 1)}

    def kill_one_web_worker(self) -> int:
        """SIGKILL one gunicorn worker mid-run (gunicorn starts a replacement)."""
        victim = _children(self.processes["web"].pid)[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def restart_redis(self, down_seconds: float = 2.0) -> None:
        subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "shutdown", "nosave"], capture_output=True)
        time.sleep(down_seconds)
        subprocess.run(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--pidfile", f"{SERVICES_DIR}/redis.pid", "--logfile", f"{SERVICES_DIR}/redis.log",
             "--dir", SERVICES_DIR],
            check=True,
        )  # fmt: skip

    def sql(self, query: str, params: tuple[Any, ...] = (), database: str = "concierge_bench") -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{PGPORT}/{database}", autocommit=True) as connection:
            cursor = connection.execute(query, params)  # type: ignore[call-overload]
            return cursor.fetchall() if cursor.description else []
