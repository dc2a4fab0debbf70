"""Fuzzing: schemathesis against our OpenAPI schema (no 5xx, responses match the schema),
malformed websocket frames (always a clean error frame, nothing stored), and property tests
for the parsers that read untrusted input."""

import json
import string

import pytest
import schemathesis
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from agents.tokens import WidgetSession, widget_token_issue, widget_token_read
from config.asgi import application as asgi_application
from config.wsgi import application as wsgi_application
from knowledge.ingest import parse_front_matter
from monitoring.context import request_id_new
from monitoring.logs import mask_personal_data
from tenancy.models import StaffRole
from tests.agents.test_chat import ORIGIN
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import crypto, services
from tickets.limits import parse_rate
from tickets.models import Message

FUZZ = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture
def api_schema(db, org):
    admin = StaffFactory(organization=org, username="fuzz-admin", role=StaffRole.ADMIN)
    ticket = TicketFactory(customer=CustomerFactory(organization=org))
    services.conversation_start(customer=ticket.customer)
    client = APIClient()
    client.force_authenticate(admin)
    raw = client.get("/api/schema/?format=json").json()
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = wsgi_application
    schema.fuzz_token = Token.objects.create(user=admin).key  # type: ignore[attr-defined]
    # Requests go straight to the WSGI app, which would close the test's database connection
    # at the end of each request; Django's own test client switches that off the same way.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield schema
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@FUZZ
def test_api_never_fails_and_answers_as_documented(case, api_schema):
    case.call_and_validate(
        headers={"Authorization": f"Token {api_schema.fuzz_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )


FRAME_TYPES = {"ack", "message", "typing", "error", "csat"}
frames = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=10,
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "typing", "resume", "csat", "nope"])},
        optional={
            "id": st.one_of(st.text(max_size=80), st.integers()),
            "text": st.one_of(st.text(max_size=50), st.integers(), st.none()),
            "after": st.one_of(st.integers(), st.text(max_size=5), st.booleans()),
            "score": st.one_of(st.integers(-3, 9), st.text(max_size=3), st.booleans()),
        },
    ).map(json.dumps),
)


@pytest.mark.django_db(transaction=True)
@given(batch=st.lists(frames.filter(bool), min_size=1, max_size=5))
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_malformed_frames_get_error_frames_and_the_socket_survives(batch, org):
    customer = CustomerFactory(organization=org)
    conversation = services.conversation_start(customer=customer)
    token = widget_token_issue(WidgetSession(org.pk, customer.pk, conversation.pk))

    async def run():
        chat = WebsocketCommunicator(asgi_application, f"/ws/chat/?token={token}", headers=ORIGIN)
        assert (await chat.connect())[0]
        seen = 0
        for barriers, raw in enumerate(batch, start=1):
            await chat.send_to(text_data=raw)
            # The consumer handles a socket's frames one at a time, in order: once the barrier's
            # error comes back, every reply to the frame before it has been sent, a bot answer too.
            await chat.send_to(text_data=BARRIER)
            while seen < barriers:
                reply = well_formed(await chat.receive_from(timeout=10))
                seen += reply["type"] == "error" and reply["code"] == "unknown_type"
        while not await chat.receive_nothing(timeout=0.3):  # and anything later, through the channel layer
            well_formed(await chat.receive_from(timeout=5))
        # Still open and working: a valid frame is acknowledged.
        await chat.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
        await chat.receive_nothing(timeout=0.2)
        await chat.disconnect()

    async_to_sync(run)()
    stored = Message.objects.filter(conversation=conversation, role="customer").values_list(
        "client_message_id", flat=True
    )
    valid_ids = {
        frame["id"]
        for raw in batch
        for frame in [json.loads(raw) if raw.startswith("{") and _is_json(raw) else None]
        if isinstance(frame, dict) and frame.get("type") == "message" and isinstance(frame.get("id"), str)
        and isinstance(frame.get("text"), str) and frame["text"].strip() and 1 <= len(frame["id"]) <= 64
    }  # fmt: skip
    assert set(stored) <= valid_ids  # only well-formed messages were stored


BARRIER = json.dumps({"type": "barrier"})  # no such frame type: answered with one unknown_type error


def well_formed(raw: str) -> dict:
    """A frame from the server, checked: a JSON object of a known type; an error has a code and a message."""
    reply = json.loads(raw)
    assert isinstance(reply, dict) and reply.get("type") in FRAME_TYPES, reply
    if reply["type"] == "error":
        assert reply["code"] and reply["message"], reply
    return reply


def _is_json(raw: str) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


@given(st.text(max_size=600))
@settings(max_examples=200, deadline=None)
def test_widget_tokens_never_crash_and_never_grant_by_accident(raw):
    assert widget_token_read(raw) is None


@given(st.text(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_front_matter_parser_takes_any_text(text):
    meta, body = parse_front_matter(text)
    assert isinstance(meta, dict) and isinstance(body, str)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())


@given(title=st.text(alphabet=string.ascii_letters + " ", min_size=1, max_size=40).map(str.strip).filter(bool),
       body=st.text(max_size=200))  # fmt: skip
@settings(max_examples=100, deadline=None)
def test_front_matter_keeps_the_title(title, body):
    meta, _body = parse_front_matter(f"---\ntitle: {title}\n---\n{body}")
    assert meta["title"] == title


@given(st.text(max_size=50))
@settings(max_examples=300, deadline=None)
def test_rate_strings_parse_or_raise_value_error(raw):
    try:
        count, seconds = parse_rate(raw)
    except ValueError:
        return
    assert count >= 0 and seconds in (1, 60, 3600, 86400)


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_request_ids_from_headers_are_safe(raw):
    rid = request_id_new(raw)
    assert 1 <= len(rid) <= 64 and rid.isprintable() and '"' not in rid


@given(st.text(max_size=500))
@settings(max_examples=200, deadline=None)
def test_encryption_round_trips_any_text(text):
    stored = crypto.encrypt(text)
    assert crypto.decrypt(stored) == text
    # A short text can turn up in the base64 of a ciphertext by chance (a Fernet token even starts
    # with the same version and time bytes); a 16-character one verbatim means it was not encrypted.
    assert text == "" or (stored.startswith("fernet:") and (text not in stored or len(text) < 16))


@given(user=st.from_regex(r"[a-z][a-z0-9._]{1,20}", fullmatch=True),
       domain=st.from_regex(r"[a-z]{2,12}\.(com|org|io)", fullmatch=True))  # fmt: skip
@settings(max_examples=200, deadline=None)
def test_emails_never_reach_logs_whole(user, domain):
    masked = mask_personal_data(f"from {user}@{domain} today")
    assert f"{user}@{domain}" not in masked and domain in masked
