from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from config.errors import DomainError
from demo.company import DEMO_KB_DIR as DEMO_KB
from knowledge.models import Article, Chunk
from knowledge.search import kb_search
from knowledge.services import kb_article_index, kb_article_mark_changed, kb_article_publish, kb_article_upsert

pytestmark = pytest.mark.django_db

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "retrieval"


@pytest.fixture
def demo_kb(org):
    call_command("kb_ingest", str(DEMO_KB), "--org", org.slug)
    return org


def test_hybrid_search_finds_the_right_article_with_citation(demo_kb):
    result = kb_search(organization_id=demo_kb.pk, query="how do I get my money back for a jacket", k=3)
    assert result.hits[0].title == "Returns and refunds"
    assert result.hits[0].url.endswith("/returns-and-refunds")
    assert len({h.article_id for h in result.hits}) == len(result.hits)  # one passage per article
    unrelated = kb_search(organization_id=demo_kb.pk, query="quantum chromodynamics lecture notes", k=3)
    assert result.confidence > 0.3 > unrelated.confidence


@pytest.mark.parametrize(
    "question,title",
    [
        ("my parcel tracking has not moved in a week", "Where is my order? Tracking a parcel"),
        ("forgot my password and I'm locked out", "I can't sign in to my account"),
        ("how much does it cost to become a member", "Trailhead membership and pricing"),
        ("can I rent skis", "Renting tents, skis and climbing gear"),
    ],
)
def test_demo_questions_rank_their_article_first(demo_kb, question, title):
    assert kb_search(organization_id=demo_kb.pk, query=question).hits[0].title == title


def test_search_is_scoped_to_the_organization(demo_kb, other_org):
    assert kb_search(organization_id=other_org.pk, query="refund").hits == []


def test_the_found_passages_are_read_as_the_orm_reads_them_however_many(demo_kb, other_org):
    """One query built once, its ids one parameter however many: each passage with its article's
    title and URL, only this organization's."""
    from django.db import connection

    from knowledge.search import _passages

    chunks = list(Chunk.objects.filter(organization=demo_kb).order_by("pk"))
    unknown = list(range(10**9, 10**9 + 70))
    statements = []

    def seen(execute, sql, params, many, context):
        statements.append((sql, len(params)))
        return execute(sql, params, many, context)

    for ids in ([chunks[3].pk], [c.pk for c in chunks[:7]], [c.pk for c in chunks]):
        # a repeat, and more unknown ids than both legs' candidates
        with connection.execute_wrapper(seen):
            found = _passages(ids=[*ids, ids[0], *unknown], organization_id=demo_kb.pk)
        orm = Chunk.objects.filter(pk__in=ids).values_list("pk", "article_id", "text", "article__title", "article__url")
        assert sorted((p.pk, p.article_id, p.text, p.title, p.url) for p in found) == sorted(orm) == sorted(set(orm))
    assert len(statements) == 3 and len(set(statements)) == 1 and statements[0][1] == 2, statements
    assert _passages(ids=[*unknown, chunks[5].pk], organization_id=demo_kb.pk)[0].pk == chunks[5].pk
    assert _passages(ids=[chunks[0].pk], organization_id=other_org.pk) == []
    assert _passages(ids=[], organization_id=demo_kb.pk) == []


@pytest.mark.parametrize("query", ["", "   ", "x" * 1001])
def test_bad_queries_are_refused(demo_kb, query):
    with pytest.raises(DomainError):
        kb_search(organization_id=demo_kb.pk, query=query)


def test_publish_queues_indexing_on_commit_and_reindex_is_harmless(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        article, _ = kb_article_upsert(organization=org, title="Stove fuel", body="Use canister gas outdoors only.")
        kb_article_publish(article=article)
    assert len(callbacks) == 1  # the draft queued nothing; publishing queued one indexing task
    assert kb_article_index(article_id=article.pk) == 2
    ids = list(Chunk.objects.filter(article=article).values_list("pk", flat=True))
    assert kb_article_index(article_id=article.pk) == 2
    assert list(Chunk.objects.filter(article=article).values_list("pk", flat=True)) == ids  # untouched
    Article.objects.filter(pk=article.pk).update(status="draft")
    article.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        kb_article_mark_changed(article=article)  # unpublished, but its old chunks must go
    assert len(callbacks) == 1
    assert kb_article_index(article_id=article.pk) == 0
    assert kb_search(organization_id=org.pk, query="stove fuel").hits == []


def test_search_and_articles_api(demo_kb, api, other_agent):
    response = api.get("/api/v1/kb/search", {"q": "refund timing", "k": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["hits"][0]["title"] == "Returns and refunds" and len(body["hits"]) == 2
    assert 0 < body["confidence"] <= 1
    assert api.get("/api/v1/kb/search", {"q": ""}).status_code == 400
    assert "longer than" in api.get("/api/v1/kb/search", {"q": "y" * 2000}).json()["detail"]
    assert api.get("/api/v1/kb/search", {"q": "refund", "k": "x"}).status_code == 400
    assert api.get("/api/v1/kb/articles/").json()["count"] == 16  # eight in English, eight in Chinese
    outsider = APIClient()
    outsider.force_authenticate(other_agent)
    assert outsider.get("/api/v1/kb/search", {"q": "refund"}).json()["hits"] == []
    assert outsider.get("/api/v1/kb/articles/").json()["count"] == 0


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/retrieval is not present")
def test_evaluate_retrieval_on_stackfaq_dev(capsys):
    call_command(
        "evaluate_retrieval",
        "--articles", str(SHARED / "stackfaq_articles.jsonl"),
        "--queries", str(SHARED / "stackfaq_dev_queries.csv"),
        "--limit", "120",
    )  # fmt: skip
    out = capsys.readouterr().out
    mrr = float(out.split("MRR@10 ")[1].split()[0])
    assert mrr >= 0.90, out


def test_editing_an_article_in_admin_reindexes_it(org, supervisor, django_capture_on_commit_callbacks):
    from django.test import Client

    article, _ = kb_article_upsert(organization=org, title="Stove fuel", body="Use canister gas outdoors only.")
    kb_article_publish(article=article)
    kb_article_index(article_id=article.pk)
    client = Client()
    client.force_login(supervisor)
    form = {
        "title": "Stove fuel",
        "slug": article.slug,
        "body": "Use liquid fuel outdoors only.",
        "language": "en",
        "status": "published",
        "tags": "",
        "url": "",
        "external_id": "",
        "category": "",
    }
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/admin/knowledge/article/{article.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:1500]
    # One indexing task queued (the other callback appends the edit to the audit trail).
    assert [c.__qualname__.split(".")[0] for c in callbacks] == ["kb_article_queue_indexing", "audit_record_on_commit"]
    assert Article.objects.get(pk=article.pk).needs_indexing
    kb_article_index(article_id=article.pk)
    texts = list(Chunk.objects.filter(article=article).values_list("text", flat=True))
    assert any("liquid fuel" in t for t in texts) and not any("canister" in t for t in texts)


def test_keyword_index_follows_writes_here_at_once_and_elsewhere_within_seconds(demo_kb, monkeypatch):
    from knowledge import keyword

    assert not keyword.search(demo_kb.pk, "zeppelin", 5)
    # A passage written by another process (straight to the database, no index call here) is
    # found once this process reads the fingerprint again, at most KB_STAMP_SECONDS later.
    article = Article.objects.filter(organization=demo_kb).first()
    chunk = Chunk.objects.create(article=article, organization=demo_kb, ordinal=99, heading="", text="zeppelin tours")
    assert not keyword.search(demo_kb.pk, "zeppelin", 5)
    later = keyword.time.monotonic() + keyword.KB_STAMP_SECONDS + 0.1
    monkeypatch.setattr(keyword.time, "monotonic", lambda: later)
    assert [doc for doc, _ in keyword.search(demo_kb.pk, "zeppelin", 5)] == [str(chunk.pk)]
    # Written through this process's index calls: the very next search sees it.
    second = Chunk.objects.create(article=article, organization=demo_kb, ordinal=98, heading="", text="zeppelin rides")
    keyword.get_backend().upsert(demo_kb.pk, keyword.KB, [(str(second.pk), second.text, {})])
    assert {doc for doc, _ in keyword.search(demo_kb.pk, "zeppelin", 5)} == {str(chunk.pk), str(second.pk)}


def test_indexing_embeds_on_the_bulk_session_and_queries_on_the_serving_one(monkeypatch):
    from knowledge import embeddings, vectors

    embedder = embeddings.Embedder()
    embedder.bulk_threads = 2
    monkeypatch.setattr(embeddings, "get_embedder", lambda: embedder)
    texts = ["How do I return a tent?", "Refunds reach your card within five working days of our receiving it."]
    served = embeddings.embed(texts)
    embeddings.embed_query("where is my parcel")
    assert embedder.bulk_session is None  # serving never makes the second session
    indexed = vectors.space_embed(vectors.EN, texts)
    assert embedder.bulk_session is not None
    # The same model either way: the vectors agree.
    assert np.allclose(served, indexed, atol=1e-4)


def test_the_keyword_index_ranks_with_numpy_and_never_loads_jax():
    """bm25s loads jax wherever it is installed (1.8 s and ~200 MB a process; jax is here to tune
    the sentiment layers): knowledge.keyword loads it with jax hidden, so bm25s picks numpy."""
    import importlib.util

    from knowledge.keyword import bm25s  # loaded the project's way

    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed: nothing to hide")
    assert bm25s.selection.JAX_IS_AVAILABLE is False
