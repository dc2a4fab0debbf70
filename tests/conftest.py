from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.tickets.factories import CustomerFactory, OrganizationFactory, StaffFactory, TicketFactory
from tickets.models import StaffRole

DEMO_KB = Path(__file__).resolve().parent.parent / "knowledge" / "demo_kb"


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
    call_command("kb_ingest", str(DEMO_KB), "--org", org.slug)
    from agents.demo_intents import DEMO_INTENTS
    from agents.services import intent_examples_import, intent_model_train

    rows = [(text, intent) for intent, texts in DEMO_INTENTS.items() for text in texts]
    intent_examples_import(organization=org, rows=rows)
    intent_model_train(organization=org)
    return org
