"""The widget on a company's own website: allowed origins (CORS and the websocket), the visitor's
session kept and refreshed, identity verified with the organization's secret, the pre-chat form."""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents.models import PrechatForm
from agents.widget import (
    identity_hash,
    origin_matches,
    origin_normalize,
    widget_origin_add,
    widget_settings,
)
from config.asgi import application
from config.errors import DomainError
from tests.agents.test_chat import joined
from tickets import services
from tickets.models import Conversation, Customer

SHOP = "https://shop.example.com"


def post_session(org, origin=None, **body):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return APIClient().post("/api/v1/widget/sessions", {"widget_key": org.widget_key, **body}, format="json", **headers)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("https://Shop.Example.com/", "https://shop.example.com"),
        ("http://localhost:8080", "http://localhost:8080"),
        ("https://*.example.com", "https://*.example.com"),
    ],
)
def test_origins_are_normalized(raw, normalized):
    assert origin_normalize(raw) == normalized


@pytest.mark.parametrize(
    "raw", ["shop.example.com", "ftp://shop.example.com", "https://shop.example.com/page", "https://*", "https://*.com",
            "https://a.*.example.com", "https://user@shop.example.com", ""],
)  # fmt: skip
def test_bad_origins_are_refused_with_a_reason(raw):
    with pytest.raises(DomainError, match=r"origin|port"):
        origin_normalize(raw)


def test_wildcards_cover_subdomains_only_with_the_same_scheme_and_port():
    rule = "https://*.example.com"
    assert origin_matches("https://shop.example.com", rule)
    assert origin_matches("https://a.b.example.com", rule)
    assert not origin_matches("https://example.com", rule)
    assert not origin_matches("https://evilexample.com", rule)
    assert not origin_matches("http://shop.example.com", rule)
    assert not origin_matches("https://shop.example.com:8443", rule)
    assert origin_matches("https://shop.example.com:8443", "https://*.example.com:8443")
    assert not origin_matches("https://shop.example.com.evil.net", rule)


@pytest.mark.django_db
def test_cors_answers_only_allowed_origins_and_only_on_widget_endpoints(org, api):
    widget_origin_add(organization=org, origin=SHOP)
    client = APIClient()
    preflight = {"HTTP_ORIGIN": SHOP, "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
                 "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "content-type"}  # fmt: skip
    allowed = client.options("/api/v1/widget/sessions", **preflight)
    assert allowed["Access-Control-Allow-Origin"] == SHOP
    assert "content-type" in allowed["Access-Control-Allow-Headers"]
    other = client.options("/api/v1/widget/sessions", **{**preflight, "HTTP_ORIGIN": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other
    # Staff endpoints never answer CORS, whatever the origin.
    staff = api.get("/api/v1/tickets/", HTTP_ORIGIN=SHOP)
    assert staff.status_code == 200 and "Access-Control-Allow-Origin" not in staff


@pytest.mark.django_db
def test_a_website_not_allowed_gets_a_clear_refusal_and_nothing_is_stored(org, other_org):
    widget_origin_add(organization=other_org, origin="https://evil.example.net")  # allowed elsewhere only
    customers = Customer.objects.count()
    refused = post_session(org, origin="https://evil.example.net", name="Eve", email="eve@example.net")
    assert refused.status_code == 403
    assert refused.json()["code"] == "origin_not_allowed" and "not allowed to embed" in refused.json()["detail"]
    assert Customer.objects.count() == customers and not Conversation.objects.filter(organization=org).exists()
    config = APIClient().get(f"/api/v1/widget/config?key={org.widget_key}", HTTP_ORIGIN="https://evil.example.net")
    assert config.status_code == 403

    widget_origin_add(organization=org, origin="https://*.example.com")
    ok = post_session(org, origin=SHOP)
    assert ok.status_code == 201 and ok["Access-Control-Allow-Origin"] == SHOP
    # Concierge's own pages (the demo site) are always allowed.
    assert post_session(org, origin="http://testserver").status_code == 201


@pytest.mark.django_db
def test_the_config_endpoint_gives_the_organizations_look_and_words(org):
    config = widget_settings(org)
    config.title, config.color, config.position, config.locale = "Help", "#aa3300", "left", "zh-hans"
    config.prechat = PrechatForm.OPTIONAL
    config.save()
    body = APIClient().get(f"/api/v1/widget/config?key={org.widget_key}").json()
    assert body["title"] == "Help" and body["color"] == "#aa3300" and body["position"] == "left"
    assert body["locale"] == "zh-hans" and body["prechat"] == "optional"
    assert APIClient().get("/api/v1/widget/config?key=nope").status_code == 400


@pytest.mark.django_db
def test_a_visitor_keeps_their_chat_with_their_token_and_a_new_one_after_it_ends(org, other_org):
    first = post_session(org).json()
    again = post_session(org, token=first["token"]).json()
    assert again["conversation_id"] == first["conversation_id"] and again["resumed"] is True
    assert again["token"] and again["expires_in"] > 0
    # Another company's widget never resumes it.
    elsewhere = post_session(other_org, token=first["token"]).json()
    assert elsewhere["conversation_id"] != first["conversation_id"] and elsewhere["resumed"] is False
    # An ended chat: the same visitor (customer) starts a new one.
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    services.conversation_end(conversation=conversation)
    after = post_session(org, token=first["token"]).json()
    assert after["conversation_id"] != first["conversation_id"]
    assert Conversation.objects.get(pk=after["conversation_id"]).customer_id == conversation.customer_id


@pytest.mark.django_db
def test_identity_with_the_right_hash_finds_the_user_on_any_device(org):
    secret = widget_settings(org).identity_secret
    identity = {"user_id": "u-42", "user_hash": identity_hash(secret, "u-42"), "email": "kim@example.com",
                "name": "Kim"}  # fmt: skip
    phone = post_session(org, identity=identity)
    assert phone.status_code == 201 and phone.json()["identified"] is True
    customer = Customer.objects.get(organization=org, external_id="u-42")
    assert customer.email == "kim@example.com" and customer.name == "Kim"
    laptop = post_session(org, identity=identity).json()  # no token: another device
    assert laptop["conversation_id"] == phone.json()["conversation_id"] and laptop["resumed"] is True


@pytest.mark.django_db
def test_a_forged_or_missing_identity_hash_is_refused_and_nothing_is_stored(org):
    customers = Customer.objects.count()
    forged = post_session(org, identity={"user_id": "u-42", "user_hash": identity_hash("guess", "u-42")})
    assert forged.status_code == 403 and forged.json()["code"] == "identity_refused"
    missing = post_session(org, identity={"user_id": "u-42"})
    assert missing.status_code == 400 and "user_hash" in missing.json()["identity"]
    assert Customer.objects.count() == customers


@pytest.mark.django_db
def test_a_required_prechat_form_needs_name_and_email(org):
    config = widget_settings(org)
    config.prechat = PrechatForm.REQUIRED
    config.save()
    refused = post_session(org, name="Maya")
    assert refused.status_code == 400 and "name and email" in refused.json()["detail"]
    ok = post_session(org, name="Maya", email="maya@example.com")
    assert ok.status_code == 201
    assert Conversation.objects.get(pk=ok.json()["conversation_id"]).customer.email == "maya@example.com"


@pytest.mark.django_db
def test_widget_origins_command_adds_lists_and_removes(org, capsys):
    call_command("widget_origins", "--org", org.slug, "--add", "https://Shop.example.com/")
    call_command("widget_origins", "--org", org.slug, "--add", "https://*.example.org")
    call_command("widget_origins", "--org", org.slug, "--list")
    assert capsys.readouterr().out.splitlines()[-2:] == ["https://*.example.org", "https://shop.example.com"]
    call_command("widget_origins", "--org", org.slug, "--remove", "https://shop.example.com")
    with pytest.raises(CommandError, match="not an origin"):
        call_command("widget_origins", "--org", org.slug, "--add", "shop.example.com")
    with pytest.raises(CommandError, match="not in the list"):
        call_command("widget_origins", "--org", org.slug, "--remove", "https://shop.example.com")
    call_command("widget_origins", "--org", org.slug, "--list")
    assert capsys.readouterr().out.splitlines()[-1] == "https://*.example.org"


async def _open(token, origin):
    communicator = WebsocketCommunicator(application, f"/ws/chat/?token={token}", headers=[(b"origin", origin)])
    connected, _ = await communicator.connect()
    return communicator, connected


@pytest.mark.django_db(transaction=True)
async def test_the_chat_websocket_refuses_websites_the_organization_does_not_allow(org):
    await database_sync_to_async(widget_origin_add)(organization=org, origin=SHOP)
    session = (await database_sync_to_async(post_session)(org)).json()

    refused, _ = await _open(session["token"], b"https://evil.example.net")
    frame = json.loads(await refused.receive_from(timeout=10))
    assert frame["type"] == "error" and frame["code"] == "origin_not_allowed"
    assert (await refused.receive_output(timeout=10))["code"] == 4403

    allowed, connected = await _open(session["token"], SHOP.encode())
    assert connected
    await allowed.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    assert await allowed.receive_nothing(timeout=0.5)  # no error frame: the chat is open
    await allowed.disconnect()

    # The staff console keeps the same-host check.
    console = WebsocketCommunicator(application, "/ws/console/", headers=[(b"origin", SHOP.encode())])
    connected, _ = await console.connect()
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_typing_frames_are_passed_on_at_most_once_per_two_seconds(org):
    session = (await database_sync_to_async(post_session)(org)).json()
    typist, connected = await _open(session["token"], b"http://testserver")
    assert connected
    other_tab, connected = await _open(session["token"], b"http://testserver")  # sees the typing
    assert connected
    await joined(other_tab)  # accepted before it joins the conversation's group: wait until it has
    for _ in range(5):
        await typist.send_to(text_data=json.dumps({"type": "typing"}))
    frames = []
    while not await other_tab.receive_nothing(timeout=1.5):
        frames.append(json.loads(await other_tab.receive_from()))
    assert [frame["type"] for frame in frames] == ["typing"]
    await typist.disconnect()
    await other_tab.disconnect()


@pytest.mark.django_db
def test_an_admin_sets_the_widget_and_its_websites_in_admin(org, client):
    from tests.tenancy.factories import StaffFactory

    admin_user = StaffFactory(organization=org, role="admin")
    client.force_login(admin_user)
    form = {
        "title": "Help",
        "greeting": "Hi! Ask us anything.",
        "color": "#aa3300",
        "position": "left",
        "locale": "",
        "prechat": "optional",
        "origins-TOTAL_FORMS": "2",
        "origins-INITIAL_FORMS": "0",
        "origins-0-origin": "https://Shop.Example.com/",
        "origins-1-origin": "shop.example.com",
    }
    bad = client.post("/admin/agents/widgetsettings/add/", form)
    assert bad.status_code == 200 and "is not an origin" in bad.content.decode()
    form["origins-1-origin"] = "https://*.example.org"
    saved = client.post("/admin/agents/widgetsettings/add/", form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    config = widget_settings(org)
    assert config.title == "Help" and config.prechat == "optional"
    assert sorted(config.origins.values_list("origin", flat=True)) == [
        "https://*.example.org",
        "https://shop.example.com",
    ]
    page = client.get(f"/admin/agents/widgetsettings/{config.pk}/change/").content.decode()
    assert org.widget_key in page and "widget.js" in page  # the snippet to paste


@pytest.mark.django_db(transaction=True)
async def test_a_waiting_customer_sees_their_place_and_can_leave_an_email(org):
    session = (await database_sync_to_async(post_session)(org)).json()
    conversation = await database_sync_to_async(Conversation.objects.get)(pk=session["conversation_id"])
    await database_sync_to_async(services.conversation_escalate)(conversation=conversation, reason="asked for a human")
    chat, connected = await _open(session["token"], b"http://testserver")
    assert connected
    await chat.send_to(text_data=json.dumps({"type": "resume", "after": 0}))
    frames = []
    while not await chat.receive_nothing(timeout=1):
        frames.append(json.loads(await chat.receive_from()))
    queue = [frame for frame in frames if frame["type"] == "queue"]
    assert queue and queue[0]["position"] == 1 and queue[0]["email_known"] is False

    await chat.send_to(text_data=json.dumps({"type": "contact", "email": "not an email"}))
    assert json.loads(await chat.receive_from())["code"] == "invalid"
    await chat.send_to(text_data=json.dumps({"type": "contact", "email": "Maya@Example.com"}))
    assert json.loads(await chat.receive_from()) == {"type": "contact", "status": "saved"}
    customer = await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation.pk).customer)()
    assert customer.email == "maya@example.com"
    await chat.disconnect()


@pytest.mark.parametrize(
    ("origin", "host", "own"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://127.0.0.1:9000", "127.0.0.1:8000", False),  # another port is another website
        ("https://support.example.com", "support.example.com", True),  # a proxy passing $host
        ("https://support.example.com:8443", "support.example.com", True),
        ("https://support.example.com", "support.example.com:443", True),
        ("https://evil.example.net", "support.example.com", False),
        ("null", "support.example.com", False),
    ],
)
def test_own_pages_are_recognised_by_host_and_port(origin, host, own):
    from agents.widget import origin_is_own

    assert origin_is_own(origin, host) is own
