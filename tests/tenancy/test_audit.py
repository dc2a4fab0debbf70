"""The audit trail: staff actions and AI decisions are recorded, the chain holds under
concurrency, the database refuses edits, and audit_verify catches tampering."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client

from tenancy.audit import audit_record, audit_verify
from tenancy.models import AuditEntry
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services

pytestmark = pytest.mark.django_db(transaction=True)


def test_staff_actions_and_admin_edits_are_recorded(org, agent, admin_user, customer):
    ticket = TicketFactory(customer=customer, subject="Private subject")
    services.ticket_transition(ticket=ticket, to_status="in_progress", actor=agent)
    entry = AuditEntry.objects.filter(action="ticket.status").last()
    assert (entry.actor_label, entry.object_id, entry.data["after"]) == ("alice", str(ticket.pk), "in_progress")
    services.ticket_update(ticket=ticket, subject="Another private subject", actor=agent)
    subject = AuditEntry.objects.get(action="ticket.subject")
    assert "private" not in str(subject.data).lower()  # personal text stays out of the trail

    client = Client()
    client.force_login(admin_user)
    macro = services.macro_create(organization=org, name="Thanks", reply="Thanks!")
    form = {"organization": org.pk, "name": "Thanks a lot", "reply": "Thanks!", "set_status": "", "set_priority": "",
            "add_tags": ""}  # fmt: skip
    assert client.post(f"/admin/tickets/macro/{macro.pk}/change/", form).status_code == 302
    change = AuditEntry.objects.get(action="admin.change")
    assert (change.object_type, change.object_id, change.actor_label) == ("tickets.macro", str(macro.pk), "admin")
    assert audit_verify(organization=org).problems == []


def test_ai_decisions_are_recorded_with_model_and_sources(trained_org):
    from agents.services import assistant_reply

    conversation = services.conversation_start(customer=CustomerFactory(organization=trained_org))
    message, _ = services.message_create(conversation=conversation, role="customer", text="how do refunds work?")
    reply = assistant_reply(message_id=message.pk)
    entry = AuditEntry.objects.get(action="ai.decision")
    assert entry.actor_label == "assistant" and entry.object_id == str(reply.pk)
    assert entry.data["intent"] == reply.metadata["intent"] and entry.data["intent_model_version"]
    assert entry.data["sources"] and entry.data["sources"][0]["title"]
    assert "how do refunds work" not in str(entry.data).lower()  # the customer's words are not copied into it


def test_concurrent_appends_keep_one_unbroken_chain(org):
    errors = []

    def append(worker):
        try:
            for n in range(10):
                audit_record(organization_id=org.pk, action="test.append", actor=f"w{worker}", data={"n": n})
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(AuditEntry.objects.filter(organization=org).values_list("seq", flat=True)) == list(range(1, 41))
    assert audit_verify(organization=org).problems == []


def test_the_database_refuses_edits_and_verify_catches_tampering(org, capsys):
    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    for n in range(3):
        audit_record(organization_id=org.pk, action="test.append", data={"n": n})
    call_command("audit_verify", "--org", "acme")
    assert "acme: ok, 3 entries" in capsys.readouterr().out
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(seq=2).update(action="test.rewritten")
    # Someone with the table owner's rights switches the guard off and edits a row.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE tickets_auditentry DISABLE TRIGGER tickets_auditentry_append_only")
        cursor.execute("UPDATE tickets_auditentry SET data = '{\"n\": 99}' WHERE seq = 2")
        cursor.execute("ALTER TABLE tickets_auditentry ENABLE TRIGGER tickets_auditentry_append_only")
    with pytest.raises(CommandError, match="audit trail broken for: acme"):
        call_command("audit_verify", "--org", "acme")
    assert "(#2): content does not match its hash" in capsys.readouterr().out
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE tickets_auditentry DISABLE TRIGGER tickets_auditentry_append_only")
        cursor.execute("DELETE FROM tickets_auditentry WHERE seq = 2")
        cursor.execute("ALTER TABLE tickets_auditentry ENABLE TRIGGER tickets_auditentry_append_only")
    problems = audit_verify(organization=org).problems
    assert any("entries missing" in p for p in problems) and any("does not link" in p for p in problems)


def test_a_ticket_edit_commits_its_audit_entries_in_its_own_transaction(org, agent, customer):
    """The API's PATCH: the change, its timeline events and their audit entries in one
    transaction (one commit), the entries chained in the order the changes were made."""
    from django.test.utils import CaptureQueriesContext
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    ticket = TicketFactory(customer=customer, priority="low")
    api = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")
    with CaptureQueriesContext(connection) as captured:
        response = api.patch(f"/api/v1/tickets/{ticket.pk}/", {"priority": "high", "status": "pending"}, format="json")
    assert response.status_code == 200, response.content
    statements = [q["sql"] for q in captured.captured_queries]
    assert statements.count("COMMIT") == 1, statements
    # Both entries in one call (lock, last entry, inserts: concierge_audit_append), before it.
    appends = [n for n, sql in enumerate(statements) if "concierge_audit_append(" in sql]
    assert len(appends) == 1 and appends[0] < statements.index("COMMIT")
    chain = ('INSERT INTO "tickets_auditentry"', 'SELECT "tickets_auditentry"', 'SELECT "tickets_organization"')
    assert not [sql for sql in statements if sql.startswith(chain)]
    actions = AuditEntry.objects.filter(object_id=str(ticket.pk)).order_by("seq").values_list("action", flat=True)
    assert list(actions)[-2:] == ["ticket.priority", "ticket.status"]
    assert audit_verify(organization=org).problems == []


def test_a_refused_edit_leaves_no_entry_and_a_rolled_back_savepoint_drops_its_own(org, agent, customer):
    ticket = TicketFactory(customer=customer, priority="low")
    before = AuditEntry.objects.count()
    services.ticket_transition(ticket=ticket, to_status="closed", actor=agent)
    with pytest.raises(services.DomainError):  # a closed ticket cannot be changed: none of it is made
        services.ticket_edit(ticket=ticket, actor=agent, priority="high", status="open")
    assert AuditEntry.objects.count() == before + 1  # the close only

    other = TicketFactory(customer=customer, priority="low")
    with services.ticket_change():
        services.ticket_transition(ticket=other, to_status="in_progress", actor=agent)
        try:
            with transaction.atomic():
                services.ticket_update(ticket=other, priority="urgent", actor=agent)
                raise RuntimeError("undo the priority")
        except RuntimeError:
            pass
    actions = AuditEntry.objects.filter(object_id=str(other.pk)).values_list("action", flat=True)
    assert "ticket.priority" not in list(actions) and "ticket.status" in list(actions)
    assert audit_verify(organization=org).problems == []


def test_inside_a_longer_transaction_the_entries_wait_for_its_commit(org, agent, customer):
    ticket = TicketFactory(customer=customer)
    with transaction.atomic():
        services.ticket_transition(ticket=ticket, to_status="in_progress", actor=agent)
        assert not AuditEntry.objects.filter(action="ticket.status", object_id=str(ticket.pk)).exists()
    assert AuditEntry.objects.filter(action="ticket.status", object_id=str(ticket.pk)).exists()
    with pytest.raises(transaction.TransactionManagementError):
        services.ticket_edit(ticket=ticket, actor=agent, locked=True, priority="high")  # no transaction holds a lock


@pytest.mark.django_db
def test_entries_with_quotes_backslashes_and_braces_are_stored_as_given_and_chain(org, agent):
    """The entries reach the database as array literals of their own making: every character
    an array's text form treats specially comes back as it went in, and the chain verifies."""
    awkward = [
        'say "hi"',
        "C:\\path\\",
        "{a,b}",
        "NULL",
        "",
        "comma, and 'quote'",
        "naïve 雨 \U0001f600",
        'back\\"slash',
    ]
    for n, text in enumerate(awkward):
        actor = agent if n % 2 else "system"
        data = {"text": text, "list": [text, None], "n": n}
        audit_record(
            organization_id=org.pk, actor=actor, action=f"act.{n}", object_type="Thing", object_id=text, data=data
        )
    entries = list(AuditEntry.objects.filter(organization=org, action__startswith="act.").order_by("seq"))
    assert [e.object_id for e in entries] == awkward
    assert [e.data for e in entries] == [{"text": t, "list": [t, None], "n": n} for n, t in enumerate(awkward)]
    assert [e.actor_user_id for e in entries] == [None if n % 2 == 0 else agent.pk for n in range(len(awkward))]
    assert [e.actor_label for e in entries][:2] == ["system", entries[1].actor_label] and entries[1].actor_label
    assert audit_verify(organization=org).problems == []
