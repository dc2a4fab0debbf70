"""Intent training and model versions, and the assistant's turn: run the pipeline on a customer
message, store the reply (and escalate when the pipeline says so)."""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Max

from agents.active_models import active_models_forget
from agents.datasets import labelled_rows
from agents.intents import OUT_OF_SCOPE_LABELS, IntentClassifier, evaluate
from agents.models import ExperimentAssignment, IntentExample, IntentModel, held_back_for
from config.errors import DomainError
from monitoring.context import conversation_context
from monitoring.metrics import chat_turn_observe, sentiment_observe
from tenancy.audit import audit_record
from tenancy.models import Organization
from tickets.selectors import bot_reply_to, conversation_lock, message_with_conversation, turns_before
from tickets.transport import message_broadcast_on_commit, messages_broadcast_on_commit

logger = logging.getLogger(__name__)

MIN_EXAMPLES_PER_INTENT = 3
HOLDOUT_EVERY = 5
RECENT_TURNS = 8  # earlier messages the assistant reads to understand a follow-up


@transaction.atomic
def intent_examples_import(*, organization: Organization, rows: list[tuple[str, str]]) -> int:
    """Add (text, intent) examples; repeats are skipped. Returns how many were new."""
    created = 0
    for text, intent in rows:
        text, intent = (text or "").strip()[:500], (intent or "").strip()
        if not text or not intent:
            raise DomainError("Every example needs a text and an intent.")
        _, made = IntentExample.objects.get_or_create(
            organization=organization, intent=intent, text=text, defaults={"held_back": held_back_for(text)}
        )
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
    *, organization: Organization, activate: bool = True, actor: Any = None, progress: Any = None
) -> IntentModel:
    """Train a new version on the organization's examples, less the held-back ones, which give
    its figures. Examples of the intent "fallback" (questions the assistant should not answer)
    train a class of their own, so such messages are recognised rather than only unsure."""
    rows = list(IntentExample.objects.filter(organization=organization).values_list("text", "intent", "held_back"))
    kept = [(t, i) for t, i, held in rows if not held]
    counts: dict[str, int] = {}
    for _, intent in kept:
        counts[intent] = counts.get(intent, 0) + 1
    usable = {intent for intent, n in counts.items() if n >= MIN_EXAMPLES_PER_INTENT}
    if len(usable - OUT_OF_SCOPE_LABELS) < 2:
        raise DomainError(
            f"Training needs at least two intents with {MIN_EXAMPLES_PER_INTENT}+ examples each "
            "(held-back examples not counted)."
        )
    kept = [(t, i) for t, i in kept if i in usable]
    held = [(t, i) for t, i, is_held in rows if is_held and (i in usable or i in OUT_OF_SCOPE_LABELS)]
    classifier = IntentClassifier().fit([t for t, _ in kept], [i for _, i in kept], progress=progress)
    metrics = evaluate(classifier, [t for t, _ in held], [i for _, i in held]).as_dict() if held else {}
    with transaction.atomic():
        Organization.objects.select_for_update().get(pk=organization.pk)
        version = (IntentModel.objects.filter(organization=organization).aggregate(v=Max("version"))["v"] or 0) + 1
        model = IntentModel.objects.create(
            organization=organization,
            version=version,
            intents=sorted(usable - OUT_OF_SCOPE_LABELS),
            examples=len(kept),
            metrics=metrics,
            threshold=classifier.threshold,
            blob=classifier.dumps(),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        if activate or not IntentModel.objects.filter(organization=organization, is_active=True).exists():
            intent_model_activate(model=model, actor=actor, override=True, reason="trained")
    return model


def serving_model_changed() -> None:
    """This process reads the active rows again now (for its own transaction) and after commit."""
    active_models_forget()
    transaction.on_commit(active_models_forget)


def intent_models_compare(*, organization: Organization, candidate: IntentModel) -> dict[str, Any] | None:
    """The candidate's and the active version's accuracy on the organization's held-back
    examples today (both measured now: examples change between trainings); None when there is
    no other active version or nothing is held back."""
    active = IntentModel.objects.filter(organization=organization, is_active=True).exclude(pk=candidate.pk).first()
    rows = list(IntentExample.objects.filter(organization=organization, held_back=True).values_list("text", "intent"))
    if active is None or not rows:
        return None
    texts, labels = [t for t, _ in rows], [i for _, i in rows]
    scores = {}
    for name, model in (("candidate", candidate), ("active", active)):
        classifier = IntentClassifier.loads(bytes(model.blob))
        scores[name] = evaluate(classifier, texts, labels, latency_sample=0).accuracy
    return {"examples": len(rows), "active_version": active.version, **scores}


@transaction.atomic
def intent_model_activate(
    *, model: IntentModel, actor: Any = None, override: bool = False, reason: str = "activated"
) -> IntentModel:
    """Make this version the one that answers (activation and roll-back alike). A version that
    scores worse on the held-back examples than the active one is refused unless ``override``."""
    comparison = intent_models_compare(organization=model.organization, candidate=model)
    if comparison and comparison["candidate"] < comparison["active"] and not override:
        raise DomainError(
            f"v{model.version} scores {comparison['candidate']:.3f} on the {comparison['examples']} held-back "
            f"examples, below the active v{comparison['active_version']}'s {comparison['active']:.3f}; "
            "activate it with the override to do so anyway."
        )
    IntentModel.objects.filter(organization_id=model.organization_id, is_active=True).exclude(pk=model.pk).update(
        is_active=False
    )
    # Write from the row, not the instance: a caller's copy may say "active" from before.
    IntentModel.objects.filter(pk=model.pk).update(is_active=True)
    model.is_active = True
    audit_record(
        organization_id=model.organization_id,
        action="model.activated",
        actor=actor,
        object_type="intent_model",
        object_id=model.pk,
        data={"kind": "intent", "version": model.version, "reason": reason, "override": override,
              "held_back": comparison},
    )  # fmt: skip
    serving_model_changed()
    return model


# --- the assistant's turn --------------------------------------------------------------------


AUDITED_DECISION = (
    "intent",
    "confidence",
    "intent_model_version",
    "language",
    "sentiment",
    "sentiment_engine",
    "tests",
    "retrieval_confidence",
    "answered",
    "generated",
    "llm",
    "handoff",
    "escalation_reasons",
    "action",
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
    with transaction.atomic():
        # The conversation row read once, under the lock its next sequence number needs.
        conversation = conversation_lock(conversation_id=conversation_id, organization_id=organization_id)
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
            under_lock=True,
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
    return bot_reply_to(conversation_id=message.conversation_id, seq=message.seq)


def assistant_reply(*, message_id: int, announce_customer_message: bool = False) -> Any:
    """Answer one stored customer message: sentiment on the message, a bot reply with its
    metadata, and an escalation when the pipeline decides so. Returns the bot message, or
    None when a person has taken the conversation over (the bot then stays quiet).

    ``announce_customer_message``: the customer's message was not broadcast yet (see
    ``customer_message_receive``); it goes out with the reply, or alone when there is none."""
    from agents.actions.calls import CustomerFacts
    from agents.dialog import Turn
    from agents.pipeline import REHEARSING, ConversationContext, run_pipeline
    from tickets import services as desk
    from tickets.attachments import attachments_none_known
    from tickets.models import Conversation, MessageRole

    message = message_with_conversation(message_id=message_id)
    conversation = message.conversation
    announce = [message] if announce_customer_message else []
    if announce_customer_message:  # deferred only for messages without a file
        attachments_none_known(message)
    if conversation.status != Conversation.Status.OPEN:
        messages_broadcast_on_commit(announce, conversation.organization_id)
        return None
    earlier = turns_before(conversation_id=conversation.pk, seq=message.seq, count=RECENT_TURNS)
    # The mood of the customer's recent messages (the trend reads the last three), read with
    # them: a query a turn fewer, and one that no longer reads the whole conversation's scores.
    previous_scores = [
        turn.sentiment_score
        for turn in earlier
        if turn.role == MessageRole.CUSTOMER and turn.sentiment_score is not None
    ]
    # A reply records the question it answered (resolved against the turns before it).
    resolved = {
        turn.metadata.get("in_reply_to"): str(turn.metadata.get("resolved_query", ""))
        for turn in earlier
        if turn.role == MessageRole.BOT and turn.metadata
    }
    recent = [
        Turn(
            role=str(turn.role),
            text=turn.text,
            resolved=resolved.get(turn.seq, "") if turn.role == MessageRole.CUSTOMER else "",
            intent=str((turn.metadata or {}).get("intent", "")) if turn.role == MessageRole.BOT else "",
        )
        for turn in earlier
    ]
    last_bot = next((turn for turn in reversed(earlier) if turn.role == MessageRole.BOT), None)
    asked = (last_bot.metadata or {}).get("action") if last_bot is not None else None
    pending = (
        (str(asked["name"]), str(asked["missing"][0]))
        if isinstance(asked, dict) and asked.get("status") == "needs_input" and asked.get("missing")
        else None
    )
    customer = conversation.customer
    fallbacks = 0
    for turn in reversed(earlier):
        if turn.role != MessageRole.BOT:
            continue
        if (turn.metadata or {}).get("answered", True):
            break
        fallbacks += 1
    context = ConversationContext(
        organization_id=conversation.organization_id,
        organization_name=conversation.organization.name,
        vip_tier=conversation.customer.vip_tier,
        previous_scores=previous_scores,
        previous_fallbacks=fallbacks,
        conversation_id=conversation.pk,
        recent=recent,
        customer=CustomerFacts(
            identified=bool(customer.external_id),
            external_id=customer.external_id,
            email=customer.email,
            name=customer.name,
        ),
        pending_action=pending,
    )
    state = run_pipeline(message.text, context)
    metadata = {
        "intent": state["intent"],
        "confidence": state["intent_confidence"],
        "intent_model_version": state["intent_model_version"],
        "language": state["language"],
        "sentiment": state["sentiment"],
        "sentiment_trend": state["sentiment_trend"],
        "sentiment_engine": state["sentiment_engine"],
        "tests": state["tests"],
        "retrieval_confidence": state["retrieval_confidence"],
        "sources": state["sources"],
        "answered": state["answered"],
        "generated": state.get("generated", False),
        "llm": state.get("llm", "off"),
        "llm_unsupported": state.get("llm_unsupported", []),
        "handoff": state["handoff"],
        "escalation_reasons": state["escalation_reasons"],
        "timings_ms": state["timings_ms"],
        "in_reply_to": message.seq,
        "resolved_query": state["query"],
        "entities": state["entities"],
        "policy": state.get("policy", "answer"),
        "action": state.get("action"),
        "profile": state.get("profile", ""),
    }
    mood = max(-1.0, min(1.0, state["sentiment"]))  # the message's score, as recorded
    with transaction.atomic():
        # One reply per customer message: a retried turn, or two deliveries racing, find the
        # stored reply here (the conversation row lock orders them) and store nothing new.
        locked = conversation_lock(conversation_id=conversation.pk, organization_id=conversation.organization_id)
        answered = assistant_reply_for(message)
        if answered is not None:
            messages_broadcast_on_commit(announce, conversation.organization_id)
            return answered
        # The turn's writes share this one transaction, without savepoints (nothing here
        # catches an error halfway through).
        # The conversation's new mood is written with the reply's sequence number (one UPDATE).
        desk.message_sentiment_record(message=message, score=mood, savepoint=False, conversation=locked)
        reply, _ = desk.message_create(
            conversation=locked, role=MessageRole.BOT, text=state["reply"], metadata=metadata, broadcast=False,
            under_lock=True, update_fields=desk.MOOD_FIELDS,
        )  # fmt: skip
        conversation.last_seq = locked.last_seq
        messages_broadcast_on_commit([*announce, reply], conversation.organization_id)
        if state["tests"]:
            ExperimentAssignment.objects.bulk_create(
                [
                    ExperimentAssignment(experiment_id=pk, conversation=conversation, arm=arm)
                    for pk, arm in state["tests"]
                ],
                ignore_conflicts=True,
            )
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
            savepoint=False,
            data={
                "conversation": conversation.pk,
                "in_reply_to": message.seq,
                **{key: metadata[key] for key in AUDITED_DECISION},
                "sources": [{k: s.get(k) for k in ("article_id", "title", "url")} for s in metadata["sources"]],
            },
        )
    if REHEARSING.get():  # a turn that never happened: no metric, no "bot turn" log line
        return reply
    chat_turn_observe(metadata)
    sentiment_observe(desk.sentiment_label_for(mood))
    with conversation_context(conversation.pk):
        logger.info("bot turn: intent=%s answered=%s handoff=%s", state["intent"], state["answered"], state["handoff"])
    return reply


REHEARSAL_TEXT = "hello, when will my order arrive?"


def assistant_rehearse(*, organization_id: int) -> None:
    """One whole chat turn of this organization through the services, rolled back. A fresh web
    worker runs it at boot, so its first customer does not pay for the turn's first run (the
    first pass through the services, the ORM and the reply's writes): in bench/cold_start.py the
    first turn took 84 ms against 47 ms for those after it. Nothing of it stays: its rows go with
    the transaction, and the broadcasts and tasks queued for the commit with them; it calls no
    organization's system, asks no LLM (``pipeline.REHEARSING``), counts in no metric and logs no
    "bot turn" line. With statements prepared (``DATABASE_PREPARED``) the turn is rehearsed as
    many times as a statement runs before it is prepared (three), each rolled back keeping them
    (``config.compiled.prepared_kept``): the first customer's turn runs them prepared, as every
    later one does. The organization's chat rate limit in Redis does count the rehearsed messages
    (a web worker rehearses on each of its turn threads: ``turns.turn_threads_warm``)."""
    from agents.pipeline import REHEARSING
    from config.compiled import prepared_kept

    organization = Organization.objects.get(pk=organization_id)
    token = REHEARSING.set(True)
    try:
        with prepared_kept() as runs:
            times = max(1, runs)  # once where nothing is prepared
            for _ in range(times):
                _rehearse_once(organization)
    finally:
        REHEARSING.reset(token)
    logger.info("rehearsed one chat turn of organization %s, %d times (rolled back)", organization_id, times)


def _rehearse_once(organization: Organization) -> None:
    from tickets import services as desk

    with transaction.atomic():
        customer = desk.customer_create(organization=organization, name="rehearsal")
        conversation = desk.conversation_start(customer=customer)
        received = customer_message_receive(
            conversation_id=conversation.pk,
            organization_id=organization.pk,
            text=REHEARSAL_TEXT,
            client_message_id="rehearsal",
            defer_broadcast=True,
        )
        assistant_reply(message_id=received.message.pk, announce_customer_message=received.broadcast_deferred)
        transaction.set_rollback(True)
