import pytest


@pytest.fixture(autouse=True)
def _close_connections_of_sync_threads():
    """database_sync_to_async runs queries in a worker thread that keeps its connection open;
    close it after each test so the test database can be dropped at the end of the run."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
