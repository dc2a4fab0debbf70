"""The assistant acts on an organization's own systems: actions defined in admin, called over
real HTTPS (a loopback shop server with a throwaway CA) from scripted conversations."""

import hashlib
import hmac
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import trustme

from agents.actions.models import AssistantAction
from agents.active_models import active_models_forget
from agents.dialog import TEXTS
from agents.services import assistant_reply, customer_message_receive
from tenancy.audit import audit_verify
from tenancy.models import AuditEntry
from tickets.models import Conversation, Customer, Message, Ticket

pytestmark = pytest.mark.django_db

TOKEN = "shop-token-3f9a"
SIGNING_KEY = "address-signing-key-77"
ORDERS = {"4411": {"status": "shipped", "carrier": "UPS", "eta": "Friday"}}


class ShopHandler(BaseHTTPRequestHandler):
    """The company's order system: what it was asked, and its documented answers."""

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        path = urlsplit(self.path).path
        if path.startswith("/orders/"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._answer(401, {"error": "unauthorized"})
            order = ORDERS.get(path.removeprefix("/orders/"))
            return self._answer(200, order) if order else self._answer(404, {"error": "no such order"})
        if path == "/slow":
            time.sleep(3)
            return self._answer(200, {"status": "late"})
        if path == "/broken":
            return self._answer(503, {"error": "maintenance"})
        if path == "/address":
            # The documented signature: hex HMAC-SHA256 over "timestamp.METHOD.url." + body.
            stamp = self.headers.get("X-Concierge-Timestamp", "")
            url = f"https://127.0.0.1:{self.server.server_address[1]}{self.path}"
            signed = f"{stamp}.POST.{url}.".encode() + body
            expected = "sha256=" + hmac.new(SIGNING_KEY.encode(), signed, hashlib.sha256).hexdigest()
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
            if not fresh or not hmac.compare_digest(expected, self.headers.get("X-Concierge-Signature", "")):
                return self._answer(401, {"error": "bad signature"})
            sent = json.loads(body)
            return self._answer(200, {"updated": True, "address": sent["address"]})
        return self._answer(404, {"error": "no such endpoint"})

    do_GET = _handle
    do_POST = _handle


@pytest.fixture
def shop(settings, tmp_path):
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    settings.CONCIERGE_ACTIONS_CA_BUNDLE = str(bundle)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), ShopHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"https://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def order_action(organization, shop, **overrides):
    fields = {
        "name": "order_status",
        "intent": "order_status",
        "url": f"{shop.url}/orders/{{order}}",
        "inputs": "order",
        "auth": "bearer",
        "auth_secret": TOKEN,
        "timeout_seconds": 2.0,
        "requires_identified": True,
        "reply_en": "Order {order} is {status} with {carrier}; it arrives {eta}.",
        "reply_zh": "订单 {order} 已发货（{carrier}），预计{eta}送达。",
    }
    action = AssistantAction.objects.create(organization=organization, **{**fields, **overrides})
    active_models_forget()
    return action


class Chat:
    external_id = "cust-1"

    def __init__(self, organization, identified=True) -> None:
        Customer.objects.filter(organization=organization, external_id=self.external_id).update(external_id="")
        customer = Customer.objects.create(
            organization=organization,
            name="Kim Lee",
            email="kim@example.com",
            external_id=self.external_id if identified else "",
        )
        self.organization = organization
        self.conversation = Conversation.objects.create(organization=organization, customer=customer)

    def say(self, text: str):
        received = customer_message_receive(
            conversation_id=self.conversation.pk,
            organization_id=self.organization.pk,
            text=text,
            client_message_id=str(uuid.uuid4()),
        )
        return assistant_reply(message_id=received.message.pk)


def calls(organization):
    return list(AuditEntry.objects.filter(organization=organization, action="ai.action_call").order_by("seq"))


def test_the_assistant_asks_for_the_order_number_calls_the_shop_and_answers_from_the_result(trained_org, shop):
    order_action(trained_org, shop)
    chat = Chat(trained_org)
    asked = chat.say("where is my order?")
    assert asked.metadata["action"] == {"name": "order_status", "status": "needs_input", "missing": ["order"]}
    assert asked.text == TEXTS["en"]["ask_order"] and not asked.metadata["handoff"]
    assert shop.requests == []  # nothing called without the input

    answered = chat.say("it's 4411")
    assert answered.text == "Order 4411 is shipped with UPS; it arrives Friday."
    assert answered.metadata["action"]["status"] == "answered" and not answered.metadata["handoff"]
    assert answered.metadata["sources"] == []  # no article pasted beside the result
    [request] = shop.requests
    assert request["method"] == "GET" and request["path"] == "/orders/4411"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"

    [entry] = calls(trained_org)
    assert entry.data["action"] == "order_status" and entry.data["inputs"] == {"order": "4411"}
    assert entry.data["outcome"] == "ok" and entry.data["http_status"] == 200
    assert entry.data["headers"]["Authorization"] == "********"
    assert TOKEN not in json.dumps(entry.data)  # the secret is masked everywhere
    assert entry.object_id == str(chat.conversation.pk)
    assert audit_verify(organization=trained_org).problems == []


def test_an_order_number_given_up_front_is_answered_in_one_turn_and_in_chinese(trained_org, shop):
    order_action(trained_org, shop)
    reply = Chat(trained_org).say("Where is order 4411? It has not arrived yet")
    assert reply.text.startswith("Order 4411 is shipped")
    chinese = Chat(trained_org).say("我的订单 4411 什么时候到？")
    assert chinese.metadata["language"] == "zh", chinese.metadata
    assert chinese.text == "订单 4411 已发货（UPS），预计Friday送达。", chinese.metadata["escalation_reasons"]


def test_an_unknown_order_is_asked_again_and_the_corrected_number_answered(trained_org, shop):
    order_action(trained_org, shop)
    chat = Chat(trained_org)
    missing = chat.say("where is my order 9999?")
    assert missing.text == TEXTS["en"]["action_not_found"].format(value="9999")
    assert not missing.metadata["handoff"]
    corrected = chat.say("sorry, it is 4411")
    assert corrected.text.startswith("Order 4411 is shipped")
    assert [entry.data["detail"] for entry in calls(trained_org)] == ["HTTP 404", "200"]


@pytest.mark.parametrize(
    ("path", "timeout", "detail"),
    [("/broken", 2.0, "HTTP 503"), ("/slow", 0.5, "timeout"), ("/orders/{order}", 2.0, "HTTP 401")],
)
def test_a_failing_or_slow_system_hands_the_conversation_to_a_person(trained_org, shop, path, timeout, detail):
    order_action(trained_org, shop, url=f"{shop.url}{path}", timeout_seconds=timeout)
    if detail == "HTTP 401":
        AssistantAction.objects.update(auth_secret="wrong-token")
        active_models_forget()
    chat = Chat(trained_org)
    started = time.monotonic()
    reply = chat.say("where is my order 4411?")
    assert time.monotonic() - started < 2.5  # the action's own timeout bounds the turn
    assert reply.metadata["handoff"]
    assert reply.metadata["escalation_reasons"][0] == f"action order_status failed: {detail}"
    assert reply.text.startswith(TEXTS["en"]["action_failed"]) and TEXTS["en"]["handoff"] in reply.text
    assert Ticket.objects.filter(conversation=chat.conversation).exists()
    assert [entry.data["outcome"] for entry in calls(trained_org)] == ["failed"]


def test_a_result_without_the_fields_the_reply_needs_hands_off(trained_org, shop):
    order_action(trained_org, shop, reply_en="Order {order} left the warehouse on {shipped_on}.")
    reply = Chat(trained_org).say("where is my order 4411?")
    assert reply.metadata["handoff"]
    assert reply.metadata["action"] == {
        "name": "order_status",
        "status": "failed",
        "detail": "the reply names a field the result lacks",
    }


def test_an_action_that_needs_an_identified_customer_is_not_called_for_an_anonymous_one(trained_org, shop):
    order_action(trained_org, shop)
    reply = Chat(trained_org, identified=False).say("where is my order 4411?")
    assert reply.metadata["action"]["status"] == "needs_identity" and reply.metadata["handoff"]
    assert "needs an identified customer" in reply.metadata["escalation_reasons"][0]
    assert shop.requests == [] and calls(trained_org) == []


def test_a_signed_post_action_found_by_example_phrases_asks_for_a_free_text_input(trained_org, shop):
    AssistantAction.objects.create(
        organization=trained_org,
        name="address_change",
        examples="I want to change my delivery address\nplease send my parcel to a different address",
        method="POST",
        url=f"{shop.url}/address",
        inputs="order,address,customer_id",
        auth="hmac",
        auth_secret=SIGNING_KEY,
        reply_en="Done: order {order} now goes to {address}.",
    )
    active_models_forget()
    chat = Chat(trained_org)
    asked = chat.say("I'd like to change the delivery address for order 4411")
    assert asked.metadata["action"]["missing"] == ["address"]
    assert asked.text == TEXTS["en"]["ask_input"].format(name="address")
    done = chat.say("12 Harbour Street, Leith EH6 6JJ")
    assert done.text == "Done: order 4411 now goes to 12 Harbour Street, Leith EH6 6JJ."
    [request] = shop.requests
    assert json.loads(request["body"]) == {
        "order": "4411",
        "address": "12 Harbour Street, Leith EH6 6JJ",
        "customer_id": "cust-1",
    }
    [entry] = calls(trained_org)
    assert entry.data["headers"]["X-Concierge-Signature"] == "********"


def test_actions_in_admin_https_only_secret_kept_and_scoped(trained_org, other_org, client, settings):
    from tests.tenancy.factories import StaffFactory

    settings.CONCIERGE_ACTIONS_HTTP_HOSTS = []
    client.force_login(StaffFactory(organization=trained_org, role="admin"))
    form = {
        "name": "order_status",
        "intent": "order_status",
        "examples": "",
        "method": "GET",
        "url": "http://shop.example.com/orders/{order}",
        "inputs": "order",
        "auth": "bearer",
        "auth_username": "",
        "auth_header": "",
        "auth_secret": TOKEN,
        "timeout_seconds": "5",
        "requires_identified": "on",
        "is_active": "on",
        "reply_en": "",
        "reply_zh": "",
        "description": "",
    }
    refused = client.post("/admin/agents/assistantaction/add/", form)
    assert refused.status_code == 200 and "must be https://" in refused.content.decode()
    assert (
        client.post(
            "/admin/agents/assistantaction/add/", {**form, "url": "https://shop.example.com/o/{order}"}
        ).status_code
        == 302
    )
    action = AssistantAction.objects.get(organization=trained_org)
    assert action.auth_secret == TOKEN
    page = client.get(f"/admin/agents/assistantaction/{action.pk}/change/").content.decode()
    assert TOKEN not in page  # never shown again
    edit = {**form, "url": "https://shop.example.com/o/{order}", "auth_secret": "", "timeout_seconds": "3"}
    assert client.post(f"/admin/agents/assistantaction/{action.pk}/change/", edit).status_code == 302
    action.refresh_from_db()
    assert action.auth_secret == TOKEN and action.timeout_seconds == 3.0  # blank kept the secret
    twice = client.post("/admin/agents/assistantaction/add/", {**form, "url": "https://shop.example.com/x"})
    assert "already" in twice.content.decode()
    no_trigger = client.post("/admin/agents/assistantaction/add/", {**form, "name": "other", "intent": ""})
    assert "Give the intent or example phrases" in no_trigger.content.decode()
    # Another organization's staff never sees it.
    client.force_login(StaffFactory(organization=other_org, role="admin"))
    assert client.get(f"/admin/agents/assistantaction/{action.pk}/change/").status_code in (302, 404)


# --- the turn a fresh worker rehearses at boot -------------------------------------------------


def test_a_rehearsed_turn_calls_no_system_asks_no_llm_and_leaves_nothing(trained_org, shop, llm_server, caplog):
    from django.test import override_settings

    from agents.pipeline import REHEARSING
    from agents.services import assistant_rehearse
    from monitoring.metrics import CHAT_TURNS
    from tests.agents.llm_server import FakeChatCompletions
    from tickets.models import SentimentRecord

    order_action(trained_org, shop)
    with override_settings(LLM_BASE_URL=llm_server, LLM_MODEL="tiny", LLM_API_KEY="k"):
        # What a turn would do: call the shop, ask the LLM...
        assert Chat(trained_org).say("Where is order 4411?").text.startswith("Order 4411 is shipped")
        assert Chat(trained_org).say("How long do refunds take?").metadata["llm"] == "generated"
        assert len(shop.requests) == 1 and len(FakeChatCompletions.requests) == 1
        # ...and what the same turns do while rehearsing: neither.
        token = REHEARSING.set(True)
        try:
            assert Chat(trained_org).say("Where is order 4411?").metadata["action"] is None
            assert Chat(trained_org).say("How long do refunds take?").metadata["llm"] == "off"
        finally:
            REHEARSING.reset(token)
        assert len(shop.requests) == 1 and len(FakeChatCompletions.requests) == 1

        stored = [model.objects.count() for model in (Customer, Conversation, Message, SentimentRecord, Ticket)]
        audited = AuditEntry.objects.count()
        turns = sum(sample.value for metric in CHAT_TURNS.collect() for sample in metric.samples)
        caplog.clear()
        assistant_rehearse(organization_id=trained_org.pk)
    # Logs tell of no turn that never happened ("bot turn" lines are what operators count).
    assert not [r for r in caplog.records if r.getMessage().startswith("bot turn")]
    assert any(r.getMessage().startswith("rehearsed one chat turn") for r in caplog.records)
    assert [model.objects.count() for model in (Customer, Conversation, Message, SentimentRecord, Ticket)] == stored
    assert AuditEntry.objects.count() == audited
    assert sum(sample.value for metric in CHAT_TURNS.collect() for sample in metric.samples) == turns
    assert len(shop.requests) == 1 and len(FakeChatCompletions.requests) == 1
    assert not REHEARSING.get()
    assert audit_verify(organization=trained_org).problems == []


def test_the_rehearsed_turns_leave_their_statements_prepared_for_the_first_customer(trained_org):
    """A fresh worker's first customer runs the turn's statements prepared: the rehearsal runs
    the turn as many times as a statement runs before it is prepared, and its rollbacks keep
    them (psycopg forgets them at a rollback otherwise)."""
    from agents.services import assistant_rehearse
    from tests.support import prepared_statements, prepared_statements_forget

    prepared_statements_forget()
    assistant_rehearse(organization_id=trained_org.pk)
    kept = prepared_statements()
    # The conversation's lock, the message's insert and the reply's reads, each with PostgreSQL's
    # own placeholders.
    assert [sql for sql in kept if "FOR UPDATE" in sql and '"tickets_conversation"' in sql and "$1" in sql], kept
    assert [sql for sql in kept if sql.startswith('INSERT INTO "tickets_message"') and "$1" in sql], kept
    assert len([sql for sql in kept if sql.startswith("SELECT")]) >= 5, kept
    assert Message.objects.filter(conversation__customer__name="rehearsal").count() == 0
