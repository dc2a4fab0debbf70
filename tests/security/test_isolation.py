"""Tenant and customer isolation, swept across every API operation that takes an id, the chat
and console websockets, and the search endpoints."""

import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.test import APIClient

from agents.tokens import WidgetSession, widget_token_issue
from config.asgi import application
from knowledge.services import kb_article_upsert
from tenancy.models import StaffRole
from tests.agents.test_chat import ORIGIN, connect
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Conversation, Customer, Macro, Message, Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def victim(org, supervisor):
    """Acme's rows, which Globex's staff must never reach."""
    customer = CustomerFactory(organization=org, name="Victim", email="victim@example.com")
    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="secret acme words")
    ticket = TicketFactory(customer=customer, conversation=conversation, subject="Acme only")
    macro = services.macro_create(organization=org, name="Acme macro", reply="hi")
    article, _ = kb_article_upsert(organization=org, title="Acme secret guide", body="# Guide\n\nzebracorn policy.")
    return {"ticket": ticket, "customer": customer, "conversation": conversation, "macro": macro, "article": article}


def test_every_api_operation_with_an_id_denies_another_tenant(victim, other_org):
    intruder = StaffFactory(organization=other_org, username="mallory-admin", role=StaffRole.ADMIN)
    client = APIClient()
    client.force_authenticate(intruder)
    schema = client.get("/api/schema/?format=json").json()
    ids = {
        "tickets": victim["ticket"].pk,
        "customers": victim["customer"].pk,
        "conversations": victim["conversation"].pk,
        "macros": victim["macro"].pk,
        "kb/articles": victim["article"].pk,
    }
    tried = 0
    for path, operations in schema["paths"].items():
        match = re.match(r"^/api/v1/(tickets|customers|conversations|macros|kb/articles)/\{id\}/", path)
        if not match:
            continue
        url = path.replace("{id}", str(ids[match.group(1)]))
        for method in operations:
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            response = getattr(client, method)(url, {}, format="json")
            assert response.status_code in (403, 404), (method, url, response.status_code)
            tried += 1
    assert tried >= 20
    # Nothing moved.
    assert Ticket.objects.get(pk=victim["ticket"].pk).subject == "Acme only"
    assert Macro.objects.filter(pk=victim["macro"].pk).exists()
    assert Customer.objects.get(pk=victim["customer"].pk).name == "Victim"
    assert Message.objects.filter(conversation=victim["conversation"]).count() == 1


def test_lists_and_searches_show_only_ones_own_tenant(victim, other_agent):
    client = APIClient()
    client.force_authenticate(other_agent)
    for url in ("/api/v1/tickets/", "/api/v1/customers/", "/api/v1/conversations/", "/api/v1/macros/",
                "/api/v1/kb/articles/"):  # fmt: skip
        body = client.get(url).json()
        assert body["count"] == 0, url
    assert client.get("/api/v1/search", {"q": "secret acme words"}).json()["results"] == []
    hits = client.get("/api/v1/kb/search", {"q": "zebracorn policy"}).json()["hits"]
    assert all("Acme" not in hit["title"] for hit in hits)


@pytest.mark.django_db(transaction=True)
async def test_a_customer_token_reaches_its_own_conversation_only(victim, other_org):
    conversation = victim["conversation"]
    # A genuine token for another customer's new chat cannot be bent to this conversation.
    other_customer = await database_sync_to_async(CustomerFactory)(organization=conversation.organization)
    forged = [
        widget_token_issue(WidgetSession(conversation.organization_id, other_customer.pk, conversation.pk)),
        widget_token_issue(WidgetSession(other_org.pk, conversation.customer_id, conversation.pk)),
        widget_token_issue(WidgetSession(conversation.organization_id, conversation.customer_id, conversation.pk))[:-2]
        + "xx",
    ]
    for token in forged:
        chat = WebsocketCommunicator(application, f"/ws/chat/?token={token}", headers=ORIGIN)
        await chat.connect()
        frame = json.loads(await chat.receive_from(timeout=5))
        assert frame["code"] in ("bad_token", "not_found"), token
        await chat.disconnect()
    # The real token replays only its own conversation.
    mine = await database_sync_to_async(services.conversation_start)(customer=other_customer)
    chat = await connect(widget_token_issue(WidgetSession(mine.organization_id, other_customer.pk, mine.pk)))
    await chat.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    assert await chat.receive_nothing(timeout=0.5)  # nothing of the victim's conversation
    await chat.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_console_staff_cannot_reach_another_tenants_chat(victim, other_agent):
    from django.test import Client

    def session_cookie():
        client = Client()
        client.force_login(other_agent)
        return client.cookies["sessionid"].value

    cookie = await database_sync_to_async(session_cookie)()
    conversation = victim["conversation"]
    token = await database_sync_to_async(widget_token_issue)(
        WidgetSession(conversation.organization_id, conversation.customer_id, conversation.pk)
    )
    customer_chat = await connect(token)
    console = WebsocketCommunicator(
        application, "/ws/console/", headers=[*ORIGIN, (b"cookie", f"sessionid={cookie}".encode())]
    )
    assert (await console.connect())[0]
    await console.send_to(text_data=json.dumps({"type": "typing", "conversation_id": conversation.pk}))
    assert await customer_chat.receive_nothing(timeout=0.5)  # Globex's agent cannot type into Acme's chat
    # Acme's customer messages never reach Globex's console.
    await database_sync_to_async(services.message_create)(
        conversation=await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk),
        role="customer",
        text="still there?",
    )
    assert await console.receive_nothing(timeout=0.5)
    await console.disconnect()
    await customer_chat.disconnect()
