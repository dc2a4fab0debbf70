"""Where the chat websocket's database and model work runs, and how much of it a process
takes on at once.

Channels' ``database_sync_to_async`` runs every call of a process on one shared thread, so
one slow turn held up every chat in the process and a burst of messages queued behind it.
Here the work runs on a pool of CONCIERGE_TURN_THREADS threads (each with its own persistent
database connection); the embedding model and the database release the GIL, so turns overlap.

Admission: a process answers what it can. When the turns already accepted would keep a new
message waiting longer than CONCIERGE_BUSY_WAIT_SECONDS, the message is refused before it is
stored, with a ``busy`` error frame and ``retry_after``; the widget keeps it and sends it again
then. A message that was accepted (acknowledged) is always answered. The expected wait is the
turns in flight times the recent time a turn spends on a thread, shared among the threads."""

import math
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from channels.db import DatabaseSyncToAsync

from monitoring.metrics import CHAT_TURNS_REFUSED

T = TypeVar("T")

BUSY_MESSAGE = "We are answering many people right now; your message will be sent again in a moment."


def _threads() -> int:
    return max(1, int(os.environ.get("CONCIERGE_TURN_THREADS", "4")))


class TurnGate:
    def __init__(self, threads: int, busy_wait: float) -> None:
        self.threads = threads
        self.busy_wait = busy_wait
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chat-turn")
        self.lock = threading.Lock()
        self.in_flight = 0
        self.turn_seconds = 0.05  # moving average of the time one turn spends on a thread

    def expected_wait(self) -> float:
        return self.in_flight * self.turn_seconds / self.threads

    def admit(self) -> bool:
        """Take one more turn on, or refuse it (False) when it would wait too long."""
        with self.lock:
            if self.in_flight >= self.threads and self.expected_wait() > self.busy_wait:
                CHAT_TURNS_REFUSED.inc()
                return False
            self.in_flight += 1
            return True

    def done(self, seconds: float) -> None:
        """A turn ended after ``seconds`` on the threads (waits in the queue not counted)."""
        with self.lock:
            self.in_flight -= 1
            if seconds > 0:
                self.turn_seconds += 0.1 * (seconds - self.turn_seconds)

    def retry_after(self) -> int:
        """Seconds a refused client waits before sending again: past the work queued now, and
        never under two (clients add their own jitter, so retries do not come back together)."""
        return max(2, math.ceil(self.expected_wait()) + 1)

    async def run(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``function(**kwargs)`` on the pool, with the database connection handling of
        Channels (stale connections closed before and after)."""
        return await DatabaseSyncToAsync(function, thread_sensitive=False, executor=self.executor)(**kwargs)

    async def timed(self, function: Callable[..., T], spent: list[float], /, **kwargs: Any) -> T:
        """``run``, adding the seconds the call took on its thread to ``spent``."""

        def call() -> T:
            started = time.perf_counter()
            try:
                return function(**kwargs)
            finally:
                spent.append(time.perf_counter() - started)

        return await self.run(call)

    def on_each_thread(self, function: Callable[[], object], timeout: float = 10.0) -> None:
        """Run ``function`` once on each of the pool's threads, starting those not started yet
        (a barrier holds every thread until all have a task, so no thread takes two); the first
        error of one of them is raised once all have ended."""
        barrier = threading.Barrier(self.threads, timeout=timeout)

        def here() -> None:
            try:
                barrier.wait()
            finally:
                function()

        errors = []
        for future in [self.executor.submit(here) for _ in range(self.threads)]:
            try:
                future.result(timeout=timeout + 5)
            except threading.BrokenBarrierError:
                continue
            except Exception as exc:  # every thread's task ends before the first error is raised
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Close every pool thread's database connection and stop the threads (process exit, tests)."""
        from django.db import connections

        self.on_each_thread(connections.close_all)
        self.executor.shutdown(wait=True)


_gate: TurnGate | None = None
_gate_lock = threading.Lock()


def turn_gate() -> TurnGate:
    """This process's gate, made on first use (after a worker forks)."""
    global _gate
    if _gate is None:
        with _gate_lock:
            if _gate is None:
                from django.conf import settings

                _gate = TurnGate(_threads(), settings.CONCIERGE_BUSY_WAIT_SECONDS)
    return _gate


def turn_threads_warm(work: Callable[[], object] | None = None) -> None:
    """Start this process's turn threads before its first chat and run ``work`` on each (the
    rehearsed turn, at boot), or else just make the thread's database connection object (a
    connection from the pool, handed back) and its cache client. What a thread makes on its
    first turn is then made: on a fresh worker, rehearsing on the lifespan thread alone left the
    first turn's thread ~300 page faults and ~5 ms to pay (bench/cold_start.py, issue 14).
    Each thread takes a pooled connection of its own before any runs ``work``, so as many
    connections make their first queries (PostgreSQL reading its catalog) as there are threads.
    Errors of ``work`` are raised here."""
    from django.core.cache import caches
    from django.db import connection, connections

    gate = turn_gate()
    held = threading.Barrier(gate.threads, timeout=10)

    def warm() -> None:
        caches["default"]  # made on first use in each thread
        try:
            connection.ensure_connection()
            held.wait()  # every thread holds a connection of its own before any rehearses
            if work is not None:
                work()
        except Exception:
            held.abort()  # the others stop waiting
            raise
        finally:
            connections.close_all()

    gate.on_each_thread(warm)


def turn_gate_close() -> None:
    """Close this process's gate, if it made one; the next use makes a new one."""
    global _gate
    with _gate_lock:
        gate, _gate = _gate, None
    if gate is not None:
        gate.close()


class Turn:
    """``with Turn(gate) as turn:`` admits a turn (``turn.admitted``), runs its work on the pool
    (``await turn.run(f, **kwargs)``) and counts it in flight until the block ends."""

    def __init__(self, gate: TurnGate) -> None:
        self.gate = gate
        self.admitted = False
        self.spent: list[float] = []

    def __enter__(self) -> "Turn":
        self.admitted = self.gate.admit()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.admitted:
            self.gate.done(sum(self.spent))

    async def run(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        return await self.gate.timed(function, self.spent, **kwargs)


async def turn_threads_hop_warm(timeout: float = 10.0) -> None:
    """On the serving event loop (lifespan startup, after ``turn_threads_warm``): each turn
    thread sends once through the channel layer as a turn's broadcasts after commit do, from the
    thread back to this loop (``config.channel_layer.layer_call``). The rehearsal rolls back, so
    it never sends; a fresh worker's first reply then waited ~2 ms longer for that hop than later ones
    (bench/cold_start.py, issue 14). A failure is logged, and the process serves anyway."""
    import asyncio
    import logging

    from tickets.transport import groups_send

    gate = turn_gate()
    barrier = threading.Barrier(gate.threads, timeout=timeout)
    group = f"warmup.{os.getpid()}"

    def send() -> None:
        barrier.wait()  # one send on each thread
        groups_send([(group, {"type": "warmup"}, "")])

    try:
        async with asyncio.timeout(timeout):  # the worker serves after it whatever happened
            await asyncio.gather(*(gate.run(send) for _ in range(gate.threads)))
    except Exception:
        logging.getLogger(__name__).warning("the turn threads' sends were not warmed", exc_info=True)
