"""A customer waiting for a person: their place in the queue, the expected wait from recent
first responses, business hours, and the reply reaching them by email when they are away."""

from datetime import UTC, datetime, time, timedelta

import pytest

from tenancy.models import BusinessHours
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.handoff import handoff_status
from tickets.models import Ticket
from tickets.transport import chat_presence_join, chat_presence_leave

pytestmark = pytest.mark.django_db


def handed_off(customer):
    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="a person please", broadcast=False)
    ticket = services.conversation_escalate(conversation=conversation, reason="asked for a human")
    return conversation, ticket


def answered_after(org, minutes, now):
    ticket = TicketFactory(organization=org, customer=CustomerFactory(organization=org))
    Ticket.objects.filter(pk=ticket.pk).update(
        created_at=now - timedelta(minutes=minutes + 5), first_responded_at=now - timedelta(minutes=5)
    )


def test_position_and_expected_wait_come_from_the_queue_and_recent_first_responses(org):
    now = datetime.now(UTC)
    StaffFactory(organization=org)
    StaffFactory(organization=org)
    for minutes in (4, 6, 10):  # median 6 minutes to a first answer
        answered_after(org, minutes, now)
    handed_off(CustomerFactory(organization=org))  # one customer already waiting
    conversation, ticket = handed_off(CustomerFactory(organization=org))
    status = handoff_status(conversation_id=conversation.pk, now=now)
    assert status["type"] == "queue" and status["ticket_id"] == ticket.pk
    assert status["position"] == 2
    assert status["expected_wait_seconds"] == 6 * 60 * 2 / 2  # median x position / available staff
    assert status["open"] is True and status["reopens_at"] is None

    # Once a person answers, the customer is no longer waiting.
    agent = StaffFactory(organization=org)
    services.ticket_reply(ticket=ticket, author=agent, text="Hi, I'm here.")
    assert handoff_status(conversation_id=conversation.pk, now=now) is None


def test_no_status_while_the_assistant_still_handles_the_chat(org, customer):
    conversation = services.conversation_start(customer=customer)
    assert handoff_status(conversation_id=conversation.pk) is None


def test_outside_business_hours_the_customer_learns_when_the_team_is_back(org):
    org.timezone = "Europe/Berlin"
    org.save()
    BusinessHours.objects.create(organization=org, weekday=0, opens=time(9), closes=time(17))  # Mondays only
    customer = CustomerFactory(organization=org, email="")
    conversation, _ = handed_off(customer)
    saturday_noon = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    status = handoff_status(conversation_id=conversation.pk, now=saturday_noon)
    assert status["open"] is False and status["email_known"] is False
    assert status["reopens_at"] == "2026-11-30T08:00:00+00:00"  # Monday 09:00 in Berlin


def test_a_reply_reaches_an_away_customer_by_email(eager, org, mailoutbox, django_capture_on_commit_callbacks):
    customer = CustomerFactory(organization=org, email="maya@example.com", name="Maya")
    conversation, ticket = handed_off(customer)
    agent = StaffFactory(organization=org, first_name="Sam")
    with django_capture_on_commit_callbacks(execute=True):
        services.ticket_reply(ticket=ticket, author=agent, text="Your parcel left today.")
    [mail] = mailoutbox
    assert mail.to == ["maya@example.com"] and "Your parcel left today." in mail.body and "Sam" in mail.body

    # With the chat open, the reply arrives there and no email is sent.
    chat_presence_join(conversation_id=conversation.pk)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.ticket_reply(ticket=Ticket.objects.get(pk=ticket.pk), author=agent, text="Anything else?")
    finally:
        chat_presence_leave(conversation_id=conversation.pk)
    assert len(mailoutbox) == 1
