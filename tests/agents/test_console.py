"""The staff console: page, live websocket feed, and replies through the API."""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from rest_framework.test import APIClient

from config.asgi import application
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.transport import conversation_group_name

ORIGIN = (b"origin", b"http://testserver")


def session_cookie(user):
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def console_for(user):
    headers = [ORIGIN]
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


@pytest.mark.django_db
def test_console_page_needs_staff_and_lists_own_chats(agent, customer, other_org):
    services.conversation_start(customer=customer)
    services.conversation_start(customer=CustomerFactory(organization=other_org, name="Grace Outsider"))
    assert Client().get("/console/").status_code == 302
    client = Client()
    client.force_login(agent)
    page = client.get("/console/").content.decode()
    assert "Maya" in page and "Grace Outsider" not in page
    assert "/static/concierge/console.js" in page


@pytest.mark.django_db(transaction=True)
async def test_console_receives_messages_of_its_organization_only(agent, other_agent, org):
    customer = await database_sync_to_async(CustomerFactory)(organization=org, name="Maya")
    conversation = await database_sync_to_async(services.conversation_start)(customer=customer)
    # Stand in for the customer's widget: a channel in the conversation's group.
    layer = get_channel_layer()
    widget = await layer.new_channel()
    await layer.group_add(conversation_group_name(conversation.pk), widget)
    mine = await console_for(agent)
    theirs = await console_for(other_agent)
    await database_sync_to_async(services.message_create)(
        conversation=conversation, role="customer", text="Is anyone there?"
    )
    frame = json.loads(await mine.receive_from(timeout=10))
    assert frame["type"] == "message" and frame["conversation_id"] == conversation.pk
    assert frame["text"] == "Is anyone there?" and frame["role"] == "customer"
    assert await theirs.receive_nothing(timeout=0.5)
    delivered = await asyncio.wait_for(layer.receive(widget), 5)  # the widget got the message too
    assert delivered["type"] == "chat.message" and delivered["frame"]["text"] == "Is anyone there?"
    # Staff typing in the console reaches the customer's conversation group, not elsewhere.
    await mine.send_to(text_data=json.dumps({"type": "typing", "conversation_id": conversation.pk}))
    assert (await asyncio.wait_for(layer.receive(widget), 5)) == {"type": "chat.typing", "role": "agent", "sender": ""}
    # Typing for another organization's conversation goes nowhere.
    await theirs.send_to(text_data=json.dumps({"type": "typing", "conversation_id": conversation.pk}))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(widget), 0.5)
    await mine.send_to(text_data="nonsense")
    assert json.loads(await mine.receive_from(timeout=5))["code"] == "invalid"
    await mine.disconnect()
    await theirs.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_console_refuses_anonymous_visitors():
    communicator = await console_for(None)
    frame = json.loads(await communicator.receive_from(timeout=5))
    assert frame["code"] == "forbidden"
    assert (await communicator.receive_output(timeout=5))["code"] == 4403


@pytest.mark.django_db
def test_console_reply_goes_through_the_open_ticket(agent, customer):
    conversation = services.conversation_start(customer=customer)
    ticket = TicketFactory(customer=customer, conversation=conversation)
    api = APIClient()
    api.force_authenticate(agent)
    response = api.post(f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "Hi!", "role": "agent"})
    assert response.status_code == 201
    ticket.refresh_from_db()
    assert ticket.first_responded_at is not None and ticket.status == "in_progress"
    transcript = api.get(f"/api/v1/conversations/{conversation.pk}/messages/?page_size=200").json()
    assert [m["text"] for m in transcript["results"]] == ["Hi!"]
