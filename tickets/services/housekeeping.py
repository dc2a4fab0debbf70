"""Housekeeping: stale chats end, transcripts past retention are deleted."""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from tenancy.models import Organization
from tickets.models import Conversation, Message
from tickets.rules import ACTIVE_STATUSES
from tickets.services.conversations import conversation_end


def conversations_close_stale(*, now: datetime | None = None) -> int:
    """End chats nobody has written in for the organization's stale_conversation_minutes,
    unless a ticket on them is still being worked. Returns how many were ended."""
    now = now or timezone.now()
    ended = 0
    for organization in Organization.objects.all():
        cutoff = now - timedelta(minutes=organization.stale_conversation_minutes)
        idle = (
            Conversation.objects.filter(organization=organization)
            .exclude(status=Conversation.Status.ENDED)
            .exclude(tickets__status__in=ACTIVE_STATUSES)
            .annotate(last_message_at=Max("messages__created_at"))
            .filter(Q(last_message_at__lt=cutoff) | Q(last_message_at__isnull=True, started_at__lt=cutoff))
        )
        for conversation in idle:
            conversation_end(conversation=conversation)
            ended += 1
    return ended


@transaction.atomic
def transcripts_purge(*, now: datetime | None = None) -> int:
    """Delete the messages of conversations that ended longer ago than the organization keeps
    transcripts. Tickets and their audit trail stay. Returns how many messages were deleted."""
    now = now or timezone.now()
    deleted = 0
    for organization in Organization.objects.all():
        cutoff = now - timedelta(days=organization.transcript_retention_days)
        old = Message.objects.filter(
            conversation__organization=organization,
            conversation__status=Conversation.Status.ENDED,
            conversation__ended_at__lt=cutoff,
        )
        deleted += old.delete()[0]
    return deleted
