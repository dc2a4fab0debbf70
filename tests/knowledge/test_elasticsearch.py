"""The Elasticsearch keyword backend against noida-db, which serves the Elasticsearch REST API
on loopback (no real Elasticsearch server can be installed here)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from demo.company import DEMO_KB_DIR as DEMO_KB
from knowledge import keyword
from knowledge.models import Article, Chunk
from knowledge.search import kb_search
from knowledge.services import kb_article_index, kb_reindex
from tests.support import free_port
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.search import DESK, desk_search


@pytest.fixture(scope="session")
def elasticsearch_url(tmp_path_factory):
    binary = shutil.which("noida-db", path=str(Path(sys.executable).parent))
    if binary is None:
        pytest.fail("noida-db is not installed (requirements-dev.txt)")
    port = free_port()
    data = tmp_path_factory.mktemp("noida")
    process = subprocess.Popen(
        [binary, "start", "--only", "elasticsearch", "--elasticsearch-port", str(port), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The noida-db script runs the server as its child: stop them together, as a group.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("noida-db did not open its Elasticsearch port")
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


@pytest.fixture
def elastic(elasticsearch_url):
    with override_settings(ELASTICSEARCH_URL=elasticsearch_url, ELASTICSEARCH_INDEX_PREFIX=f"t{uuid.uuid4().hex[:8]}"):
        backend = keyword.get_backend()
        assert backend.name == "elasticsearch"
        yield backend


@pytest.mark.django_db
def test_knowledge_base_keyword_leg_runs_on_elasticsearch(elastic, org):
    call_command("kb_ingest", str(DEMO_KB), "--org", org.slug)
    chunks = Chunk.objects.filter(organization=org).count()
    assert elastic.size(org.pk, keyword.KB) == chunks
    ids = elastic.search(org.pk, keyword.KB, "refund money back", 3)
    assert Chunk.objects.get(pk=int(ids[0][0])).article.title == "Returns and refunds"
    assert kb_search(organization_id=org.pk, query="when do I get my refund").hits[0].title == "Returns and refunds"

    # Re-indexing an edited article replaces its documents instead of piling them up.
    article = Article.objects.get(slug="warranty")
    before = article.chunks.count()
    Article.objects.filter(pk=article.pk).update(body="Lifetime warranty. Send photos.", needs_indexing=True)
    after = kb_article_index(article_id=article.pk)
    assert elastic.size(org.pk, keyword.KB) == chunks - before + after
    # Another organization has an index of its own.
    assert elastic.search(org.pk + 10_000, keyword.KB, "refund", 3) == []


@pytest.mark.django_db
def test_staff_search_runs_on_elasticsearch(elastic, org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        customer = CustomerFactory(organization=org, name="Maya")
        conversation = services.conversation_start(customer=customer)
        services.message_create(conversation=conversation, role="customer", text="The stove leaks propane")
        ticket = TicketFactory(customer=customer, subject="Gas smell", conversation=conversation)
        TicketFactory(customer=CustomerFactory(organization=org), subject="Tent pole snapped")
    hits = desk_search(organization=org, query="propane")
    assert [(h.ticket, h.matched) for h in hits] == [(ticket, "message")]
    assert desk_search(organization=org, query="tent pole")[0].ticket.subject == "Tent pole snapped"
    # A forced reindex rebuilds the desk index from the database: 2 tickets and 1 message.
    assert kb_reindex(organization=org, force=True)["desk_documents"] == 3
    assert elastic.size(org.pk, DESK) == 3


@pytest.mark.django_db
def test_readiness_reports_elasticsearch(elastic, client):
    report = client.get("/readyz").json()
    assert report["checks"]["elasticsearch"]["ok"] is True
    with override_settings(ELASTICSEARCH_URL=f"http://127.0.0.1:{free_port()}"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["elasticsearch"]["ok"] is False


@pytest.mark.django_db
def test_unpublish_and_delete_leave_elasticsearch_at_once(
    elastic, org, monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery import app as celery_app
    from knowledge.services import kb_article_delete, kb_article_publish, kb_article_unpublish, kb_article_upsert

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)  # the queued index tasks run here
    with django_capture_on_commit_callbacks(execute=True):
        alpacas, _ = kb_article_upsert(organization=org, title="Alpacas", body="Alpacas may visit the climbing wall.")
        kb_article_publish(article=alpacas)
        llamas, _ = kb_article_upsert(organization=org, title="Llamas", body="Llamas may visit the climbing wall.")
        kb_article_publish(article=llamas)
    assert elastic.size(org.pk, keyword.KB) == Chunk.objects.filter(organization=org).count() == 4
    assert {Chunk.objects.get(pk=int(i)).article for i, _ in elastic.search(org.pk, keyword.KB, "alpacas", 5)} == {
        alpacas
    }

    with django_capture_on_commit_callbacks(execute=True):
        kb_article_unpublish(article=alpacas)
    assert elastic.search(org.pk, keyword.KB, "alpacas", 5) == []
    with django_capture_on_commit_callbacks(execute=True):
        kb_article_delete(article=llamas)
    assert elastic.size(org.pk, keyword.KB) == 0
