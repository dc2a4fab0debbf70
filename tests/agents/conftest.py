from pathlib import Path

import pytest
from django.core.management import call_command

from agents.demo_intents import DEMO_INTENTS
from agents.services import intent_examples_import, intent_model_train

DEMO_KB = Path(__file__).resolve().parents[2] / "knowledge" / "demo_kb"


@pytest.fixture
def trained_org(org):
    """An organization with the demo knowledge base and a trained demo intent model."""
    call_command("kb_ingest", str(DEMO_KB), "--org", org.slug)
    rows = [(text, intent) for intent, texts in DEMO_INTENTS.items() for text in texts]
    intent_examples_import(organization=org, rows=rows)
    intent_model_train(organization=org)
    return org


@pytest.fixture(autouse=True)
def _close_connections_of_sync_threads():
    """database_sync_to_async runs queries in a worker thread that keeps its connection open;
    close it after each test so the test database can be dropped at the end of the run."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
