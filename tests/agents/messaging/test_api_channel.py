"""The API channel: a company's own app posts its customers' messages, HMAC-signed with a
timestamp, and receives the replies on its webhook signed the same way (the loopback app checks
the signature as the README tells an app to)."""

import json
import time

import pytest

from agents.messaging.api_channel import api_signature
from agents.messaging.models import DeliveryStatus, Direction, MessagingRecord
from tests.agents.messaging.conftest import BOT, CUSTOMER, account_make, admin_reply, texts, webhook_path
from tests.agents.messaging.providers import company_app
from tests.tickets.factories import CustomerFactory
from tickets import services
from tickets.models import Channel, Conversation, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "api-channel-signing-secret"


@pytest.fixture
def app():
    server = company_app(SECRET)
    yield server
    server.close()


@pytest.fixture
def account(org, app):
    return account_make(org, "api", name="Acme app", secret=SECRET, webhook_url=f"{app.url}/concierge")


def post(client, account, payload, secret=SECRET, stamp=None, signed=True):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    stamp = str(int(time.time()) if stamp is None else stamp)
    headers = {}
    if signed:
        headers = {
            "HTTP_X_CONCIERGE_TIMESTAMP": stamp,
            "HTTP_X_CONCIERGE_SIGNATURE": api_signature(secret, stamp, body),
        }
    return client.post(webhook_path(account), data=body, content_type="application/json", **headers)


def message(msg_id: str, text: str, **user) -> dict:
    return {"id": msg_id, "user": {"id": "u-42", "name": "Kim", **user}, "text": text}


def test_forged_replayed_unsigned_and_malformed_requests_store_nothing(client, account):
    payload = message("m1", "hello")
    forged, stale = post(client, account, payload, secret="guess"), post(client, account, payload, stamp=1)
    unsigned = post(client, account, payload, signed=False)
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (403, 401, 401)
    assert "replayed" in stale.json()["message"]
    for bad, word in [
        ({"user": {"id": "u"}, "text": "x"}, "'id'"),
        ({"id": "m", "text": "x"}, "user.id"),
        ({"id": "m", "user": {"id": "u"}, "text": ""}, "'text'"),
        ({"id": "m", "user": {"id": "u"}, "text": ["x"]}, "string"),
        ({"id": "m", "type": "status", "status": "lost"}, "status"),
        (b"[1, 2]", "object"),
    ]:
        response = post(client, account, bad)
        assert response.status_code == 400 and word in response.json()["message"], bad
    assert not Message.objects.exists() and not MessagingRecord.objects.exists()


def test_the_whole_path_with_a_known_customer_by_email(client, trained_org, account, app, eager, agent):
    known = CustomerFactory(organization=trained_org, name="Kim Lee", email="kim@example.com")
    response = post(client, account, message("m10", "How long do refunds take?", email="Kim@Example.com"))
    assert response.status_code == 202 and response.json()["received"][0]["status"] == "received"
    assert (
        post(client, account, message("m10", "How long do refunds take?")).json()["received"][0]["status"]
        == "duplicate"
    )
    conversation = Conversation.objects.get()
    assert conversation.customer == known and conversation.channel == Channel.API  # the app vouched for the email
    assert texts(conversation.pk, CUSTOMER) == ["How long do refunds take?"] and len(texts(conversation.pk, BOT)) == 1
    delivered = app.to("/concierge")
    assert len(delivered) == 1  # and the app accepted its signature (it answers 401 otherwise)
    reply = delivered[0].json
    assert reply["user_id"] == "u-42" and "refund" in reply["text"].lower()
    assert reply["sources"][0]["title"] == "Returns and refunds"  # structured, not pasted into the text
    record = MessagingRecord.objects.get(direction=Direction.OUTBOUND)
    assert record.status == DeliveryStatus.SENT and record.provider_message_id == reply["id"]

    assert post(client, account, {"id": reply["id"], "type": "status", "status": "read"}).status_code == 202
    record.refresh_from_db()
    assert record.status == DeliveryStatus.READ

    post(client, account, message("m11", "I want to talk to a human"))
    ticket = Ticket.objects.get(conversation=conversation)
    admin_reply(agent, ticket, "Alice here, looking into it.")
    last = app.to("/concierge")[-1].json
    assert last["text"] == "Alice here, looking into it." and last["author"] == "alice"


def test_an_app_outage_is_retried_and_a_long_reply_resumes_where_it_stopped(client, account, app, agent, monkeypatch):
    from agents.messaging.adapters import adapter_for
    from agents.messaging.outbound import MessagingSendDeferred, messaging_record_send

    monkeypatch.setattr(adapter_for("api"), "max_chars", 40)
    post(client, account, message("m20", "hi"))
    ticket = services.conversation_escalate(conversation=Conversation.objects.get(), reason="test")
    long = "First paragraph of the answer.\n\nSecond paragraph here.\n\nThird and last one."
    services.ticket_reply(ticket=ticket, author=agent, text=long)  # queued for a worker; sent by hand below
    record = MessagingRecord.objects.get(message__role="agent")

    app.failures = [None, (503, {"error": "down"})]  # part 1 arrives, part 2 meets an outage
    with pytest.raises(MessagingSendDeferred):
        messaging_record_send(record_id=record.pk)
    record.refresh_from_db()
    assert (record.status, record.parts, record.attempts) == (DeliveryStatus.QUEUED, 1, 1)
    assert "503" in record.reason

    assert messaging_record_send(record_id=record.pk) == DeliveryStatus.SENT  # the retry resumes at part 2
    assert messaging_record_send(record_id=record.pk) == DeliveryStatus.SENT  # and a third run sends nothing
    accepted = [r.json for r, n in zip(app.requests, range(len(app.requests)), strict=True) if n != 1]
    assert [a["text"] for a in accepted] == [
        "First paragraph of the answer.",
        "Second paragraph here.",
        "Third and last one.",
    ]
    assert [a["id"] for a in accepted] == [f"out-{record.pk}-{part}" for part in range(3)]


def test_a_reply_the_app_keeps_refusing_fails_with_its_reason_and_the_agent_is_told(client, account, app, agent):
    from agents.messaging.outbound import MessagingSendDeferred, messaging_record_send

    post(client, account, message("m30", "hi"))
    ticket = services.conversation_escalate(conversation=Conversation.objects.get(), reason="test")
    services.ticket_reply(ticket=ticket, author=agent, text="Hello?")
    record = MessagingRecord.objects.get(message__role="agent")
    app.failures = [(500, {"error": "boom"})] * 10
    for _ in range(5):
        with pytest.raises(MessagingSendDeferred):
            messaging_record_send(record_id=record.pk)
    assert messaging_record_send(record_id=record.pk) == DeliveryStatus.FAILED  # the 6th and last attempt
    record.refresh_from_db()
    assert record.attempts == 6 and "500" in record.reason
    assert ticket.notes.filter(body__contains="was not delivered").exists()
