"""The rows a chat turn caches stay cached in a listening process until PostgreSQL announces a
change of their organization (config.changes), instead of being read again every second or
two: a turn after a quiet spell no longer reads them all again. Real PostgreSQL, real
triggers (migration agents 0011), the listener's own connection."""

import time

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import active_models
from agents.active_models import intent_policies
from agents.models import IntentPolicy, PolicyAction
from config import changes
from knowledge import keyword
from knowledge.models import Article, Chunk
from tests.support import committed_elsewhere, until

pytestmark = pytest.mark.django_db(transaction=True)


def _queries(work):
    with CaptureQueriesContext(connection) as captured:
        value = work()
    return value, len(captured)


@pytest.fixture
def listening(monkeypatch):
    # Expiry shortened so a test can wait past it; the listener keeps values beyond it.
    monkeypatch.setattr(active_models, "ACTIVE_CHECK_SECONDS", 0.05)
    assert changes.changes_listen(wait=5)
    yield
    changes.changes_stop()


def test_a_write_announces_its_table_and_organization(org, other_org):
    params = connection.get_connection_params()
    with psycopg.Connection.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {changes.CHANNEL}")
        IntentPolicy.objects.create(organization=org, intent="refund", action=PolicyAction.HANDOFF)
        IntentPolicy.objects.filter(organization=org).update(organization=other_org)  # moved: both told
        Chunk.objects.filter(organization=org).delete()  # no rows: nothing to announce
        heard = [n.payload for n in listener.notifies(timeout=1.0, stop_after=3)]
    assert heard == [
        f"agents_intentpolicy:{org.pk}",
        f"agents_intentpolicy:{other_org.pk}",
        f"agents_intentpolicy:{org.pk}",
    ]


def test_a_listening_process_keeps_what_it_read_until_its_organization_changes(org, other_org, listening):
    assert _queries(lambda: intent_policies(org.pk)) == ({}, 1)
    assert _queries(lambda: intent_policies(other_org.pk))[1] == 1
    time.sleep(0.1)  # past ACTIVE_CHECK_SECONDS: without the listener both would be read again
    assert _queries(lambda: intent_policies(org.pk)) == ({}, 0)

    committed_elsewhere(
        lambda: IntentPolicy.objects.create(organization=org, intent="refund", action=PolicyAction.HANDOFF)
    )
    assert until(lambda: "refund" in intent_policies(org.pk), timeout=3, every=0.02)
    assert intent_policies(org.pk)["refund"].action == PolicyAction.HANDOFF
    assert _queries(lambda: intent_policies(other_org.pk)) == ({}, 0)  # another organization's change


def test_the_knowledge_base_fingerprint_follows_chunks_writtencommitted_elsewhere(org, listening, monkeypatch):
    corpus = keyword.CORPORA[keyword.KB]
    monkeypatch.setattr(keyword, "CORPORA", {keyword.KB: keyword.Corpus(corpus.name, corpus.rows, corpus.stamp, 0.05)})
    before, read = _queries(lambda: keyword._stamp(org.pk, keyword.CORPORA[keyword.KB]))
    assert read == 1
    time.sleep(0.1)
    assert _queries(lambda: keyword._stamp(org.pk, keyword.CORPORA[keyword.KB])) == (before, 0)

    def publish():
        article = Article.objects.create(organization=org, title="Gift cards", slug="gift-cards", body="No expiry.")
        Chunk.objects.create(organization=org, article=article, ordinal=0, text="Gift cards never expire.")

    committed_elsewhere(publish)
    assert until(lambda: keyword._stamp(org.pk, keyword.CORPORA[keyword.KB]) != before, timeout=3, every=0.02)


def test_without_the_listener_values_expire_and_a_dropped_link_reconnects(org, listening):
    intent_policies(org.pk)
    with connection.cursor() as cursor:  # the database drops the listening connection
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s", [f"LISTEN {changes.CHANNEL}"]
        )
        assert cursor.fetchone()[0] is True
    assert until(lambda: not changes.listening(), timeout=5, every=0.02)
    time.sleep(0.1)
    assert _queries(lambda: intent_policies(org.pk))[1] == 1  # expired as before: read again
    assert until(changes.listening, timeout=5, every=0.02)  # and it listens again
    intent_policies(org.pk)
    time.sleep(0.1)
    assert _queries(lambda: intent_policies(org.pk))[1] == 0


def test_a_change_heard_while_a_value_was_being_read_is_not_hidden_by_it(org, listening):
    since = changes.token(org.pk)
    changes.changes_heard(f"agents_intentpolicy:{org.pk}")  # announced during the read
    assert not changes.unchanged(org.pk, since)
    since = changes.token(org.pk)
    changes.changes_heard("agents_sentimentmodel:")  # a model for every organization
    assert not changes.unchanged(org.pk, since)
    assert changes.unchanged(org.pk, changes.token(org.pk))
