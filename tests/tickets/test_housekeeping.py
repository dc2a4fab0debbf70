from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Conversation, Message, Ticket

pytestmark = pytest.mark.django_db


def chat(org, text="hello"):
    conversation = services.conversation_start(customer=CustomerFactory(organization=org))
    services.message_create(conversation=conversation, role="customer", text=text)
    return conversation


def test_stale_chats_end_unless_a_ticket_is_being_worked(org):
    idle, busy, fresh = chat(org), chat(org), chat(org)
    TicketFactory(customer=busy.customer, conversation=busy)
    Message.objects.filter(conversation__in=[idle, busy]).update(created_at=timezone.now() - timedelta(days=2))
    assert services.conversations_close_stale() == 1
    states = dict(Conversation.objects.values_list("pk", "status"))
    assert (states[idle.pk], states[busy.pk], states[fresh.pk]) == ("ended", "open", "open")
    assert services.conversations_close_stale() == 0


def test_transcripts_past_retention_are_deleted_and_tickets_kept(org, capsys):
    org.transcript_retention_days = 30
    org.save()
    old, recent = chat(org, "old secret"), chat(org, "recent")
    ticket = TicketFactory(customer=old.customer, conversation=old)
    services.ticket_transition(ticket=ticket, to_status="closed")
    for conversation, days in ((old, 40), (recent, 5)):
        services.conversation_end(conversation=conversation)
        Conversation.objects.filter(pk=conversation.pk).update(ended_at=timezone.now() - timedelta(days=days))
    call_command("housekeeping")
    assert "deleted 1 message(s)" in capsys.readouterr().out
    assert list(Message.objects.values_list("text", flat=True)) == ["recent"]
    assert Ticket.objects.get(pk=ticket.pk).events.exists()  # the audit trail stays
