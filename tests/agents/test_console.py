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
def test_console_leads_staff_to_the_live_inbox(agent, customer, other_org):
    TicketFactory(customer=customer, subject="Where is my parcel")
    TicketFactory(customer=CustomerFactory(organization=other_org, name="Grace Outsider"), subject="Outsider")
    assert "/admin/login/" in Client().get("/console/")["Location"]
    client = Client()
    client.force_login(agent)
    response = client.get("/console/", follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0] == "/admin/tickets/ticket/?view=open"
    assert "Where is my parcel" in page and "Outsider" not in page
    assert 'id="cc-inbox"' in page and "/static/concierge/workspace.js" in page


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


async def frames_until(communicator, wanted, timeout=10):
    """Read frames until one matches ``wanted`` (a dict of expected fields); return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = json.loads(await communicator.receive_from(timeout=max(0.1, deadline - loop.time())))
        if all(frame.get(k) == v for k, v in wanted.items()):
            return frame


@pytest.mark.django_db(transaction=True)
async def test_two_agents_on_one_ticket_see_each_other_and_its_changes(agent, org, other_agent):
    from tests.tenancy.factories import StaffFactory

    colleague = await database_sync_to_async(StaffFactory)(organization=org, username="bob")
    customer = await database_sync_to_async(CustomerFactory)(organization=org, name="Maya")
    conversation = await database_sync_to_async(services.conversation_start)(customer=customer)
    ticket = await database_sync_to_async(TicketFactory)(customer=customer, conversation=conversation)
    alice, bob, outsider = await console_for(agent), await console_for(colleague), await console_for(other_agent)
    await alice.send_to(text_data=json.dumps({"type": "watch", "ticket_id": ticket.pk}))
    await bob.send_to(text_data=json.dumps({"type": "watch", "ticket_id": ticket.pk}))
    # Bob arrives: Alice sees him, and Bob learns Alice was already there.
    assert await frames_until(alice, {"type": "presence", "user": "bob", "state": "viewing"})
    assert await frames_until(bob, {"type": "presence", "user": "alice", "state": "viewing"})
    # Alice types a reply: Bob sees it, the customer's conversation gets the agent's typing.
    await alice.send_to(
        text_data=json.dumps({"type": "typing", "conversation_id": conversation.pk, "ticket_id": ticket.pk})
    )
    assert await frames_until(bob, {"type": "presence", "user": "alice", "state": "typing"})
    # A status change made anywhere reaches both pages, not another organization's.
    await database_sync_to_async(services.ticket_transition)(ticket=ticket, to_status="pending", actor=colleague)
    change = await frames_until(alice, {"type": "ticket", "ticket_id": ticket.pk, "field": "status"})
    assert change["before"] == "open" and change["after"] == "pending" and change["actor"] == "bob"
    assert await frames_until(bob, {"type": "ticket", "field": "status"})
    assert await outsider.receive_nothing(timeout=0.5)
    # Another organization may not watch the ticket; Alice leaving tells Bob.
    await outsider.send_to(text_data=json.dumps({"type": "watch", "ticket_id": ticket.pk}))
    assert json.loads(await outsider.receive_from(timeout=5))["code"] == "forbidden"
    await alice.disconnect()
    assert await frames_until(bob, {"type": "presence", "user": "alice", "state": "left"})
    await bob.send_to(text_data=json.dumps({"type": "watch", "ticket_id": "7"}))
    assert (await frames_until(bob, {"type": "error"}))["code"] == "invalid"
    await bob.disconnect()
    await outsider.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_mention_reaches_the_colleagues_open_pages(agent, org):
    from tests.tenancy.factories import StaffFactory

    colleague = await database_sync_to_async(StaffFactory)(organization=org, username="bob")
    customer = await database_sync_to_async(CustomerFactory)(organization=org, name="Maya")
    ticket = await database_sync_to_async(TicketFactory)(customer=customer, subject="Parcel lost")
    bob, alice = await console_for(colleague), await console_for(agent)
    await database_sync_to_async(services.ticket_note_add)(ticket=ticket, author=agent, body="@bob please call her")
    frame = await frames_until(bob, {"type": "notification"})
    assert frame["ticket_id"] == ticket.pk and frame["by"] == "alice" and "please call her" in frame["text"]
    # Alice, the author, sees the note land on the ticket, and no notification.
    assert await frames_until(alice, {"type": "ticket", "ticket_id": ticket.pk, "kind": "note"})
    assert await alice.receive_nothing(timeout=0.5)
    await bob.disconnect()
    await alice.disconnect()
