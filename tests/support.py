"""Helpers for the tests that start real processes on loopback."""

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from django.db import connection


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
