import pytest

from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.search import desk_search

pytestmark = pytest.mark.django_db


@pytest.fixture
def desk_data(org, other_org):
    maya = CustomerFactory(organization=org, name="Maya Thompson", email="maya@example.com")
    conversation = services.conversation_start(customer=maya)
    services.message_create(conversation=conversation, role="customer", text="My stove leaks propane everywhere")
    stove = TicketFactory(customer=maya, subject="Gas smell", conversation=conversation)
    tent = TicketFactory(customer=CustomerFactory(organization=org, name="Tom"), subject="Tent pole snapped")
    foreign = TicketFactory(customer=CustomerFactory(organization=other_org), subject="Tent pole snapped too")
    return {"stove": stove, "tent": tent, "foreign": foreign}


def test_desk_search_matches_subject_customer_and_messages(org, desk_data):
    by_subject = desk_search(organization=org, query="tent pole")
    assert [h.ticket for h in by_subject] == [desk_data["tent"]]  # the other tenant's ticket stays hidden
    assert by_subject[0].matched == "ticket"
    by_message = desk_search(organization=org, query="propane leak")
    assert [h.ticket for h in by_message] == [desk_data["stove"]]
    assert by_message[0].matched == "message" and "propane" in by_message[0].snippet
    assert desk_search(organization=org, query="maya@example.com")[0].ticket == desk_data["stove"]


def test_desk_search_follows_changes(org, desk_data):
    services.ticket_update(ticket=desk_data["tent"], subject="Zipper stuck")
    assert desk_search(organization=org, query="tent pole") == []
    assert [h.ticket.pk for h in desk_search(organization=org, query="zipper")] == [desk_data["tent"].pk]


def test_desk_search_api_and_admin(api, agent, desk_data):
    response = api.get("/api/v1/search", {"q": "propane"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["ticket"]["id"] for r in results] == [desk_data["stove"].pk]
    assert results[0]["matched"] == "message"
    assert api.get("/api/v1/search", {"q": ""}).status_code == 400
    assert api.get("/api/v1/search", {"q": "x", "k": "0"}).status_code == 400
    from django.test import Client

    client = Client()
    client.force_login(agent)
    page = client.get("/admin/tickets/ticket/", {"q": "propane"}).content.decode()
    assert "Gas smell" in page and "Tent pole snapped" not in page
