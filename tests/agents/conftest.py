import threading
from http.server import ThreadingHTTPServer

import pytest

from tests.agents.llm_server import FakeChatCompletions


@pytest.fixture(autouse=True)
def _close_connections_of_sync_threads():
    """database_sync_to_async runs queries in a worker thread that keeps its connection open;
    close it after each test so the test database can be dropped at the end of the run."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def llm_server():
    """The loopback chat-completions server; its base URL for LLM_BASE_URL."""
    FakeChatCompletions.requests = []
    FakeChatCompletions.delay = FakeChatCompletions.chunk_delay = 0.0
    FakeChatCompletions.answer = "Refunds take 2 business days (generated)."
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeChatCompletions)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
