"""WhatsApp Cloud API: Meta's verification challenge, X-Hub-Signature-256 on every POST (checked
by pywa's validator), messages, media and status callbacks as Meta sends them, and replies sent
through pywa to a loopback Graph API that checks the token and the message's fields."""

import json
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from agents.messaging.models import DeliveryStatus, Direction, MessagingRecord
from tests.agents.messaging.conftest import BOT, CUSTOMER, account_make, admin_reply, texts, webhook_path
from tests.agents.messaging.providers import PNG, graph_api, whatsapp_body, whatsapp_signature
from tickets import services
from tickets.models import Attachment, Channel, Conversation, Customer, Message, Ticket, TicketNote

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN, SECRET, VERIFY, PHONE_ID = "EAAG-loopback-token", "app-secret", "verify-me", "100000000000001"
KIM = "447700900123"


@pytest.fixture
def graph(settings):
    server = graph_api(TOKEN, PHONE_ID)
    settings.CONCIERGE_WHATSAPP_API_URL = server.url
    yield server
    server.close()


@pytest.fixture
def account(org):
    return account_make(org, "whatsapp", PHONE_ID, access_token=TOKEN, app_secret=SECRET, verify_token=VERIFY)


def text(wamid: str, body: str, sender: str = KIM) -> dict:
    return {"from": sender, "id": wamid, "timestamp": str(int(time.time())), "type": "text", "text": {"body": body}}


def post(client: Client, account, body: bytes, signature: str | None = None):
    headers = {"HTTP_X_HUB_SIGNATURE_256": whatsapp_signature(SECRET, body) if signature is None else signature}
    if signature == "":
        headers = {}
    return client.post(webhook_path(account), data=body, content_type="application/json", **headers)


def sent_texts(graph) -> list[str]:
    return [r.json["text"]["body"] for r in graph.to(r"/v[\d.]+/\d+/messages") if r.json.get("type") == "text"]


def test_meta_verifies_the_webhook_with_the_accounts_verify_token(client, account):
    ok = client.get(webhook_path(account), {"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "81"})
    assert (ok.status_code, ok.content) == (200, b"81")
    wrong = client.get(webhook_path(account), {"hub.mode": "subscribe", "hub.verify_token": "x", "hub.challenge": "81"})
    assert wrong.status_code == 403 and b"81" not in wrong.content


def test_forged_unsigned_and_malformed_posts_are_refused_and_store_nothing(client, account):
    body = whatsapp_body(text("wamid.A1", "hello"))
    forged = post(client, account, body, signature=whatsapp_signature("not-the-secret", body))
    unsigned = post(client, account, body, signature="")
    not_json = post(client, account, b"{oops", signature=None)
    wrong_object = post(client, account, json.dumps({"object": "page", "entry": []}).encode())
    missing = post(client, account, json.dumps({"object": "whatsapp_business_account", "entry": [
        {"changes": [{"value": {"messages": [{"type": "text"}]}}]}]}).encode())  # fmt: skip
    assert [r.status_code for r in (forged, unsigned, not_json, wrong_object, missing)] == [403, 401, 400, 400, 400]
    assert "signature" in forged.json()["message"] and "missing" in unsigned.json()["message"]
    assert not Message.objects.exists() and not MessagingRecord.objects.exists() and not Customer.objects.exists()
    unknown = Client().post("/api/v1/messaging/no-such-key", data=body, content_type="application/json")
    assert unknown.status_code == 404


def test_a_retried_delivery_is_stored_and_answered_once(client, account, graph, eager):
    body = whatsapp_body(text("wamid.R1", "hello there"))
    for _ in range(3):  # Meta retries until it gets a 200, with the same wamid
        assert post(client, account, body).status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.WHATSAPP
    assert texts(conversation.pk, CUSTOMER) == ["hello there"] and len(texts(conversation.pk, BOT)) == 1
    assert len(sent_texts(graph)) == 1
    assert MessagingRecord.objects.filter(direction=Direction.INBOUND).count() == 1


def test_the_whole_path_answer_handoff_and_an_agents_reply(client, trained_org, account, graph, eager, agent):
    ask = whatsapp_body(text("wamid.Q1", "How long do refunds take?"), name="Kim Lee")
    assert post(client, account, ask).status_code == 200
    conversation = Conversation.objects.get()
    customer = conversation.customer
    assert customer.name == "Kim Lee" and customer.phone == f"+{KIM}"  # WhatsApp proved the number
    answer = sent_texts(graph)[0]
    assert "refund" in answer.lower() and "Returns and refunds" in answer  # the citation travels as text
    request = graph.to(r"/v[\d.]+/\d+/messages")[0]
    assert request.json["to"] == KIM and request.headers["authorization"] == f"Bearer {TOKEN}"
    reply_record = MessagingRecord.objects.get(direction=Direction.OUTBOUND)
    assert reply_record.status == DeliveryStatus.SENT and reply_record.provider_message_id == "wamid.OUT1"

    # Meta reports the reply delivered, then read; a late "sent" does not undo "read".
    for status in ("delivered", "read", "sent"):
        update = {"id": "wamid.OUT1", "status": status, "timestamp": "1", "recipient_id": KIM}
        assert post(client, account, whatsapp_body(statuses=(update,))).status_code == 200
    reply_record.refresh_from_db()
    assert reply_record.status == DeliveryStatus.READ

    assert post(client, account, whatsapp_body(text("wamid.Q2", "I want to talk to a human"))).status_code == 200
    ticket = Ticket.objects.get(conversation=conversation)
    assert ticket.channel == Channel.WHATSAPP

    admin_reply(agent, ticket, "Hi Kim, Alice here. I've refunded you today.")
    assert sent_texts(graph)[-1] == "Hi Kim, Alice here. I've refunded you today."
    agent_record = MessagingRecord.objects.get(message__role="agent")
    failed = {"id": agent_record.provider_message_id, "status": "failed", "timestamp": "2", "recipient_id": KIM,
              "errors": [{"code": 131026, "title": "Message undeliverable"}]}  # fmt: skip
    post(client, account, whatsapp_body(statuses=(failed,)))
    agent_record.refresh_from_db()
    assert agent_record.status == DeliveryStatus.FAILED and agent_record.reason == "Message undeliverable (131026)"

    # Staff see the channel in the inbox and the delivery state on the ticket page.
    client.force_login(agent)
    listed = client.get("/admin/tickets/ticket/", {"channel__exact": "whatsapp", "view": "all"})
    assert f"/admin/tickets/ticket/{ticket.pk}/change/" in listed.content.decode()
    page = client.get(f"/admin/tickets/ticket/{ticket.pk}/change/").content.decode()
    assert "failed: Message undeliverable (131026)" in page and "cc-delivery read" in page


def test_an_image_in_is_fetched_from_meta_and_an_agents_file_goes_out(client, account, graph, eager, agent):
    image = {"from": KIM, "id": "wamid.IMG1", "timestamp": "1", "type": "image",
             "image": {"id": "media-in-7", "mime_type": "image/png", "caption": "the broken pole"}}  # fmt: skip
    assert post(client, account, whatsapp_body(image)).status_code == 200
    message = Message.objects.get(role="customer")
    assert message.text == "the broken pole"
    stored = Attachment.objects.get(message=message)
    assert stored.content_type == "image/png" and stored.file.read() == PNG

    ticket = services.conversation_escalate(conversation=message.conversation, reason="test")
    upload = SimpleUploadedFile("label.png", PNG, content_type="image/png")
    admin_reply(agent, ticket, "Here is your return label.", file=upload)
    uploads = graph.to(r"/v[\d.]+/\d+/media")
    assert len(uploads) == 1 and uploads[0].files["file"][1] == PNG
    image_sent = [r.json for r in graph.to(r"/v[\d.]+/\d+/messages") if r.json.get("type") == "image"]
    assert image_sent and image_sent[0]["image"]["id"].startswith("media-out-")  # the id the upload returned


def test_outside_the_24_hour_window_the_agent_is_told_instead_of_a_silent_failure(client, account, graph, eager, agent):
    post(client, account, whatsapp_body(text("wamid.OLD", "my order?")))
    conversation = Conversation.objects.get()
    MessagingRecord.objects.filter(direction=Direction.INBOUND).update(created_at=timezone.now() - timedelta(hours=25))
    ticket = services.conversation_escalate(conversation=conversation, reason="test")
    before = len(sent_texts(graph))
    services.ticket_reply(ticket=ticket, author=agent, text="Sorry for the wait!")
    record = MessagingRecord.objects.get(message__role="agent")
    assert record.status == DeliveryStatus.FAILED and "24 hours" in record.reason
    assert len(sent_texts(graph)) == before  # nothing was attempted
    note = TicketNote.objects.get(ticket=ticket, author=None, body__contains="was not delivered")
    assert "template" in note.body


def test_a_reaction_stores_nothing_and_a_shared_location_is_read(client, account):
    reaction = {"from": KIM, "id": "wamid.RX", "timestamp": "1", "type": "reaction",
                "reaction": {"message_id": "wamid.OUT1", "emoji": "\U0001f44d"}}  # fmt: skip
    assert post(client, account, whatsapp_body(reaction)).status_code == 200
    assert not Message.objects.exists()
    place = {"from": KIM, "id": "wamid.LOC", "timestamp": "1", "type": "location",
             "location": {"latitude": 51.5, "longitude": -0.12, "name": "Camp shop"}}  # fmt: skip
    assert post(client, account, whatsapp_body(place)).status_code == 200
    assert Message.objects.get().text == "\U0001f4cd Camp shop (51.5, -0.12)"
