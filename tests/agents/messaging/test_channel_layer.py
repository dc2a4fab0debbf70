"""What every messaging channel shares: accounts set up in admin (credentials encrypted, the
webhook URL to copy), switched-off accounts, one customer per person and staff merging two,
the per-account send rate, reports and /metrics split by channel, and channel_inject."""

import json
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from agents.messaging.adapters import Inbound
from agents.messaging.inbound import messaging_receive
from agents.messaging.models import DeliveryStatus, MessagingAccount, MessagingRecord
from agents.messaging.outbound import MessagingSendDeferred, messaging_record_send
from tenancy.models import AuditEntry, StaffRole
from tests.agents.messaging.conftest import account_make, webhook_path
from tests.tenancy.factories import OrganizationFactory, StaffFactory
from tests.tickets.factories import CustomerFactory
from tickets import services
from tickets.models import Channel, Conversation, Customer, Ticket
from tickets.reports import report_build

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_user(org):
    return StaffFactory(organization=org, username="boss", role=StaffRole.ADMIN)


def test_an_admin_sets_up_an_account_whose_secrets_are_kept_encrypted(client, org, admin_user):
    client.force_login(admin_user)
    form = {"provider": "telegram", "name": "Acme bot", "sender_id": "", "language": "en", "greeting": "",
            "active": "on", "assistant_answers": "on", "bot_token": "123:SECRET-BOT-TOKEN"}  # fmt: skip
    response = client.post("/admin/agents/messagingaccount/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    account = MessagingAccount.objects.get()
    assert account.organization == org and account.secret("bot_token") == "123:SECRET-BOT-TOKEN"
    made = account.secret("webhook_secret")
    assert re.fullmatch(r"[\w-]{20,}", made)  # generated: Telegram's allowed characters
    with connection.cursor() as cursor:
        cursor.execute("SELECT credentials FROM agents_messagingaccount WHERE id = %s", [account.pk])
        raw = cursor.fetchone()[0]
    assert "SECRET-BOT-TOKEN" not in raw and made not in raw

    page = client.get(f"/admin/agents/messagingaccount/{account.pk}/change/").content.decode()
    assert f"https://desk.acme.example{webhook_path(account)}" in page
    assert "SECRET-BOT-TOKEN" not in page and made not in page  # never shown again

    # Editing with the secrets left blank keeps them; a missing one is named.
    response = client.post(
        f"/admin/agents/messagingaccount/{account.pk}/change/", {**form, "bot_token": "", "name": "Renamed"}
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.name == "Renamed" and account.secret("bot_token") == "123:SECRET-BOT-TOKEN"
    refused = client.post("/admin/agents/messagingaccount/add/", {**form, "provider": "sms", "bot_token": ""})
    assert refused.status_code == 200 and "Missing: Account SID; Auth token." in refused.content.decode()
    entries = AuditEntry.objects.filter(action="messaging.account_saved")
    assert entries.count() == 2 and "SECRET" not in json.dumps(list(entries.values_list("data", flat=True)))


def test_agents_cannot_see_accounts_and_another_organizations_key_finds_nothing(client, org, agent, other_org):
    theirs = account_make(other_org, "telegram", bot_token="1:x")
    client.force_login(agent)
    assert client.get("/admin/agents/messagingaccount/").status_code == 403
    theirs.active = False
    theirs.save()
    refused = client.post(webhook_path(theirs), data="{}", content_type="application/json")
    assert refused.status_code == 403 and "switched off" in refused.json()["message"]


def test_one_person_is_one_customer_and_staff_merge_two(client, org, supervisor):
    telegram = account_make(org, "telegram", bot_token="1:x")
    api = account_make(org, "api", secret="s", webhook_url="https://app.example/hook")
    first = messaging_receive(account=telegram, inbound=Inbound("1", "4242", "hi from telegram", display_name="Kim"))
    again = messaging_receive(account=telegram, inbound=Inbound("2", "4242", "still me"))
    assert first.conversation_id == again.conversation_id
    # Telegram proves no phone or email: a chat in the widget by the same person is another customer until merged.
    widget_kim = CustomerFactory(organization=org, name="Kim Lee", email="kim@example.com", external_id="kim-1")
    services.conversation_start(customer=widget_kim, channel=Channel.WEB)
    ticket = services.conversation_escalate(conversation=Conversation.objects.get(pk=first.conversation_id), reason="x")
    # The company's app vouches for the email: that is the widget's Kim.
    by_email = messaging_receive(account=api, inbound=Inbound("m1", "u-1", "from the app", email="kim@example.com"))
    assert Conversation.objects.get(pk=by_email.conversation_id).customer == widget_kim

    client.force_login(supervisor)
    telegram_kim = Customer.objects.get(name="Kim")
    page = client.get(f"/admin/tickets/customer/{widget_kim.pk}/change/").content.decode()
    assert "API channel (your own app): <code>u-1</code>" in page
    response = client.post(
        "/admin/tickets/customer/",
        {"action": "merge_into_oldest", "_selected_action": [telegram_kim.pk, widget_kim.pk]},
    )
    assert response.status_code == 302
    assert not Customer.objects.filter(pk=widget_kim.pk).exists()  # the later one went into the oldest
    survivor = Customer.objects.get()
    # The oldest keeps what it has and takes what it lacked: the email, the external id.
    assert survivor.pk == telegram_kim.pk and survivor.name == "Kim"
    assert survivor.email == "kim@example.com" and survivor.external_id == "kim-1"
    assert set(survivor.channel_identities.values_list("provider", flat=True)) == {"telegram", "api"}
    assert Conversation.objects.filter(customer=survivor).count() == 3
    assert Ticket.objects.get(pk=ticket.pk).customer == survivor
    entry = AuditEntry.objects.get(action="customer.merged")
    assert entry.data["merged"] == widget_kim.pk and entry.data["moved"]["conversation"] == 2
    # The merged customer is found on either channel afterwards.
    later = messaging_receive(account=telegram, inbound=Inbound("3", "4242", "back again"))
    assert Conversation.objects.get(pk=later.conversation_id).customer == survivor

    with pytest.raises(services.DomainError, match="itself"):
        services.customer_merge(source=survivor, target=survivor)
    stranger = CustomerFactory(organization=OrganizationFactory())
    with pytest.raises(services.DomainError, match="different organizations"):
        services.customer_merge(source=stranger, target=survivor)


def test_the_send_rate_per_account_holds_a_burst_back(org, settings):
    settings.CONCIERGE_RATE_LIMITS = {**settings.CONCIERGE_RATE_LIMITS, "messaging_send": "1/min"}
    api = account_make(org, "api", secret="s", webhook_url="http://127.0.0.1:9/unused")
    received = messaging_receive(account=api, inbound=Inbound("r1", "u-9", "hi"))
    ticket = services.conversation_escalate(
        conversation=Conversation.objects.get(pk=received.conversation_id), reason="x"
    )
    first = services.ticket_reply(ticket=ticket, author=None, text="one")
    second = services.ticket_reply(ticket=ticket, author=None, text="two")
    records = [MessagingRecord.objects.get(message=m) for m in (first, second)]
    with pytest.raises(MessagingSendDeferred, match="did not answer"):  # the minute's one send (nothing listens)
        messaging_record_send(record_id=records[0].pk)
    with pytest.raises(MessagingSendDeferred, match="more than 1/min"):
        messaging_record_send(record_id=records[1].pk)
    records[1].refresh_from_db()
    assert records[1].status == DeliveryStatus.QUEUED and records[1].attempts == 0


def test_reports_and_metrics_split_by_channel(client, org, eager, settings):
    settings.CONCIERGE_TELEGRAM_API_URL = "http://127.0.0.1:9"  # nothing listens: the reply fails
    settings.CONCIERGE_MESSAGING_SEND_ATTEMPTS = 1
    telegram = account_make(org, "telegram", bot_token="1:x")
    account_make(org, "sms", "+15005550006", account_sid="AC1", auth_token="t")
    messaging_receive(account=telegram, inbound=Inbound("1", "4242", "hi"))
    report = report_build(organization=org, period="day", start=timezone.localdate())
    assert report["conversations"]["by_channel"] == {"telegram": 1}
    metrics = client.get("/metrics").content.decode()
    found = dict(re.findall(r'concierge_channel_messages_total\{channel="telegram",direction="(\w+)"\} (\S+)', metrics))
    assert float(found["inbound"]) >= 1 and float(found["failed"]) >= 1
    assert 'concierge_channel_messages_total{channel="wechat",direction="outbound"}' in metrics


def test_channel_inject_tries_a_channel_without_a_provider(trained_org, capsys):
    call_command("channel_inject", "telegram", "How long do refunds take?", "--org", trained_org.slug)
    out = capsys.readouterr().out
    assert "would send to 100200300 through Telegram bot" in out and "Returns and refunds" in out
    account = MessagingAccount.objects.get()
    assert account.try_out and account.organization == trained_org
    call_command("channel_inject", "telegram", "I want to talk to a human", "--org", trained_org.slug)
    assert "handed to people: ticket #" in capsys.readouterr().out
    # An agent answering a try-out conversation from admin: logged, never sent to a provider.
    ticket = Ticket.objects.get()
    reply = services.ticket_reply(ticket=ticket, author=None, text="Alice here")
    record = MessagingRecord.objects.get(message=reply)
    assert messaging_record_send(record_id=record.pk) == DeliveryStatus.SENT

    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No organization"):
        call_command("channel_inject", "sms", "hi", "--org", "no-such-org")


def test_two_first_messages_of_a_new_person_at_once_make_one_customer(org):
    import threading

    from django.db import connection as default_connection

    telegram = account_make(org, "telegram", bot_token="1:x")
    barrier, outcomes = threading.Barrier(4), []

    def deliver(update_id: str) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(messaging_receive(account=telegram, inbound=Inbound(update_id, "777", "hello")).outcome)
        finally:
            default_connection.close()

    threads = [threading.Thread(target=deliver, args=(str(n),)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["received"] * 4
    assert Customer.objects.count() == 1 and Customer.objects.get().channel_identities.count() == 1
    assert MessagingRecord.objects.filter(direction="in").count() == 4
