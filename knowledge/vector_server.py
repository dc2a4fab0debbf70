"""A Chroma server on loopback for one machine: ``runstack`` starts it beside uvicorn and the
Celery worker so that every process reads and writes the same vectors (embedded clients in two
processes do not see each other's writes). It persists to CHROMA_PATH and announces its address
in ``<CHROMA_PATH>.server`` for management commands run while the stack is up."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from knowledge.vectors import local_server_file

HEARTBEAT = "/api/v2/heartbeat"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def chroma_command() -> list[str]:
    """The ``chroma`` CLI of this environment (the chromadb package ships it)."""
    beside = Path(sys.executable).with_name("chroma")
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("The chroma command is not installed (it comes with the chromadb package).")
    return [found]


def heartbeat(address: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}{HEARTBEAT}", timeout=timeout) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class LocalChromaServer:
    def __init__(self, path: str, host: str = "127.0.0.1", port: int = 0, log: IO[Any] | None = None) -> None:
        self.path = path
        self.host = host
        self.port = port or free_port(host)
        self.address = f"{host}:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "LocalChromaServer":
        Path(self.path).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
        self.process = subprocess.Popen(  # noqa: S603 (our own chroma CLI, our arguments)
            [*chroma_command(), "run", "--path", self.path, "--host", self.host, "--port", str(self.port)],
            env=env,
            stdout=self.log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not heartbeat(self.address, timeout=1):
            if self.process.poll() is not None:
                raise RuntimeError(f"the Chroma server exited with status {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Chroma server did not answer on {self.address} within {timeout:.0f} s")
            time.sleep(0.1)
        local_server_file(self.path).write_text(
            json.dumps({"host": self.host, "port": self.port, "pid": self.process.pid})
        )
        return self

    def stop(self) -> None:
        announced = local_server_file(self.path)
        if announced.exists():
            announced.unlink()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalChromaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
