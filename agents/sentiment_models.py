"""Sentiment models: staff corrections, training (an organization's own or the operator's), held-back
examples and guarded activation."""

import logging
from typing import Any

from django.db import transaction
from django.db.models import Max

from agents.intents import IntentClassifier
from agents.models import held_back_for
from agents.services import HOLDOUT_EVERY, serving_model_changed
from config.errors import DomainError
from tenancy.audit import audit_record
from tenancy.models import Organization

logger = logging.getLogger(__name__)


SENTIMENT_LABELS = frozenset({"negative", "neutral", "positive"})


def sentiment_corrections(*, organization: Organization, language: str) -> list[tuple[str, str, bool]]:
    """(text, label, held back) for the organization's customer messages whose sentiment staff
    corrected, in this language."""
    from agents.language import detect_language
    from tickets.models import SentimentRecord

    records = SentimentRecord.objects.filter(
        message__conversation__organization=organization, message__role="customer"
    ).exclude(corrected_label="")
    rows = []
    for text, label in records.values_list("message__text", "corrected_label"):
        if detect_language(text) == language:
            rows.append((text, label, held_back_for(text)))
    return rows


def sentiment_model_train(
    *,
    language: str,
    rows: list[tuple[str, str]],
    source: str = "",
    activate: bool = True,
    organization: Organization | None = None,
    held: list[tuple[str, str]] | None = None,
    progress: Any = None,
) -> Any:
    """Train a classifier on (text, label) rows: the operator's for every organization, or an
    organization's own. Its figures come from ``held`` (rows never trained on), or from every
    fifth row held back from a trial model when none are given."""
    from agents.models import SentimentModel
    from agents.sentiment import sentiment_evaluate

    unknown = {label for _, label in [*rows, *(held or [])]} - SENTIMENT_LABELS
    if unknown:
        raise DomainError(f"Sentiment labels are negative, neutral and positive, not {', '.join(sorted(unknown))}.")
    if len({label for _, label in rows}) < 2 or len(rows) < 20:
        raise DomainError("Training needs at least 20 rows of at least two labels.")
    if held:
        classifier = IntentClassifier(threshold=0.0, knn_weight=0.0).fit(
            [t for t, _ in rows], [label for _, label in rows], progress=progress
        )
        metrics = sentiment_evaluate(held, model=classifier)
    else:
        held = rows[4::HOLDOUT_EVERY]
        kept = [row for n, row in enumerate(rows) if n % HOLDOUT_EVERY != 4]
        trial = IntentClassifier(threshold=0.0, knn_weight=0.0).fit([t for t, _ in kept], [label for _, label in kept])
        metrics = sentiment_evaluate(held, model=trial)
        classifier = IntentClassifier(threshold=0.0, knn_weight=0.0).fit(
            [t for t, _ in rows], [label for _, label in rows], progress=progress
        )
    with transaction.atomic():
        same = SentimentModel.objects.select_for_update().filter(language=language, organization=organization)
        model = SentimentModel.objects.create(
            organization=organization,
            language=language,
            version=(same.aggregate(v=Max("version"))["v"] or 0) + 1,
            labels=classifier.labels,
            examples=len(rows),
            metrics=metrics,
            source=source[:250],
            blob=classifier.dumps(),
        )
        if activate:
            sentiment_model_activate(model=model, override=True, reason="trained")
    return model


def _sentiment_held_back(organization: Organization | None, language: str) -> list[tuple[str, str]]:
    if organization is None:
        return []
    return [
        (t, label) for t, label, held in sentiment_corrections(organization=organization, language=language) if held
    ]


@transaction.atomic
def sentiment_model_activate(
    *,
    model: Any,
    actor: Any = None,
    override: bool = False,
    reason: str = "activated",
    organization: Organization | None = None,
) -> Any:
    """Make this sentiment version the active one for its scope (its organization, or every
    organization for the operator's). A version that scores worse (macro recall) than the one
    serving ``organization`` on that organization's held-back corrected messages is refused
    unless ``override``."""
    from agents.active_models import active_sentiment_model
    from agents.models import SentimentModel
    from agents.sentiment import sentiment_evaluate

    organization = organization or model.organization
    comparison = None
    held = _sentiment_held_back(organization, model.language)
    if held and len({label for _, label in held}) >= 2:
        current, version = active_sentiment_model(model.language, organization.pk if organization else None)
        if current is not None and version != model.version:
            candidate = IntentClassifier.loads(bytes(model.blob))
            comparison = {
                "examples": len(held),
                "active_version": version,
                "candidate": sentiment_evaluate(held, model=candidate)["macro_recall"],
                "active": sentiment_evaluate(held, model=current)["macro_recall"],
            }
            if comparison["candidate"] < comparison["active"] and not override:
                raise DomainError(
                    f"{model.language} v{model.version} scores {comparison['candidate']:.3f} (macro recall) on the "
                    f"{len(held)} held-back corrected messages, below the active v{version}'s "
                    f"{comparison['active']:.3f}; activate it with the override to do so anyway."
                )
    SentimentModel.objects.filter(language=model.language, organization=model.organization, is_active=True).exclude(
        pk=model.pk
    ).update(is_active=False)
    SentimentModel.objects.filter(pk=model.pk).update(is_active=True)
    model.is_active = True
    if organization is not None:
        audit_record(
            organization_id=organization.pk,
            action="model.activated",
            actor=actor,
            object_type="sentiment_model",
            object_id=model.pk,
            data={"kind": "sentiment", "language": model.language, "version": model.version, "reason": reason,
                  "override": override, "held_back": comparison},
        )  # fmt: skip
    serving_model_changed()
    return model
