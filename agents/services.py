"""Intent training and model versions, and the assistant's turn: run the pipeline on a customer
message, store the reply (and escalate when the pipeline says so)."""

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max

from agents.active_models import active_models_forget
from agents.datasets import labelled_rows
from agents.intents import IntentClassifier, evaluate
from agents.models import IntentExample, IntentModel
from config.errors import DomainError
from monitoring.context import conversation_context
from monitoring.metrics import chat_turn_observe, sentiment_observe
from tenancy.audit import audit_record
from tenancy.models import Organization
from tickets.transport import message_broadcast_on_commit, messages_broadcast_on_commit

logger = logging.getLogger(__name__)

MIN_EXAMPLES_PER_INTENT = 3
HOLDOUT_EVERY = 5


@transaction.atomic
def intent_examples_import(*, organization: Organization, rows: list[tuple[str, str]]) -> int:
    """Add (text, intent) examples; repeats are skipped. Returns how many were new."""
    created = 0
    for text, intent in rows:
        text, intent = (text or "").strip()[:500], (intent or "").strip()
        if not text or not intent:
            raise DomainError("Every example needs a text and an intent.")
        _, made = IntentExample.objects.get_or_create(organization=organization, intent=intent, text=text)
        created += made
    return created


def intent_examples_read_csv(path: Path) -> list[tuple[str, str]]:
    return labelled_rows(path, label_columns=("intent", "label"))


def intent_model_ensure(*, organization: Organization, rows: list[tuple[str, str]]) -> IntentModel | None:
    """Add these (text, intent) examples and train a model when they were new or none exists yet;
    returns the model trained, or None when the serving one stands."""
    added = intent_examples_import(organization=organization, rows=rows)
    if added or not IntentModel.objects.filter(organization=organization).exists():
        return intent_model_train(organization=organization)
    return None


def intent_model_train(
    *, organization: Organization, activate: bool = True, actor: Any = None, seed: int = 7
) -> IntentModel:
    """Train a new version from the organization's examples. Its figures come from a model
    trained without a held-back fifth; the stored model is then fitted on every example."""
    rows = list(IntentExample.objects.filter(organization=organization).values_list("text", "intent"))
    counts: dict[str, int] = {}
    for _, intent in rows:
        counts[intent] = counts.get(intent, 0) + 1
    usable = {intent for intent, n in counts.items() if n >= MIN_EXAMPLES_PER_INTENT}
    if len(usable) < 2:
        raise DomainError(f"Training needs at least two intents with {MIN_EXAMPLES_PER_INTENT}+ examples each.")
    rows = [(t, i) for t, i in rows if i in usable]
    random.Random(seed).shuffle(rows)  # noqa: S311 (a reproducible split, not a secret)
    held: list[tuple[str, str]] = []
    kept: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for text, intent in rows:  # every fifth example of an intent with five or more is held back
        seen[intent] = seen.get(intent, 0) + 1
        (held if counts[intent] >= HOLDOUT_EVERY and seen[intent] % HOLDOUT_EVERY == 0 else kept).append((text, intent))
    metrics: dict[str, Any] = {}
    if held:
        trial = IntentClassifier().fit([t for t, _ in kept], [i for _, i in kept])
        metrics = evaluate(trial, [t for t, _ in held], [i for _, i in held]).as_dict()
    classifier = IntentClassifier().fit([t for t, _ in rows], [i for _, i in rows])
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        version = (IntentModel.objects.filter(organization=organization).aggregate(v=Max("version"))["v"] or 0) + 1
        model = IntentModel.objects.create(
            organization=organization,
            version=version,
            intents=sorted(usable),
            examples=len(rows),
            metrics=metrics,
            threshold=classifier.threshold,
            blob=classifier.dumps(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        if activate or not IntentModel.objects.filter(organization=organization, is_active=True).exists():
            intent_model_activate(model=model)
    return model


def _serving_model_changed() -> None:
    """This process reads the active rows again now (for its own transaction) and after commit."""
    active_models_forget()
    transaction.on_commit(active_models_forget)


@transaction.atomic
def intent_model_activate(*, model: IntentModel) -> IntentModel:
    """Make this version the one that answers (activation and roll-back alike)."""
    IntentModel.objects.filter(organization_id=model.organization_id, is_active=True).exclude(pk=model.pk).update(
        is_active=False
    )
    # Write from the row, not the instance: a caller's copy may say "active" from before.
    IntentModel.objects.filter(pk=model.pk).update(is_active=True)
    model.is_active = True
    _serving_model_changed()
    return model


# --- the assistant's turn --------------------------------------------------------------------


AUDITED_DECISION = (
    "intent",
    "confidence",
    "intent_model_version",
    "language",
    "sentiment",
    "retrieval_confidence",
    "answered",
    "generated",
    "handoff",
    "escalation_reasons",
)


@dataclass(frozen=True)
class CustomerMessageReceived:
    message: Any  # tickets.models.Message
    created: bool  # False: a retry of a message already stored (same client id)
    assistant_answers: bool
    # Not yet pushed to the conversation's listeners: the reply's broadcast carries it (one
    # channel layer event for the turn instead of two).
    broadcast_deferred: bool = False


def customer_message_receive(
    *,
    conversation_id: int,
    organization_id: int,
    text: str,
    client_message_id: str,
    sender_address: str = "",
    attachment: Any = None,
    defer_broadcast: bool = False,
) -> CustomerMessageReceived:
    """A customer's message arrives from a channel: rate limits (per conversation, sender address
    and organization; RateLimited with the wait), then the stored message (idempotent on the
    client's id), and whether the assistant answers it: the chat is still the assistant's, and
    the message is new, or a retry whose first delivery died before it was answered. Every
    channel calls this; it writes the message and decides, the assistant's turn is separate.

    ``defer_broadcast``: when the assistant answers, leave the message's broadcast to
    ``assistant_reply(..., announce_customer_message=True)``, which the caller then must call."""
    from django.conf import settings

    from tickets import services as desk
    from tickets.errors import RateLimited
    from tickets.limits import limits_hit
    from tickets.models import Conversation, MessageRole

    rates = settings.CONCIERGE_RATE_LIMITS
    checks = [
        (scope, ident, rates[scope])
        for scope, ident in (
            ("chat_message_session", str(conversation_id)),
            ("chat_message_ip", sender_address),
            ("chat_message_org", str(organization_id)),
        )
        if ident
    ]
    verdict = limits_hit(checks)
    if not verdict.allowed:
        raise RateLimited(
            f"You are sending messages too fast; try again in {verdict.retry_after} s.", verdict.retry_after
        )
    conversation = Conversation.objects.get(pk=conversation_id, organization_id=organization_id)
    # An ended chat opens again with this message, and the assistant answers there too.
    defer = (
        defer_broadcast
        and attachment is None
        and conversation.status in (Conversation.Status.OPEN, Conversation.Status.ENDED)
    )
    message, created = desk.message_create(
        conversation=conversation,
        role=MessageRole.CUSTOMER,
        text=text,
        client_message_id=client_message_id,
        attachment=attachment,
        broadcast=not defer,
    )
    # The assistant reads text: a file waits for a person (staff see it in the transcript).
    answers = (
        attachment is None
        and conversation.status == Conversation.Status.OPEN
        and (created or assistant_reply_for(message) is None)
    )
    if created and defer and not answers:  # a person took the chat meanwhile: announce it now
        message_broadcast_on_commit(message, organization_id)
    return CustomerMessageReceived(
        message=message, created=created, assistant_answers=answers, broadcast_deferred=created and defer and answers
    )


def assistant_reply_for(message: Any) -> Any:
    """The bot message answering this customer message, if one was stored."""
    from tickets.models import Message, MessageRole

    return Message.objects.filter(
        conversation_id=message.conversation_id, role=MessageRole.BOT, metadata__in_reply_to=message.seq
    ).first()


def assistant_reply(*, message_id: int, announce_customer_message: bool = False) -> Any:
    """Answer one stored customer message: sentiment on the message, a bot reply with its
    metadata, and an escalation when the pipeline decides so. Returns the bot message, or
    None when a person has taken the conversation over (the bot then stays quiet).

    ``announce_customer_message``: the customer's message was not broadcast yet (see
    ``customer_message_receive``); it goes out with the reply, or alone when there is none."""
    from agents.pipeline import ConversationContext, run_pipeline
    from tickets import services as desk
    from tickets.models import Conversation, Message, MessageRole, SentimentRecord

    message = Message.objects.select_related("conversation__customer", "conversation__organization").get(pk=message_id)
    conversation = message.conversation
    announce = [message] if announce_customer_message else []
    if conversation.status != Conversation.Status.OPEN:
        messages_broadcast_on_commit(announce, conversation.organization_id)
        return None
    previous_scores = list(
        SentimentRecord.objects.filter(message__conversation=conversation, message__seq__lt=message.seq)
        .order_by("message__seq")
        .values_list("score", flat=True)
    )
    fallbacks = 0
    for metadata in (
        Message.objects.filter(conversation=conversation, role=MessageRole.BOT, seq__lt=message.seq)
        .order_by("-seq")
        .values_list("metadata", flat=True)[:3]
    ):
        if (metadata or {}).get("answered", True):
            break
        fallbacks += 1
    context = ConversationContext(
        organization_id=conversation.organization_id,
        organization_name=conversation.organization.name,
        vip_tier=conversation.customer.vip_tier,
        previous_scores=previous_scores,
        previous_fallbacks=fallbacks,
    )
    state = run_pipeline(message.text, context)
    metadata = {
        "intent": state["intent"],
        "confidence": state["intent_confidence"],
        "intent_model_version": state["intent_model_version"],
        "language": state["language"],
        "sentiment": state["sentiment"],
        "sentiment_trend": state["sentiment_trend"],
        "retrieval_confidence": state["retrieval_confidence"],
        "sources": state["sources"],
        "answered": state["answered"],
        "generated": state.get("generated", False),
        "handoff": state["handoff"],
        "escalation_reasons": state["escalation_reasons"],
        "timings_ms": state["timings_ms"],
        "in_reply_to": message.seq,
    }
    with transaction.atomic():
        # One reply per customer message: a retried turn, or two deliveries racing, find the
        # stored reply here (the conversation row lock orders them) and store nothing new.
        Conversation.objects.select_for_update().only("pk").get(pk=conversation.pk)
        answered = assistant_reply_for(message)
        if answered is not None:
            messages_broadcast_on_commit(announce, conversation.organization_id)
            return answered
        desk.message_sentiment_record(message=message, score=max(-1.0, min(1.0, state["sentiment"])))
        reply, _ = desk.message_create(
            conversation=conversation, role=MessageRole.BOT, text=state["reply"], metadata=metadata, broadcast=False
        )
        messages_broadcast_on_commit([*announce, reply], conversation.organization_id)
        if state["handoff"]:
            desk.conversation_escalate(
                conversation=conversation,
                reason=", ".join(state["escalation_reasons"]),
                intent=state["intent"],
                sentiment=state["sentiment"],
            )
        # In the reply's own transaction: one commit (and one disk flush) a turn fewer, and the
        # decision is recorded exactly when the reply is. The organization's chain lock is taken
        # last, so it is held only for the insert and the commit.
        audit_record(
            organization_id=conversation.organization_id,
            action="ai.decision",
            actor="assistant",
            object_type="message",
            object_id=reply.pk,
            data={
                "conversation": conversation.pk,
                "in_reply_to": message.seq,
                **{key: metadata[key] for key in AUDITED_DECISION},
                "sources": [{k: s.get(k) for k in ("article_id", "title", "url")} for s in metadata["sources"]],
            },
        )
    chat_turn_observe(metadata)
    sentiment_observe(desk.sentiment_label_for(max(-1.0, min(1.0, state["sentiment"]))))
    with conversation_context(conversation.pk):
        logger.info("bot turn: intent=%s answered=%s handoff=%s", state["intent"], state["answered"], state["handoff"])
    return reply


# --- sentiment models --------------------------------------------------------------------

SENTIMENT_LABELS = frozenset({"negative", "neutral", "positive"})


def sentiment_model_train(
    *, language: str, rows: list[tuple[str, str]], source: str = "", activate: bool = True
) -> Any:
    """Train a classifier on (text, label) rows; its figures come from every fifth row held back."""
    from agents.models import SentimentModel
    from agents.sentiment import sentiment_evaluate

    unknown = {label for _, label in rows} - SENTIMENT_LABELS
    if unknown:
        raise DomainError(f"Sentiment labels are negative, neutral and positive, not {', '.join(sorted(unknown))}.")
    if len({label for _, label in rows}) < 2 or len(rows) < 20:
        raise DomainError("Training needs at least 20 rows of at least two labels.")
    held = rows[4::HOLDOUT_EVERY]
    kept = [row for n, row in enumerate(rows) if n % HOLDOUT_EVERY != 4]
    trial = IntentClassifier(threshold=0.0).fit([t for t, _ in kept], [label for _, label in kept])
    metrics = sentiment_evaluate(held, model=trial)
    classifier = IntentClassifier(threshold=0.0).fit([t for t, _ in rows], [label for _, label in rows])
    with transaction.atomic():
        latest = SentimentModel.objects.select_for_update().filter(language=language).aggregate(v=Max("version"))
        model = SentimentModel.objects.create(
            language=language,
            version=(latest["v"] or 0) + 1,
            labels=classifier.labels,
            examples=len(rows),
            metrics=metrics,
            source=source[:250],
            blob=classifier.dumps(),
        )
        if activate:
            SentimentModel.objects.filter(language=language, is_active=True).update(is_active=False)
            SentimentModel.objects.filter(pk=model.pk).update(is_active=True)
            model.is_active = True
            _serving_model_changed()
    return model
