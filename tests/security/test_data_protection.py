"""Personal data: encrypted at rest (and key rotation), masked in logs, exported and erased
on request through the command line and admin."""

import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from monitoring.logs import JsonFormatter, mask_personal_data
from tenancy.models import AuditEntry
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Conversation, Customer, Message, Ticket, TicketNote
from tickets.search import desk_search
from tickets.selectors import customer_by_email

pytestmark = pytest.mark.django_db


def raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608 (fixed names)
        return cursor.fetchone()[0]


def test_email_phone_and_messages_are_encrypted_at_rest(org):
    customer = services.customer_create(organization=org, name="Ana", email="Ana@Example.com", phone="+44 20 7946 0958")
    conversation = services.conversation_start(customer=customer)
    message, _ = services.message_create(conversation=conversation, role="customer", text="my card ends 4242")
    for table, column, pk, clear in (
        ("tickets_customer", "email", customer.pk, "Ana@Example.com"),
        ("tickets_customer", "phone", customer.pk, "7946"),
        ("tickets_message", "text", message.pk, "4242"),
    ):
        stored = raw(table, column, pk)
        assert stored.startswith("fernet:") and clear not in stored
    reread = Customer.objects.get(pk=customer.pk)
    assert (reread.email, reread.phone) == ("Ana@Example.com", "+44 20 7946 0958")
    assert Message.objects.get(pk=message.pk).text == "my card ends 4242"
    assert customer_by_email(organization=org, email=" ana@example.COM ") == customer  # exact, via the hash
    assert customer_by_email(organization=org, email="ana@example.org") is None


def test_keys_rotate_without_losing_data(settings, org, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    customer = services.customer_create(organization=org, email="rot@example.com")
    message, _ = services.message_create(
        conversation=services.conversation_start(customer=customer), role="customer", text="rotate me"
    )
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"  # new key first, old one still readable
    assert Message.objects.get(pk=message.pk).text == "rotate me"
    call_command("encryption_rotate")
    assert "re-encrypted" in capsys.readouterr().out
    settings.FIELD_ENCRYPTION_KEY = new  # the old key is gone: everything still reads
    assert Message.objects.get(pk=message.pk).text == "rotate me"
    assert customer_by_email(organization=org, email="rot@example.com") == customer
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()  # a wrong key fails loudly
    with pytest.raises(ValueError, match="cannot be decrypted"):
        Message.objects.get(pk=message.pk)


def test_texts_read_lately_are_not_decrypted_again_and_only_short_ones_are_kept(monkeypatch):
    from tickets import crypto

    calls = []
    cipher = crypto.cipher()
    decrypt = cipher.decrypt
    monkeypatch.setattr(cipher, "decrypt", lambda token: calls.append(token) or decrypt(token))
    stored = crypto.encrypt("when will I get my refund?")
    assert crypto.decrypt(stored) == "when will I get my refund?" and calls == []  # kept as it was written
    crypto._recent.clear()
    assert [crypto.decrypt(stored), crypto.decrypt(stored)] == ["when will I get my refund?"] * 2
    assert len(calls) == 1
    long = crypto.encrypt("x" * 2000)
    assert [crypto.decrypt(long), crypto.decrypt(long)] == ["x" * 2000] * 2 and len(calls) == 3  # never kept
    monkeypatch.setattr(crypto._Recent, "SIZE", 3)
    for n in range(5):
        crypto.encrypt(f"text {n}")
    assert len(crypto._recent.texts) == 3


def test_a_malformed_key_is_a_startup_error(settings):
    settings.FIELD_ENCRYPTION_KEY = "not-a-key"
    assert "concierge.E001" in [e.id for e in run_checks()]


def test_personal_data_is_masked_in_logs():
    assert mask_personal_data("mail maya.lopez@example.com now") == "mail m***@example.com now"
    assert mask_personal_data("call +44 20 7946 0958 or card 4111 1111 1111 1111") == "call [number] or card [number]"
    assert mask_personal_data("ticket #42 at 10:30 on 2026-11-24") == "ticket #42 at 10:30 on 2026-11-24"
    record = logging.LogRecord("x", logging.INFO, "", 0, "customer %s wrote", ("bob@example.org",), None)
    assert "bob@" not in json.loads(JsonFormatter().format(record))["message"]


@pytest.fixture
def history(org, agent):
    customer = CustomerFactory(organization=org, name="Rosa Diaz", email="rosa@example.com", phone="555 0100 200")
    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="my parcel zebracorn never came")
    services.message_create(conversation=conversation, role="bot", text="Sorry to hear that.")
    ticket = TicketFactory(customer=customer, conversation=conversation, subject="Rosa's zebracorn parcel")
    services.ticket_note_add(ticket=ticket, author=agent, body="Rosa called twice about it")
    services.ticket_transition(ticket=ticket, to_status="resolved", actor=agent)
    services.ticket_csat_record(ticket=Ticket.objects.get(pk=ticket.pk), score=2, comment="slow, Rosa")
    return customer


def test_export_has_everything_and_is_audited(history, capsys):
    call_command("customer_export", "--org", "acme", "--email", "ROSA@example.com")
    data = json.loads(capsys.readouterr().out)
    assert data["customer"]["email"] == "rosa@example.com" and data["customer"]["phone"] == "555 0100 200"
    [conversation] = data["conversations"]
    assert [m["text"] for m in conversation["messages"]] == ["my parcel zebracorn never came", "Sorry to hear that."]
    [ticket] = data["tickets"]
    assert ticket["rating"] == 2 and ticket["notes"][0]["body"] == "Rosa called twice about it"
    entry = AuditEntry.objects.get(action="customer.export")
    assert entry.object_id == str(history.pk) and entry.actor_label == "command line"
    with pytest.raises(CommandError, match="no such customer"):
        call_command("customer_export", "--org", "acme", "--email", "nobody@example.com")


def test_erase_removes_personal_data_and_keeps_the_desk_figures(history, org, capsys):
    with pytest.raises(CommandError, match="--yes"):
        call_command("customer_erase", "--org", "acme", "--id", str(history.pk))
    assert Message.objects.filter(conversation__customer=history).count() == 2  # nothing happened
    call_command("customer_erase", "--org", "acme", "--id", str(history.pk), "--yes")
    assert "2 message(s)" in capsys.readouterr().out
    customer = Customer.objects.get(pk=history.pk)
    assert (customer.name, customer.email, customer.phone, customer.email_hash) == (
        f"Erased customer {history.pk}",
        "",
        "",
        "",
    )
    assert customer.erased_at is not None
    assert not Conversation.objects.filter(customer=customer).exists()
    assert not TicketNote.objects.filter(ticket__customer=customer).exists()
    ticket = Ticket.objects.get(customer=customer)
    assert (ticket.subject, ticket.status, ticket.csat_score, ticket.csat_comment) == (
        "[erased on request]",
        "resolved",
        2,
        "",
    )
    assert customer_by_email(organization=org, email="rosa@example.com") is None
    assert desk_search(organization=org, query="zebracorn") == []
    entry = AuditEntry.objects.get(action="customer.erase")
    assert entry.data == {"conversations": 1, "messages": 2, "tickets_scrubbed": 1, "notes": 1}
    assert "rosa" not in json.dumps(entry.data).lower()


def test_admin_exports_and_erases_with_a_confirmation(history, admin_user):
    client = Client()
    client.force_login(admin_user)
    exported = client.post(
        "/admin/tickets/customer/", {"action": "export_personal_data", "_selected_action": [history.pk]}
    )
    assert exported["Content-Type"] == "application/json"
    assert json.loads(exported.content)[0]["customer"]["email"] == "rosa@example.com"
    asked = client.post("/admin/tickets/customer/", {"action": "erase_personal_data", "_selected_action": [history.pk]})
    assert asked.status_code == 200 and "cannot be undone" in asked.content.decode()
    assert Customer.objects.get(pk=history.pk).erased_at is None  # only asked so far
    done = client.post(
        "/admin/tickets/customer/",
        {"action": "erase_personal_data", "_selected_action": [history.pk], "confirmed": "yes"},
    )
    assert done.status_code == 302 and Customer.objects.get(pk=history.pk).erased_at is not None


def test_admin_finds_a_customer_by_exact_email(history, admin_user):
    client = Client()
    client.force_login(admin_user)
    page = client.get("/admin/tickets/customer/", {"q": "Rosa@Example.com"})
    assert "Rosa Diaz" in page.content.decode()
