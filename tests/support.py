"""Helpers for the tests that start real processes on loopback."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def exhausted_pool(timeout: float = 0.3) -> Any:
    """Overload: every connection the process's own psycopg pool may open is open and held, so a
    ``getconn`` in the block waits ``timeout`` seconds and raises PoolTimeout, as in a server out of
    connections (and ``config.errors.database_pool_full`` is true). Yields that pool."""
    from psycopg_pool import PoolTimeout

    pool = connection.pool
    assert pool is not None, "the tests run on PostgreSQL with the connection pool, as production does"
    held = []
    saved_timeout, pool.timeout = pool.timeout, timeout
    try:
        while True:  # take every connection the pool has or can open
            try:
                held.append(pool.getconn(timeout=timeout))
            except PoolTimeout:
                break
        assert held, "the pool had no connection to take"
        yield pool
    finally:
        pool.timeout = saved_timeout
        for each in held:
            pool.putconn(each)


@contextlib.contextmanager
def unreachable_pool(timeout: float = 0.3) -> Any:
    """An outage: a real psycopg pool for a database nobody listens for (a closed loopback port),
    so a ``getconn`` in the block fails to connect until ``timeout`` and raises PoolTimeout, while
    the process's own pool has room (``config.errors.database_pool_full`` is false)."""
    from psycopg.conninfo import make_conninfo
    from psycopg_pool import ConnectionPool

    params = connection.get_connection_params()
    conninfo = make_conninfo(**{k: v for k, v in params.items() if k in ("user", "password", "dbname")})
    conninfo = make_conninfo(conninfo, host="127.0.0.1", port=str(free_port()), connect_timeout="1")
    pool = ConnectionPool(conninfo, min_size=0, max_size=1, timeout=timeout, open=True)
    try:
        yield pool
    finally:
        pool.close()


def prepared_statements() -> list[str]:
    """The statements PostgreSQL holds prepared on the default connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def prepared_statements_forget() -> None:
    """DEALLOCATE ALL on the default connection (psycopg forgets its own record of them too)."""
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def until(predicate: Callable[[], Any], timeout: float = 60, every: float = 0.3) -> Any:
    """Poll until the predicate is truthy (and return its value) or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    return predicate()


def committed_elsewhere(work: Callable[[], Any]) -> None:
    """``work()`` committed on another thread's own database connection, as another process
    (admin, a worker) would commit it; its exception is raised here."""
    import threading

    from django.db import connections

    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except Exception as exc:  # raised again on the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    if errors:
        raise errors[0]


def http(url: str, data: dict[str, Any] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url,
        data=json.dumps(data).encode() if data is not None else None,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_database_url() -> str:
    """The URL of the database this test run uses, for the servers and workers a test starts."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def ws_frames_until(ws: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30) -> list[dict[str, Any]]:
    """Read JSON frames from a (sync) websocket until one matches; all of them, in order."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError(f"no matching frame in {frames}")


def production_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """Environment for the deploy kit's processes (gunicorn, Celery) on this run's PostgreSQL and Redis."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": run_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DEBUG": "false",
        "SECURE_SSL_REDIRECT": "false",  # no TLS on loopback
        "ALLOWED_HOSTS": "127.0.0.1",
        "CONCIERGE_VAR_DIR": str(tmp_path / "var"),
        "CHROMA_PATH": str(settings.CHROMA_PATH),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "CONCIERGE_HEARTBEAT_SECONDS": "1",
        "EMAIL_URL": f"filemail://{tmp_path / 'mail'}",
        "LOG_FORMAT": "json",
        **extra,
    }


GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "config.asgi:application"]
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO"]


class Processes:
    """Named processes started from the repository root, each logging to ``<name>.log``;
    stopped (and their logs closed) on exit."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path, self.env = tmp_path, env
        self.running: dict[str, tuple[subprocess.Popen[bytes], Any]] = {}

    def start(self, name: str, argv: list[str]) -> None:
        log = open(self.tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed in stop)
        process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.running[name] = (process, log)

    def log(self, name: str) -> str:
        return (self.tmp_path / f"{name}.log").read_text()

    def stop(self) -> None:
        for process, _ in self.running.values():
            process.terminate()
        for process, log in self.running.values():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()

    def __enter__(self) -> "Processes":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def healthy(base: str) -> bool:
    try:
        return http(f"{base}/healthz")[0] == 200
    except OSError:
        return False


def send_body(handler: Any, body: bytes, content_type: str, status: int = 200) -> None:
    """Answer from a loopback http.server handler (a fake provider, a company's web page)."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def widget_ask(browser: Any, url: str, question: str) -> tuple[Any, Any, Any]:
    """In a real browser: open the page, open the widget, wait until it is online and ask.
    Returns the waiter, the message box and the assistant's answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(url)
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, ".cc-launch"))).click()
    box = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-form textarea")))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".cc-status"), "Online"))
    box.send_keys(question, Keys.ENTER)
    answer = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, ".cc-bot")))
    return wait, box, answer


DOVECOT_CONFIG = """protocols = imap
listen = 127.0.0.1
base_dir = {state}/run
state_dir = {state}/state
log_path = {state}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{state}/mail/%u
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {state}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user} gid={mail_group} home={state}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


class Dovecot:
    """Debian's Dovecot IMAP server on a loopback port, without systemd: its own config, state,
    users (a passwd file) and maildirs under one folder. Plain IMAP on loopback only."""

    def __init__(self, state: Path) -> None:
        import grp
        import pwd

        self.state, self.port = state, free_port()
        for folder in ("run", "state", "mail"):
            (state / folder).mkdir(parents=True, exist_ok=True)
        (state / "passwd").write_text("")
        if os.geteuid() == 0:  # Dovecot's own users, made by the package
            internal, login, mail_user = "dovecot", "dovenull", "dovecot"
            subprocess.run(["chown", "-R", "dovecot:dovecot", str(state / "mail")], check=True)
        else:
            internal = login = mail_user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(pwd.getpwnam(mail_user).pw_gid).gr_name
        (state / "dovecot.conf").write_text(
            DOVECOT_CONFIG.format(state=state, port=self.port, internal=internal, internal_group=group, login=login,
                                  mail_user=mail_user, mail_group=group)
        )  # fmt: skip

    def user_add(self, name: str, password: str) -> None:
        with (self.state / "passwd").open("a") as users:
            users.write(f"{name}:{{PLAIN}}{password}\n")

    def start(self) -> None:
        subprocess.run(["/usr/sbin/dovecot", "-c", str(self.state / "dovecot.conf")], check=True)
        until(lambda: self._answers(), timeout=20, every=0.1)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        pid_file = self.state / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        subprocess.run(["/usr/sbin/dovecot", "-c", str(self.state / "dovecot.conf"), "stop"], check=False)
        until(lambda: not Path(f"/proc/{pid}").exists(), timeout=20, every=0.1)

    def crash(self) -> None:
        """The server goes away at once, open connections and all (SIGKILL to every process)."""
        import signal

        pid_file = self.state / "run" / "master.pid"
        pid = int(pid_file.read_text())
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for each in [pid, *map(int, children)]:
            with contextlib.suppress(ProcessLookupError):  # it went by itself
                os.kill(each, signal.SIGKILL)
        until(lambda: not Path(f"/proc/{pid}").exists(), timeout=20, every=0.1)
        pid_file.unlink(missing_ok=True)
