"""The agent's workspace: mentions in notes that notify the colleague, what an agent has seen
(the inbox's unread marker), and the assistant's reply suggestions with what became of them."""

import re
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import DomainError
from tickets.models import ReplySuggestion, StaffNotification, Ticket, TicketNote
from tickets.transport import send_on_commit, staff_group_name

# "@sam" or "@sam.lee" in a note; an address such as "help@example.com" is not a mention.
MENTION = re.compile(r"(?<![\w.@])@([\w][\w.+-]*)")


def mentions_find(*, organization_id: int, body: str) -> list[Any]:
    """The organization's staff named in the text, by username (any case), each once."""
    names = {name.rstrip(".").lower() for name in MENTION.findall(body or "")}
    if not names:
        return []
    named = Q()
    for name in names:
        named |= Q(username__iexact=name)
    staff = get_user_model().objects.filter(staff_profile__organization_id=organization_id, is_active=True)
    return list(staff.filter(named).order_by("username"))


def mentions_notify(*, note: TicketNote, author: Any) -> list[StaffNotification]:
    """A notification for each colleague the note mentions (not its author), pushed to their open
    pages after commit and emailed to them by a task."""
    from tickets.tasks import mention_email

    ticket = note.ticket
    recipients = [u for u in mentions_find(organization_id=ticket.organization_id, body=note.body) if u != author]
    created = []
    by = author.get_username() if getattr(author, "pk", None) else "system"
    for user in recipients:
        notification = StaffNotification.objects.create(
            organization_id=ticket.organization_id,
            recipient=user,
            ticket=ticket,
            note=note,
            actor=author if getattr(author, "pk", None) else None,
        )
        created.append(notification)
        frame = {
            "type": "notification",
            "id": notification.pk,
            "ticket_id": ticket.pk,
            "subject": ticket.subject,
            "by": by,
            "text": note.body[:200],
        }
        send_on_commit(staff_group_name(user.pk), {"type": "console.notification", "frame": frame})
        transaction.on_commit(partial(mention_email.delay, notification.pk))
    return created


@transaction.atomic
def mention_email_send(*, notification_id: int) -> bool:
    """Email the mentioned colleague once; False when they have no address or it was sent. The
    row lock keeps a retried or redelivered task from mailing twice."""
    from django.core.mail import send_mail

    notification = (
        StaffNotification.objects.select_for_update(of=("self",))
        .select_related("recipient", "ticket", "note", "actor")
        .filter(pk=notification_id)
        .first()
    )
    if notification is None or notification.emailed_at is not None:
        return False
    if not notification.recipient.email or notification.note is None:
        return False
    by = notification.actor.get_username() if notification.actor else "A colleague"
    ticket = notification.ticket
    send_mail(
        subject=f"[#{ticket.pk}] {by} mentioned you: {ticket.subject}",
        message=f"{by} wrote in an internal note on ticket #{ticket.pk}:\n\n{notification.note.body}\n",
        from_email=None,
        recipient_list=[notification.recipient.email],
    )
    notification.emailed_at = timezone.now()
    notification.save(update_fields=["emailed_at"])
    return True


def notifications_read(*, user: Any, ticket: Ticket) -> int:
    """Opening the ticket reads what pointed the user at it."""
    return StaffNotification.objects.filter(recipient=user, ticket=ticket, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def ticket_seen(*, ticket: Ticket, user: Any) -> None:
    """The assignee has read the conversation up to its newest message (clears the unread mark)."""
    if ticket.assignee_id != getattr(user, "pk", None) or ticket.conversation_id is None:
        return
    last_seq = ticket.conversation.last_seq if ticket.conversation else 0
    if last_seq > ticket.assignee_seen_seq:
        Ticket.objects.filter(pk=ticket.pk).update(assignee_seen_seq=last_seq)
        ticket.assignee_seen_seq = last_seq


# --- suggestions -------------------------------------------------------------------------

# The assistant registers how it drafts a reply for a ticket (agents.assist.reply_suggest): the
# desk sits below the assistant and calls it through this hook.
_suggester: list[Callable[..., ReplySuggestion]] = []


def reply_suggester_register(suggest: Callable[..., ReplySuggestion]) -> None:
    _suggester[:] = [suggest]


def reply_suggestion_make(*, ticket: Ticket, agent: Any) -> ReplySuggestion:
    if not _suggester:
        raise DomainError("No assistant is installed to suggest replies.")
    return _suggester[0](ticket=ticket, agent=agent)


def suggestion_record(
    *, ticket: Ticket, agent: Any, text: str, citations: list[dict[str, str]], in_reply_to_seq: int, generated: bool
) -> ReplySuggestion:
    return ReplySuggestion.objects.create(
        organization_id=ticket.organization_id,
        ticket=ticket,
        agent=agent if getattr(agent, "pk", None) else None,
        text=text,
        citations=citations,
        in_reply_to_seq=in_reply_to_seq,
        generated=generated,
    )


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def suggestion_decide(*, suggestion: ReplySuggestion, sent_text: str | None) -> ReplySuggestion:
    """What the agent did with the suggestion: sent it as drafted, sent an edit of it, or (no
    text) discarded it. Decided once; a second decision is refused."""
    if suggestion.outcome != ReplySuggestion.Outcome.PENDING:
        raise DomainError(f"This suggestion was already {suggestion.get_outcome_display().lower()}.")
    if sent_text is None:
        outcome = ReplySuggestion.Outcome.DISCARDED
    elif _same_text(sent_text, suggestion.text):
        outcome = ReplySuggestion.Outcome.SENT
    else:
        outcome = ReplySuggestion.Outcome.EDITED
    suggestion.outcome = outcome
    suggestion.decided_at = timezone.now()
    suggestion.save(update_fields=["outcome", "decided_at"])
    return suggestion


def suggestion_rates(counts: dict[str, int]) -> dict[str, float | int | None]:
    """Acceptance (sent as drafted) and use (sent, edited or not) over the decided suggestions."""
    decided = sum(counts.get(o, 0) for o in ("sent", "edited", "discarded"))
    sent, edited = counts.get("sent", 0), counts.get("edited", 0)
    return {
        "offered": decided + counts.get("pending", 0),
        "decided": decided,
        "sent": sent,
        "edited": edited,
        "discarded": counts.get("discarded", 0),
        "acceptance_rate": round(sent / decided, 4) if decided else None,
        "use_rate": round((sent + edited) / decided, 4) if decided else None,
    }


# --- the handoff summary -----------------------------------------------------------------

SUMMARY_QUOTE_CHARS = 200


def _trend(scores: list[float]) -> str:
    if len(scores) < 2:
        return "steady"
    change = scores[-1] - scores[0]
    return "worsening" if change <= -0.2 else "improving" if change >= 0.2 else "steady"


def conversation_summary(messages: list[Any]) -> dict[str, Any] | None:
    """What a colleague taking over needs first, from the transcript already read: what the
    customer wants (their first real question, and their latest when it differs), what the
    assistant answered and from which articles, why it handed off, and how the customer's mood
    went. None when the customer has not written."""
    customer = [m for m in messages if m.role == "customer" and m.text.strip()]
    if not customer:
        return None
    bot = [m for m in messages if m.role == "bot"]
    questions = [m for m in customer if len(m.text.split()) >= 3 or len(m.text) >= 8] or customer
    wants = [questions[0].text[:SUMMARY_QUOTE_CHARS]]
    if questions[-1] is not questions[0]:
        wants.append(questions[-1].text[:SUMMARY_QUOTE_CHARS])
    said = []
    for message in bot:
        metadata = message.metadata or {}
        titles = [s.get("title", "") for s in metadata.get("sources") or [] if isinstance(s, dict)]
        if titles:
            said.append({"text": message.text[:SUMMARY_QUOTE_CHARS], "sources": titles})
        elif metadata.get("answered") is False:
            said.append({"text": message.text[:SUMMARY_QUOTE_CHARS], "sources": [], "unanswered": True})
    reasons: list[str] = []
    for message in bot:
        for reason in (message.metadata or {}).get("escalation_reasons") or []:
            if reason not in reasons:
                reasons.append(str(reason))
    intents = []
    for message in bot:
        intent = str((message.metadata or {}).get("intent") or "")
        if intent and intent != "fallback" and intent not in intents:
            intents.append(intent)
    scores = [m.sentiment.score for m in customer if getattr(m, "sentiment", None) is not None]
    latest = next((m.sentiment for m in reversed(customer) if getattr(m, "sentiment", None) is not None), None)
    return {
        "wants": wants,
        "intents": intents,
        "said": said[-3:],
        "handoff_reasons": reasons,
        "sentiment": {
            "latest": latest.get_label_display() if latest is not None else "",
            "trend": _trend(scores),
            "count": len(scores),
        },
    }


def sentiment_points(messages: list[Any], *, width: int = 220, height: int = 40) -> str:
    """The customer's sentiment over the conversation as SVG polyline points (-1 at the bottom,
    +1 at the top), from the scores already joined to the transcript."""
    scores = [m.sentiment.score for m in messages if m.role == "customer" and getattr(m, "sentiment", None)]
    if not scores:
        return ""
    step = width / max(len(scores) - 1, 1)
    return " ".join(
        f"{round(i * step, 1)},{round((1 - (s + 1) / 2) * (height - 4) + 2, 1)}" for i, s in enumerate(scores)
    )
