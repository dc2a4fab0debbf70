import pytest
from rest_framework.test import APIClient

from tests.tickets.factories import CustomerFactory, OrganizationFactory, StaffFactory, TicketFactory
from tickets.models import StaffRole


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
