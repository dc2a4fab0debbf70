import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config.errors import DomainError
from tenancy.services import staff_role_set
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Conversation, Macro, Message, SlaPolicy, Ticket, TicketEvent, TicketNote
from tickets.selectors import SlaState, sla_at_risk_q, sla_breached_q, ticket_sla_state

pytestmark = pytest.mark.django_db


# --- state machine ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ["in_progress", "pending", "in_progress", "resolved", "closed"],
        ["pending", "open", "resolved", "open", "in_progress", "closed"],
        ["resolved", "closed"],
    ],
)
def test_allowed_transitions_follow_path_and_write_events(ticket, agent, path):
    for status in path:
        ticket = services.ticket_transition(ticket=ticket, to_status=status, actor=agent)
        assert Ticket.objects.get(pk=ticket.pk).status == status
    events = list(ticket.events.filter(kind=TicketEvent.Kind.STATUS).order_by("id"))
    assert [e.after for e in events] == path
    assert events[0].before == "open"
    assert all(e.actor == agent for e in events)


@pytest.mark.parametrize(
    "setup,illegal",
    [(["closed"], "open"), (["resolved"], "pending"), (["resolved", "closed"], "in_progress"), ([], "bogus")],
)
def test_illegal_transition_raises_and_changes_nothing(ticket, setup, illegal):
    for status in setup:
        ticket = services.ticket_transition(ticket=ticket, to_status=status)
    events_before = ticket.events.count()
    with pytest.raises(DomainError) as excinfo:
        services.ticket_transition(ticket=ticket, to_status=illegal)
    assert illegal in str(excinfo.value)
    ticket.refresh_from_db()
    assert ticket.status == (setup[-1] if setup else "open")
    assert ticket.events.count() == events_before


def test_resolve_and_close_stamp_times_and_reopen_clears_resolution(ticket):
    ticket = services.ticket_transition(ticket=ticket, to_status="resolved")
    assert ticket.resolved_at is not None
    ticket = services.ticket_transition(ticket=ticket, to_status="open")
    assert ticket.resolved_at is None
    ticket = services.ticket_transition(ticket=ticket, to_status="closed")
    assert ticket.closed_at is not None and ticket.resolved_at is not None


def test_creation_writes_created_event_and_rejects_foreign_customer(org, other_org):
    foreign = CustomerFactory(organization=other_org)
    with pytest.raises(DomainError, match="another organization"):
        services.ticket_create(organization=org, customer=foreign, subject="x")
    assert not Ticket.objects.exists()
    ticket = TicketFactory(customer=CustomerFactory(organization=org))
    assert list(ticket.events.values_list("kind", flat=True)) == ["created"]


# --- SLA clock -------------------------------------------------------------------------


def test_sla_targets_come_from_defaults_scaled_by_vip_tier(org):
    regular = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    platinum = TicketFactory(customer=CustomerFactory(organization=org, vip_tier="platinum"), priority="high")
    assert regular.first_response_due - regular.created_at == timedelta(minutes=60)
    assert regular.resolution_due - regular.created_at == timedelta(hours=8)
    assert platinum.first_response_due - platinum.created_at == timedelta(minutes=30)
    assert platinum.resolution_due - platinum.created_at == timedelta(hours=4)


def test_organization_policy_for_exact_tier_wins(org):
    SlaPolicy.objects.create(organization=org, priority="low", first_response_minutes=100, resolution_minutes=1000)
    SlaPolicy.objects.create(
        organization=org, priority="low", vip_tier="gold", first_response_minutes=7, resolution_minutes=70
    )
    plain = TicketFactory(customer=CustomerFactory(organization=org), priority="low")
    gold = TicketFactory(customer=CustomerFactory(organization=org, vip_tier="gold"), priority="low")
    silver = TicketFactory(customer=CustomerFactory(organization=org, vip_tier="silver"), priority="low")
    assert plain.first_response_due - plain.created_at == timedelta(minutes=100)
    assert gold.first_response_due - gold.created_at == timedelta(minutes=7)
    assert silver.first_response_due - silver.created_at == timedelta(minutes=90)  # 100 x 0.9


def test_pending_pauses_the_clock(ticket):
    due_before = ticket.resolution_due
    first_due_before = ticket.first_response_due
    ticket = services.ticket_transition(ticket=ticket, to_status="pending")
    assert ticket.sla_paused_at is not None
    assert ticket_sla_state(ticket) == SlaState.PAUSED
    # Two hours pass while we wait on the customer.
    Ticket.objects.filter(pk=ticket.pk).update(sla_paused_at=ticket.sla_paused_at - timedelta(hours=2))
    ticket = services.ticket_transition(ticket=ticket, to_status="in_progress")
    assert ticket.sla_paused_at is None
    assert ticket.sla_paused_seconds == pytest.approx(7200, abs=5)
    assert ticket.resolution_due - due_before == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=5))
    assert ticket.first_response_due - first_due_before == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=5))


def test_priority_change_resets_targets_keeping_paused_time(ticket, agent):
    Ticket.objects.filter(pk=ticket.pk).update(sla_paused_seconds=600)
    ticket = services.ticket_update(ticket=ticket, priority="urgent", actor=agent)
    assert ticket.first_response_due - ticket.created_at == timedelta(minutes=15, seconds=600)
    event = ticket.events.get(kind="priority")
    assert (event.before, event.after, event.actor) == ("medium", "urgent", agent)


def test_breached_and_at_risk_states_match_queryset_filters(org):
    fresh = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    risky = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    late = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    paused_late = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    now = timezone.now()
    # Move creation into the past and recompute due dates from it.
    for ticket, minutes_ago in ((risky, 50), (late, 70), (paused_late, 70)):
        Ticket.objects.filter(pk=ticket.pk).update(created_at=now - timedelta(minutes=minutes_ago))
        services.ticket_sla_recompute(ticket=ticket)
    services.ticket_transition(ticket=paused_late, to_status="pending")
    tickets = {t.pk: t for t in Ticket.objects.all()}
    assert ticket_sla_state(tickets[fresh.pk]) == SlaState.OK
    assert ticket_sla_state(tickets[risky.pk]) == SlaState.AT_RISK
    assert ticket_sla_state(tickets[late.pk]) == SlaState.BREACHED
    assert ticket_sla_state(tickets[paused_late.pk]) == SlaState.BREACHED  # paused after the deadline
    now = timezone.now()
    assert set(Ticket.objects.filter(sla_breached_q(now)).values_list("pk", flat=True)) == {late.pk, paused_late.pk}
    assert set(Ticket.objects.filter(sla_at_risk_q(now)).values_list("pk", flat=True)) == {risky.pk}
    # A first reply stops the first-response clock: the at-risk ticket is no longer at risk.
    services.ticket_reply(ticket=risky, author=None, text="On it")
    assert not Ticket.objects.filter(sla_at_risk_q(timezone.now()), pk=risky.pk).exists()


# --- replies, notes, messages ----------------------------------------------------------


def test_first_reply_records_response_moves_to_in_progress_and_assigns(ticket, agent):
    message = services.ticket_reply(ticket=ticket, author=agent, text="Hello Maya, a new pole is on its way.")
    ticket.refresh_from_db()
    assert message.role == "agent" and message.author == agent and message.seq == 1
    assert message.conversation_id == ticket.conversation_id
    assert ticket.first_responded_at == message.created_at
    assert ticket.status == "in_progress"
    assert ticket.assignee == agent
    assert set(ticket.events.values_list("kind", flat=True)) >= {"replied", "status", "assigned"}
    second = services.ticket_reply(ticket=ticket, author=agent, text="Tracking number: 123")
    ticket.refresh_from_db()
    assert second.seq == 2 and ticket.first_responded_at == message.created_at


def test_reply_to_closed_ticket_is_refused(ticket, agent):
    services.ticket_transition(ticket=ticket, to_status="closed")
    with pytest.raises(DomainError, match="closed"):
        services.ticket_reply(ticket=ticket, author=agent, text="hi")
    assert not Message.objects.exists()


def test_message_create_is_idempotent_on_client_id(customer):
    conversation = services.conversation_start(customer=customer)
    first, created = services.message_create(
        conversation=conversation, role="customer", text="hi", client_message_id="abc"
    )
    again, created_again = services.message_create(
        conversation=conversation, role="customer", text="hi", client_message_id="abc"
    )
    other, _ = services.message_create(conversation=conversation, role="customer", text="2nd", client_message_id="x")
    assert created and not created_again
    assert again.pk == first.pk
    assert [first.seq, other.seq] == [1, 2]
    assert Message.objects.filter(conversation=conversation).count() == 2
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 2


def test_a_customers_last_seen_is_kept_to_the_minute(customer, org, monkeypatch):
    """Starting a conversation and a customer's message move their last_seen_at, written at most
    once a minute by a process (one UPDATE a chat turn fewer, and none on a conversation's first
    message); another customer's is their own."""
    from tickets.models import Customer
    from tickets.services import conversations

    written = {}
    monkeypatch.setattr(conversations, "_last_seen_written", written)
    Customer.objects.filter(pk=customer.pk).update(last_seen_at=None)
    conversation = services.conversation_start(customer=customer)

    def said(text, conversation=conversation):
        return services.message_create(conversation=conversation, role="customer", text=text)[0]

    def seen(person=customer):
        return Customer.objects.get(pk=person.pk).last_seen_at

    assert seen() == conversation.started_at
    first = said("hello")
    assert seen() == conversation.started_at < first.created_at  # within the minute: not written again
    written[customer.pk] -= conversations.LAST_SEEN_PRECISION_SECONDS + 1  # 61 s ago
    second = said("still there?")
    assert seen() == second.created_at
    written[customer.pk] -= conversations.LAST_SEEN_PRECISION_SECONDS - 1  # 59 s ago
    said("hello?")
    assert seen() == second.created_at
    written[customer.pk] -= 2  # 61 s ago
    third = said("hello again")
    assert seen() == third.created_at > second.created_at
    other = CustomerFactory(organization=org)
    theirs = services.conversation_start(customer=other)
    said("me too", theirs)
    assert seen(other) == theirs.started_at and seen() == third.created_at


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_001])
def test_message_create_rejects_empty_or_oversize_text(customer, text):
    conversation = services.conversation_start(customer=customer)
    with pytest.raises(DomainError):
        services.message_create(conversation=conversation, role="customer", text=text)
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_messages_get_unique_consecutive_sequence_numbers(org):
    customer = CustomerFactory(organization=org)
    conversation = services.conversation_start(customer=customer)
    errors = []

    def write(worker):
        try:
            for i in range(10):
                services.message_create(
                    conversation=conversation,
                    role="customer",
                    text=f"w{worker} m{i}",
                    client_message_id=f"{worker}-{i}",
                )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(Message.objects.filter(conversation=conversation).values_list("seq", flat=True))
    assert seqs == list(range(1, 31))


@pytest.mark.django_db(transaction=True)
def test_a_ticket_change_locks_its_ticket_and_not_the_other_tickets_of_its_organization(org, agent):
    """While one change holds its ticket (until it commits), a change to another ticket of the
    same organization goes through, audit entry and all; a second change to the same ticket
    waits. Locking the organization's row with the ticket made every change of an organization
    wait for the one before it to commit (the API's edits topped out there under load)."""
    from django.db import transaction
    from django.db.utils import OperationalError

    customer = CustomerFactory(organization=org)
    first, second = TicketFactory(customer=customer), TicketFactory(customer=customer)
    holding, release = threading.Event(), threading.Event()
    outcome = {}

    def hold():
        try:
            with services.ticket_change():
                services.ticket_edit(ticket=services.ticket_lock(first), actor=agent, locked=True, priority="high")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def edit(ticket, key):
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '1s'")
                with services.ticket_change(savepoint=False):
                    locked = services.ticket_lock(ticket, organization_id=org.pk)
                    services.ticket_edit(ticket=locked, actor=agent, locked=True, priority="urgent")
            outcome[key] = "done"
        except OperationalError as exc:
            outcome[key] = "waited" if "lock timeout" in str(exc) else repr(exc)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        for ticket, key in ((second, "other"), (first, "same")):
            thread = threading.Thread(target=edit, args=(ticket, key))
            thread.start()
            thread.join()
    finally:
        release.set()
        holder.join()
    assert outcome == {"other": "done", "same": "waited"}
    assert Ticket.objects.get(pk=second.pk).priority == "urgent" and Ticket.objects.get(pk=first.pk).priority == "high"


def test_note_is_internal_and_audited(ticket, agent):
    with pytest.raises(DomainError):
        services.ticket_note_add(ticket=ticket, author=agent, body=" ")
    note = services.ticket_note_add(ticket=ticket, author=agent, body="Customer is travelling on Friday")
    assert note.ticket == ticket
    assert ticket.events.filter(kind="note", actor=agent).exists()
    assert not Message.objects.exists()


def test_sentiment_record_labels_and_sets_conversation_mood(customer):
    conversation = services.conversation_start(customer=customer)
    message, _ = services.message_create(conversation=conversation, role="customer", text="This is terrible")
    record = services.message_sentiment_record(message=message, score=-0.8)
    conversation.refresh_from_db()
    assert record.label == "very_negative"
    assert (conversation.sentiment_label, conversation.sentiment_score) == ("very_negative", -0.8)
    assert [services.sentiment_label_for(s) for s in (-0.3, 0.0, 0.3, 0.9)] == [
        "negative",
        "neutral",
        "positive",
        "very_positive",
    ]
    with pytest.raises(DomainError):
        services.message_sentiment_record(message=message, score=1.5)


# --- assignment ------------------------------------------------------------------------


def test_assign_only_to_staff_of_the_same_organization(ticket, agent, other_agent):
    with pytest.raises(DomainError, match="not on the staff"):
        services.ticket_assign(ticket=ticket, assignee=other_agent, actor=agent)
    ticket.refresh_from_db()
    assert ticket.assignee is None
    ticket = services.ticket_assign(ticket=ticket, assignee=agent, actor=agent)
    event = ticket.events.get(kind="assigned")
    assert (event.before, event.after) == (None, agent.pk)


# --- merge -----------------------------------------------------------------------------


def test_merge_moves_notes_tags_priority_and_closes_source(org, agent):
    customer = CustomerFactory(organization=org)
    target = TicketFactory(customer=customer, priority="low", tags=["shipping"])
    source = TicketFactory(customer=customer, priority="high", tags=["refund"])
    services.ticket_note_add(ticket=source, author=agent, body="original note")
    merged = services.ticket_merge(source=source, target=target, actor=agent)
    source.refresh_from_db()
    assert source.status == "closed" and source.merged_into == merged
    assert merged.priority == "high"
    assert set(merged.tags.values_list("name", flat=True)) == {"shipping", "refund"}
    assert TicketNote.objects.filter(ticket=merged, body="original note").exists()
    assert merged.events.filter(kind="merged").exists() and source.events.filter(kind="merged").exists()
    with pytest.raises(DomainError, match="already merged"):
        services.ticket_merge(source=source, target=target)
    with pytest.raises(DomainError):
        services.ticket_transition(ticket=source, to_status="open")


def test_merge_refuses_other_tenant_and_self(ticket, other_org):
    foreign = TicketFactory(customer=CustomerFactory(organization=other_org))
    with pytest.raises(DomainError, match="different organizations"):
        services.ticket_merge(source=foreign, target=ticket)
    with pytest.raises(DomainError, match="itself"):
        services.ticket_merge(source=ticket, target=ticket)
    foreign.refresh_from_db()
    assert foreign.status == "open" and foreign.merged_into is None


# --- macros and CSAT -------------------------------------------------------------------


def test_macro_replies_with_placeholders_sets_status_and_tags(ticket, agent, org):
    macro = services.macro_create(
        organization=org,
        name="Ask for order",
        reply="Hi {customer_name}, ticket {ticket_id}: your order number please? — {agent_name}",
        set_status="pending",
        add_tags="needs-info",
    )
    outcome = services.ticket_macro_apply(ticket=ticket, macro=macro, actor=agent)
    assert outcome.reply.text == f"Hi Maya, ticket {ticket.pk}: your order number please? — alice"
    assert outcome.ticket.status == "pending"
    assert list(outcome.ticket.tags.values_list("name", flat=True)) == ["needs-info"]
    assert outcome.ticket.events.filter(kind="macro").exists()


def test_macro_of_other_org_and_empty_macro_are_refused(ticket, other_org, org):
    foreign = Macro.objects.create(organization=other_org, name="x", reply="hello")
    with pytest.raises(DomainError):
        services.ticket_macro_apply(ticket=ticket, macro=foreign)
    with pytest.raises(DomainError, match="must reply"):
        services.macro_create(organization=org, name="empty")


def test_csat_only_after_resolution_and_updates_customer_mean(customer):
    first, second = TicketFactory(customer=customer), TicketFactory(customer=customer)
    with pytest.raises(DomainError, match="resolved"):
        services.ticket_csat_record(ticket=first, score=5)
    for ticket, score in ((first, 5), (second, 2)):
        services.ticket_transition(ticket=ticket, to_status="resolved")
        services.ticket_csat_record(ticket=ticket, score=score, comment="thanks")
    customer.refresh_from_db()
    assert customer.satisfaction_score == pytest.approx(3.5)
    with pytest.raises(DomainError):
        services.ticket_csat_record(ticket=first, score=6)


def test_staff_member_gets_role_group(org):
    user = StaffFactory(organization=org, role="supervisor")
    assert list(user.groups.values_list("name", flat=True)) == ["Supervisor"]
    assert user.has_perm("tickets.add_macro") and not user.has_perm("tickets.delete_ticketevent")
    staff_role_set(user=user, role="agent")
    user = type(user).objects.get(pk=user.pk)
    assert list(user.groups.values_list("name", flat=True)) == ["Agent"]
    assert not user.has_perm("tickets.add_macro")


def test_sla_settings_come_from_a_process_copy_that_every_change_replaces(org):
    """A ticket edit reads no SLA table once the process holds the organization's settings;
    a new policy, business hours or holiday (made here or in another process) reaches the next
    edit, and an organization saved from an older read does not undo the count of changes."""
    from django.test.utils import CaptureQueriesContext

    from tenancy.business_hours import business_calendar
    from tenancy.models import BusinessHours, Holiday, Organization
    from tickets.services import sla

    ticket = TicketFactory(customer=CustomerFactory(organization=org), priority="low")
    services.ticket_update(ticket=ticket, priority="high")
    with CaptureQueriesContext(connection) as captured:
        services.ticket_update(ticket=ticket, priority="low")
    tables = ("tickets_slapolicy", "tickets_businesshours", "tickets_holiday")
    assert not [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in tables)]

    def another_process_copy() -> dict:
        """What a process that made its copy before the change still holds."""
        return dict(sla._settings)

    stale = Organization.objects.get(pk=org.pk)
    held = another_process_copy()
    SlaPolicy.objects.create(organization_id=org.pk, priority="high", first_response_minutes=5, resolution_minutes=50)
    stale.name = "Acme Outdoors"
    stale.save()  # read before the policy, saved after it
    assert Organization.objects.get(pk=org.pk).sla_version == stale.sla_version + 1
    sla._settings.update(held)
    ticket = services.ticket_update(ticket=ticket, priority="high")
    assert ticket.first_response_due - ticket.created_at == timedelta(minutes=5)

    # Open 9 to 5 on tomorrow's weekday only: the deadline moves to tomorrow morning; then a
    # holiday on that day moves it a week on. Each change is made after "another process" copied
    # the settings.
    due = ticket.first_response_due
    tomorrow = (ticket.created_at.astimezone(org.zone).weekday() + 1) % 7
    changes = (
        lambda: BusinessHours.objects.create(organization=org, weekday=tomorrow, opens="09:00", closes="17:00"),
        lambda: Holiday.objects.create(organization=org, date=due.astimezone(org.zone).date()),
    )
    for change in changes:
        held = another_process_copy()
        change()
        sla._settings.update(held)
        ticket = services.ticket_update(ticket=ticket, priority="low")
        ticket = services.ticket_update(ticket=ticket, priority="high")
        calendar = business_calendar(Organization.objects.get(pk=org.pk))
        assert ticket.first_response_due == calendar.add(ticket.created_at, 5 * 60)
        assert ticket.first_response_due > due  # the change moved it
        due = ticket.first_response_due
