import contextlib
import os

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from demo.company import DEMO_KB_DIR as DEMO_KB
from tenancy.models import StaffRole
from tests.tenancy.factories import OrganizationFactory, StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory

# The whole suite talks from 127.0.0.1 as a handful of users: lift the per-address limits here
# (servers the tests start inherit this), and test the limits themselves with their own values.
UNLIMITED = "1000000/min"
for _name in ("RATE_WIDGET_SESSIONS_PER_IP", "RATE_WIDGET_SESSIONS_PER_ORG", "RATE_CHAT_MESSAGES_PER_IP",
              "RATE_CHAT_MESSAGES_PER_ORG", "RATE_API_PER_USER"):  # fmt: skip
    os.environ.setdefault(_name, UNLIMITED)


@pytest.fixture(autouse=True)
def _generous_limits(settings):
    settings.CONCIERGE_RATE_LIMITS = {**settings.CONCIERGE_RATE_LIMITS, **{
        scope: UNLIMITED for scope in ("widget_session_ip", "widget_session_org", "chat_message_ip",
                                       "chat_message_org", "api_user")}}  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Per-process caches outlive a test's rolled-back rows: each test reads its own (the active
    models, the keyword index fingerprints, the API's permission copies and kept tokens), and none keeps the
    change listener of config.changes running after it."""
    from agents.active_models import active_models_forget, models_unload
    from knowledge.keyword import stamps_forget
    from tenancy.authentication import permissions_forget, tokens_forget

    active_models_forget()
    models_unload()
    stamps_forget()
    permissions_forget()
    tokens_forget()
    yield
    # A test that warmed a serving process left its change listener (and its connection) running.
    from config.changes import changes_stop

    changes_stop()


@pytest.fixture(scope="session", autouse=True)
def _chat_threads_closed(django_db_setup, django_db_blocker):
    """The chat websocket's pool threads hold their own database connections: close them before
    the test database is dropped."""
    yield
    from agents.turns import turn_gate_close

    with django_db_blocker.unblock():
        turn_gate_close()


@pytest.fixture(scope="session", autouse=True)
def _fresh_cache():
    """The test Redis outlives a run: start without last run's chat presence or rate counters."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def agent(org):
    return StaffFactory(organization=org, username="alice", role=StaffRole.AGENT)


@pytest.fixture
def supervisor(org):
    return StaffFactory(organization=org, username="sup", role=StaffRole.SUPERVISOR)


@pytest.fixture
def other_agent(other_org):
    return StaffFactory(organization=other_org, username="mallory", role=StaffRole.AGENT)


@pytest.fixture
def customer(org):
    return CustomerFactory(organization=org, name="Maya", email="maya@example.com")


@pytest.fixture
def ticket(customer):
    return TicketFactory(customer=customer, subject="Broken tent pole")


@pytest.fixture
def api(agent):
    client = APIClient()
    client.force_authenticate(agent)
    return client


@pytest.fixture
def trained_org(org):
    """An organization with the demo knowledge base and a trained demo intent model."""
    from knowledge import vectors

    # Database ids come round again between tests; Chroma outlives them: start this id's collection empty.
    vectors.drop_collection(org.pk)
    from agents.services import intent_examples_import, intent_model_train
    from demo.intents import DEMO_INTENTS

    with _embeddings_remembered():
        call_command("kb_ingest", str(DEMO_KB), "--org", org.slug)
        rows = [(text, intent) for intent, texts in DEMO_INTENTS.items() for text in texts]
        intent_examples_import(organization=org, rows=rows)
        intent_model_train(organization=org)
    return org


_EMBEDDED: dict = {}


@contextlib.contextmanager
def _embeddings_remembered():
    """While a fixture builds the same state again (the demo articles and intents, for 90-odd
    tests), each batch of texts goes through each encoder once a test run and its vectors are
    reused: the first run of a batch is the model's own output, so the state is what the real
    models make, in half the time. The test itself embeds for real."""
    from config.progress import advance
    from knowledge.embeddings import Embedder, MultilingualEmbedder

    def remembered(encoder):
        real = encoder.embed

        def embed(self, texts, batch_size=32, progress=None, **options):
            key = (encoder.__name__, tuple(texts), batch_size, tuple(sorted(options.items())))
            if key not in _EMBEDDED:
                _EMBEDDED[key] = real(self, texts, batch_size=batch_size, **options)
            advance(progress, len(texts))
            return _EMBEDDED[key].copy()

        return embed

    with pytest.MonkeyPatch.context() as patch:
        for encoder in (Embedder, MultilingualEmbedder):
            patch.setattr(encoder, "embed", remembered(encoder))
        yield


@pytest.fixture
def chroma_server(tmp_path, settings):
    """A real Chroma server on loopback that this test process and the servers it starts share
    (ask for it before ``trained_org`` so the demo knowledge base is indexed into it)."""
    from knowledge.vector_server import LocalChromaServer

    with LocalChromaServer(str(tmp_path / "chroma-server"), log=(tmp_path / "chroma.log").open("wb")) as server:
        settings.CHROMA_HOST = server.address
        yield server.address


@pytest.fixture
def eager(monkeypatch):
    """Celery tasks run in the test process as they are queued."""
    from config.celery import app as celery_app

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)
