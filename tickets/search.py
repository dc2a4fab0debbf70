"""Staff search over tickets and messages through the keyword index: tickets registers its
``desk`` corpus (ticket subjects with the customer, and message texts: ``t<id>`` / ``m<id>``)
with knowledge.keyword, which keeps it in Elasticsearch when configured, else in built-in BM25.
A message that matches brings up the tickets of its conversation."""

import logging
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Max

from knowledge import keyword
from knowledge.search import query_validate
from tenancy.models import Organization
from tickets.models import Message, Ticket

logger = logging.getLogger(__name__)

DESK = "desk"


def desk_ticket_text(subject: str, customer_name: str, customer_email: str) -> str:
    return f"{subject}\n{customer_name} {customer_email}"


def desk_rows(organization_id: int) -> list[tuple[str, str]]:
    tickets = Ticket.objects.filter(organization_id=organization_id).values_list(
        "id", "subject", "customer__name", "customer__email"
    )
    messages = Message.objects.filter(conversation__organization_id=organization_id).values_list("id", "text")
    return [(f"t{tid}", desk_ticket_text(s, n, e)) for tid, s, n, e in tickets] + [
        (f"m{mid}", text) for mid, text in messages
    ]


def desk_stamp(organization_id: int) -> tuple[Any, ...]:
    tickets = Ticket.objects.filter(organization_id=organization_id).aggregate(n=Count("id"), top=Max("updated_at"))
    messages = Message.objects.filter(conversation__organization_id=organization_id).aggregate(
        n=Count("id"), top=Max("id")
    )
    return (tickets["n"], tickets["top"], messages["n"], messages["top"])


def desk_corpus_register() -> None:
    keyword.corpus_register(DESK, desk_rows, desk_stamp)


@dataclass(frozen=True)
class DeskHit:
    ticket: Ticket
    score: float
    matched: str  # "ticket" (subject or customer) or "message"
    snippet: str


def _write_on_commit(organization_id: int, documents: list[tuple[str, str, dict[str, str]]]) -> None:
    def write() -> None:
        try:
            keyword.get_backend().upsert(organization_id, DESK, documents)
        except Exception:  # the database is the record; `kb_reindex` rebuilds the index from it
            logger.warning("desk index write failed for organization %s", organization_id, exc_info=True)

    transaction.on_commit(write)


def desk_ticket_index(ticket: Ticket) -> None:
    text = desk_ticket_text(ticket.subject, ticket.customer.name, ticket.customer.email)
    _write_on_commit(ticket.organization_id, [(f"t{ticket.pk}", text, {"kind": "ticket"})])


def desk_message_index(message: Message, organization_id: int) -> None:
    _write_on_commit(organization_id, [(f"m{message.pk}", message.text, {"kind": "message"})])


def desk_messages_unindex(message_ids: list[int], organization_id: int) -> None:
    """Take deleted messages out of the staff search index (after commit)."""

    def delete() -> None:
        try:
            keyword.get_backend().delete(organization_id, DESK, [f"m{pk}" for pk in message_ids])
        except Exception:
            logger.warning("desk index delete failed for organization %s", organization_id, exc_info=True)

    if message_ids:
        transaction.on_commit(delete)


def _ranked_tickets(organization: Organization, query: str, k: int) -> list[tuple[int, float, str]]:
    """(ticket id, score, document id) best first, a ticket once, scoped to the organization.
    Ticket documents name their ticket; a message document stands for its conversation's tickets."""
    query = query_validate(query)
    ranked = keyword.search(organization.pk, query, k * 3, corpus=DESK)
    message_ids = [int(doc[1:]) for doc, _ in ranked if doc.startswith("m")]
    tickets_of_message: dict[int, list[int]] = {}
    if message_ids:
        pairs = Ticket.objects.filter(
            organization=organization, conversation__messages__id__in=message_ids
        ).values_list("conversation__messages__id", "id")
        for message_id, ticket_id in pairs:
            tickets_of_message.setdefault(message_id, []).append(ticket_id)
    out: list[tuple[int, float, str]] = []
    seen: set[int] = set()
    for doc_id, score in ranked:
        number = int(doc_id[1:])
        for ticket_id in [number] if doc_id.startswith("t") else tickets_of_message.get(number, []):
            if ticket_id not in seen:
                seen.add(ticket_id)
                out.append((ticket_id, score, doc_id))
    return out[:k]


def desk_ticket_ids(*, organization: Organization, query: str, k: int = 100) -> list[int]:
    """Ids of matching tickets, best first; cheap enough for the admin's search box."""
    return [ticket_id for ticket_id, _, _ in _ranked_tickets(organization, query, k)]


def desk_search(*, organization: Organization, query: str, k: int = 20) -> list[DeskHit]:
    ranked = _ranked_tickets(organization, query, k)
    tickets = (
        Ticket.objects.filter(organization=organization)
        .select_related("customer", "assignee")
        .prefetch_related("tags")
        .in_bulk([ticket_id for ticket_id, _, _ in ranked])
    )
    message_ids = [int(doc_id[1:]) for _, _, doc_id in ranked if doc_id.startswith("m")]
    messages = Message.objects.in_bulk(message_ids) if message_ids else {}
    hits = []
    for ticket_id, score, doc_id in ranked:
        ticket = tickets.get(ticket_id)
        if ticket is None:  # the index is ahead of, or behind, the database
            continue
        message = messages.get(int(doc_id[1:])) if doc_id.startswith("m") else None
        hits.append(
            DeskHit(
                ticket=ticket,
                score=round(score, 4),
                matched="message" if message else "ticket",
                snippet=message.text[:200] if message else ticket.subject,
            )
        )
    return hits
