"""Warm a serving process before it takes its first request: each app that keeps clients of
outside services or models (see config.clients) gets them made and exercised once, so the
first customer waits no longer than the hundredth and a burst of first requests does not race
to build them. An app takes part by defining ``warm()`` on its AppConfig.

A dependency that is down at boot is logged and skipped: the process still starts, /readyz
reports the dependency, and the client is made on first use once it is back."""

import asyncio
import contextvars
import gc
import importlib
import logging
import time

from django.apps import apps
from django.urls import get_resolver, reverse

logger = logging.getLogger(__name__)


def warm_process() -> dict[str, float]:
    """Warm every app; returns the milliseconds each took (failed ones are left out)."""
    took: dict[str, float] = {}
    for app_config in apps.get_app_configs():
        warm = getattr(app_config, "warm", None)
        if warm is None:
            continue
        started = time.perf_counter()
        try:
            warm()
        except Exception:  # a dependency down at boot must not stop the process from serving
            logger.warning("warming %s failed; its clients will be made on first use", app_config.label, exc_info=True)
            continue
        took[app_config.label] = round((time.perf_counter() - started) * 1000, 1)
    logger.info("process warmed: %s", ", ".join(f"{label} {ms} ms" for label, ms in took.items()) or "nothing")
    return took


def warm_serving() -> dict[str, float]:
    """``warm_process`` on a thread of its own (an ASGI server's lifespan startup), then that
    thread's database connection handed back: with the pool, the warmed connection serves the
    first requests instead of staying checked out by a thread that never runs again. The
    process listens for changes of the rows it caches (config.changes) from here on."""
    from django.db import connections

    from config.changes import changes_listen

    try:
        # Before warming: what the warm reads into the caches then stays until it changes.
        changes_listen()
        return warm_process()
    finally:
        connections.close_all()
        gc.collect()  # what warming left for the collector, before the trim hands free pages back
        release_free_memory()


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the system (glibc's ``malloc_trim``). Loading models
    and warming leave freed memory inside the heap, which glibc keeps for later allocations: in
    the gunicorn master every worker would inherit it, and in a worker it stays resident. On the
    production stack, a trim of the master and workers at 1,000 conversations took their PSS
    from 604 to 590 MB (bench/README.md, issue 14). False where the C library has no trim."""
    import ctypes

    # The C library is already loaded in the process: its symbols, without a search for the file
    # (ctypes.util.find_library runs ldconfig in a subprocess).
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # not glibc (musl, macOS): none
    if trim is None:
        return False
    trim(0)
    return True


async def warm_channel_layer(timeout: float = 2.0) -> float | None:
    """One round trip through the channel layer on the serving event loop (lifespan startup),
    so the first chat does not open its connections: a group joined, a message sent to it and
    received, the group left. In bench/cold_start.py the first turn of a fresh worker took ~6 ms
    less with it. Returns the milliseconds it took; None (and a warning) when the layer is down
    or slow, and the process starts anyway: the first chats then connect it themselves."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return None
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            channel = await layer.new_channel()
            group = f"warmup.{channel.rsplit('!', 1)[-1]}"[:90]
            await layer.group_add(group, channel)
            try:
                await layer.group_send(group, {"type": "warmup"})
                await layer.receive(channel)
            finally:
                await layer.group_discard(group, channel)
    except Exception:  # Redis down or slow at boot must not stop the process from serving
        logger.warning("the channel layer was not warmed; the first chats will connect it", exc_info=True)
        return None
    took = round((time.perf_counter() - started) * 1000, 1)
    logger.info("channel layer warmed in %s ms", took)
    return took


def warm_shared() -> None:
    """Load the read-only models that hold no threads, sockets or database connections into
    this process (the gunicorn master, before it forks its workers), so every worker shares one
    copy of their pages instead of loading its own. An app takes part by defining
    ``warm_shared()`` on its AppConfig: the sentiment models and the language identifier
    (agents), the multilingual encoder's weights (~95 MB of numpy) and jieba's dictionary
    (rjieba, ~33 MB, knowledge)."""
    for app_config in apps.get_app_configs():
        warm = getattr(app_config, "warm_shared", None)
        if warm is not None:
            warm()
    for module in SHARED_IMPORTS:
        importlib.import_module(module)
    # Django imports the URLconf, and with it every view module (DRF, the schema generator, the
    # admin), on a process's first request: here, before the fork, instead of in each worker
    # (~150 modules, ~6 MB a worker; bench/README.md, issue 14).
    # Building them sets a flag on each resolver (49 of them) in asgiref Locals, which live in the
    # current context: in the master's, every task of every worker would inherit them, and
    # asgiref copies each one on every hop between the event loop and a thread. A context of
    # its own keeps the master's empty (bench/README.md, issue 14).
    contextvars.copy_context().run(_build_urls)


def _build_urls() -> None:
    get_resolver().url_patterns  # noqa: B018 (read for the imports it makes)
    reverse("admin:index")  # and the admin's URLs, which it builds on first use


# What every worker imports as it warms (``warm_process``) and serves, imported by
# ``warm_shared`` first so their code and module objects are pages the workers share instead of
# each importing its own: the assistant's chain (LangChain, pydantic, httpx), the vector store's
# client library (chromadb and its Rust bindings; the client itself, which runs threads, is made
# in each worker), the database pool, and the LLM answer's grounding check (imported by the
# first answer the LLM writes; a rehearsed turn asks no LLM). Importing them starts no thread
# (the master probe in tests/deploy checks). Measured on the production stack: bench/README.md,
# issue 14.
SHARED_IMPORTS = (
    "agents.grounding",
    "agents.pipeline",
    "agents.services",
    "chromadb",
    "chromadb_rust_bindings",
    "psycopg_pool",
)
