import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from knowledge.models import Article
from tenancy.models import Organization
from tickets.models import Customer, Ticket, TicketStatus

pytestmark = pytest.mark.django_db


def test_bootstrap_demo_builds_a_workable_company_and_is_idempotent(capsys):
    call_command("bootstrap_demo")
    out = capsys.readouterr().out
    assert "concierge-admin" in out and "concierge-agent" in out
    org = Organization.objects.get(slug="trailhead")
    counts = (Ticket.objects.count(), Customer.objects.count(), Article.objects.count())
    assert set(Ticket.objects.filter(organization=org).values_list("status", flat=True)) == set(TicketStatus.values)
    assert Customer.objects.filter(organization=org).exclude(vip_tier="none").count() >= 3
    assert Article.objects.filter(organization=org, status="published").count() >= 8
    assert Organization.objects.count() == 2  # a second tenant, to see isolation

    call_command("bootstrap_demo")
    assert (Ticket.objects.count(), Customer.objects.count(), Article.objects.count()) == counts
    # The printed credentials work.
    for username, password in (("admin", "concierge-admin"), ("agent", "concierge-agent")):
        user = authenticate(RequestFactory().post("/admin/login/"), username=username, password=password)
        assert user is not None and user.is_staff and user.staff_profile.organization == org
    agent = authenticate(RequestFactory().post("/admin/login/"), username="agent", password="concierge-agent")
    assert agent.has_perm("tickets.change_ticket") and not agent.has_perm("tickets.add_macro")


def test_demo_site_embeds_the_widget_key(client):
    call_command("bootstrap_demo")
    org = Organization.objects.get(slug="trailhead")
    response = client.get("/")
    assert response.status_code == 200
    assert f'data-widget-key="{org.widget_key}"'.encode() in response.content


def test_health_and_readiness(client):
    assert client.get("/healthz").json()["status"] == "ok"  # the version is checked in test_contribution_kit
    report = client.get("/readyz").json()
    assert report["ready"] is True
    assert report["checks"]["database"]["ok"] and report["checks"]["cache"]["ok"]


@pytest.mark.django_db(transaction=True)
def test_the_demo_s_order_action_calls_the_demo_s_own_order_endpoint(live_server, settings, client):
    import uuid

    from agents.actions.models import AssistantAction
    from agents.services import assistant_reply, customer_message_receive
    from tickets.models import Conversation

    settings.CONCIERGE_PUBLIC_URL = live_server.url
    call_command("bootstrap_demo")
    org = Organization.objects.get(slug="trailhead")
    action = AssistantAction.objects.get(organization=org, name="order_status")
    assert action.url == f"{live_server.url}/demo/api/orders/{{order}}"
    # The endpoint wants the action's own token.
    assert client.get("/demo/api/orders/4411").status_code == 401
    headers = {"Authorization": f"Bearer {action.auth_secret}"}
    assert client.get("/demo/api/orders/4411", headers=headers).json()["status"] == "shipped"
    assert client.get("/demo/api/orders/1", headers=headers).status_code == 404

    customer = Customer.objects.filter(organization=org).first()
    conversation = Conversation.objects.create(organization=org, customer=customer)
    replies = []
    for text in ("where is my order?", "4411"):
        received = customer_message_receive(
            conversation_id=conversation.pk, organization_id=org.pk, text=text, client_message_id=str(uuid.uuid4())
        )
        replies.append(assistant_reply(message_id=received.message.pk))
    assert replies[0].metadata["action"]["status"] == "needs_input"
    assert replies[1].text.startswith("Order 4411 is shipped (UPS); delivery on ")
