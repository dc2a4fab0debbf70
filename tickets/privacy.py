"""A customer's personal data on request: export everything we hold about them, or erase it.

Erasure deletes their chat transcripts and conversations, blanks name, email and phone,
deletes internal notes on their tickets and scrubs ticket subjects and comments; the ticket
rows stay (as "Erased customer") so reports and SLA figures still add up. Both are recorded
in the audit trail, with counts only."""

from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy.audit import audit_record
from tickets.models import Conversation, Customer, Message, Ticket, TicketEvent, TicketNote
from tickets.search import desk_messages_unindex, desk_ticket_index

ERASED_SUBJECT = "[erased on request]"


def customer_export(*, customer: Customer, actor: Any = None) -> dict[str, Any]:
    """Everything we hold about one customer, as plain JSON-ready data."""
    conversations = []
    for conversation in Conversation.objects.filter(customer=customer).order_by("started_at"):
        messages = Message.objects.filter(conversation=conversation).select_related("sentiment").order_by("seq")
        conversations.append(
            {
                "id": conversation.pk,
                "channel": conversation.channel,
                "status": conversation.status,
                "started_at": conversation.started_at,
                "ended_at": conversation.ended_at,
                "rating": conversation.csat_score,
                "rating_comment": conversation.csat_comment,
                "messages": [
                    {
                        "seq": m.seq,
                        "role": m.role,
                        "text": m.text,
                        "created_at": m.created_at,
                        "sentiment": getattr(getattr(m, "sentiment", None), "label", None),
                    }
                    for m in messages
                ],
            }
        )
    tickets = [
        {
            "id": t.pk,
            "subject": t.subject,
            "status": t.status,
            "priority": t.priority,
            "channel": t.channel,
            "created_at": t.created_at,
            "resolved_at": t.resolved_at,
            "rating": t.csat_score,
            "rating_comment": t.csat_comment,
            "notes": [{"created_at": n.created_at, "body": n.body} for n in t.notes.order_by("created_at")],
        }
        for t in Ticket.objects.filter(customer=customer).prefetch_related("notes").order_by("created_at")
    ]
    audit_record(
        organization_id=customer.organization_id,
        action="customer.export",
        actor=actor,
        object_type="customer",
        object_id=customer.pk,
        data={"conversations": len(conversations), "tickets": len(tickets)},
    )
    return {
        "customer": {
            "id": customer.pk,
            "organization": customer.organization.slug,
            "name": customer.name,
            "email": customer.email,
            "phone": customer.phone,
            "external_id": customer.external_id,
            "language": customer.language,
            "vip_tier": customer.vip_tier,
            "satisfaction_score": customer.satisfaction_score,
            "created_at": customer.created_at,
            "last_seen_at": customer.last_seen_at,
        },
        "conversations": conversations,
        "tickets": tickets,
        "exported_at": timezone.now(),
    }


@transaction.atomic
def customer_erase(*, customer: Customer, actor: Any = None) -> dict[str, int]:
    """Erase one customer's personal data (see the module docstring). Returns what was removed."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    conversations = Conversation.objects.filter(customer=customer)
    message_ids = list(Message.objects.filter(conversation__in=conversations).values_list("pk", flat=True))
    messages = Message.objects.filter(pk__in=message_ids).delete()[0]
    desk_messages_unindex(message_ids, customer.organization_id)
    conversation_count = conversations.count()
    conversations.delete()
    tickets = list(Ticket.objects.filter(customer=customer))
    notes = TicketNote.objects.filter(ticket__in=tickets).delete()[0]
    # Subject changes kept their old and new text in the ticket timeline.
    TicketEvent.objects.filter(ticket__in=tickets, field="subject").update(before=None, after=None)
    Ticket.objects.filter(customer=customer).update(subject=ERASED_SUBJECT, csat_comment="")
    customer.name = f"Erased customer {customer.pk}"
    customer.email = ""
    customer.phone = ""
    customer.external_id = ""
    customer.erased_at = timezone.now()
    customer.save(update_fields=["name", "email", "email_hash", "phone", "external_id", "erased_at"])
    for ticket in Ticket.objects.filter(customer=customer).select_related("customer"):
        desk_ticket_index(ticket)
    counts = {"conversations": conversation_count, "messages": messages, "tickets_scrubbed": len(tickets),
              "notes": notes}  # fmt: skip
    audit_record(organization_id=customer.organization_id, action="customer.erase", actor=actor,
                 object_type="customer", object_id=customer.pk, data=counts)  # fmt: skip
    return counts
