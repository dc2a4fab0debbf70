"""A/B tests of model versions: start one, read how its arms compare, promote the candidate or
roll back. Every change is in the audit trail. Serving reads the running tests through
agents.active_models; this module changes them.

The arms are compared on the conversations answered within the test:
- fallback rate: the assistant's turns that could not answer;
- handoff rate: conversations the assistant handed to a person;
- CSAT: the customers' mean rating (1-5) and how many rated;
- resolution rate: conversations resolved, by the assistant (ended with no handoff) or by staff
  (every ticket of theirs resolved or closed)."""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Avg, Count, Exists, OuterRef, Q
from django.utils import timezone

from agents.models import (
    ExperimentArm,
    ExperimentAssignment,
    IntentModel,
    ModelExperiment,
    ModelKind,
    SentimentModel,
)
from config.errors import DomainError
from tenancy.audit import audit_record
from tenancy.models import Organization


def _candidate_row(organization: Organization, kind: str, version: int, language: str) -> Any:
    if kind == ModelKind.INTENT:
        return IntentModel.objects.filter(organization=organization, version=version).first()
    # A sentiment candidate: the organization's own version, else the operator's.
    rows = SentimentModel.objects.filter(language=language, version=version)
    return rows.filter(organization=organization).first() or rows.filter(organization__isnull=True).first()


def _active_version(organization: Organization, kind: str, language: str) -> int | None:
    if kind == ModelKind.INTENT:
        return (
            IntentModel.objects.filter(organization=organization, is_active=True)
            .values_list("version", flat=True)
            .first()
        )
    rows = SentimentModel.objects.filter(language=language, is_active=True)
    own = rows.filter(organization=organization).values_list("version", flat=True).first()
    return own if own is not None else rows.filter(organization__isnull=True).values_list("version", flat=True).first()


@transaction.atomic
def experiment_start(
    *, organization: Organization, kind: str, candidate_version: int, share: int, language: str = "", actor: Any = None
) -> ModelExperiment:
    """Send ``share`` percent of new and ongoing conversations to the candidate version."""
    from agents.active_models import active_models_forget

    if kind not in ModelKind.values:
        raise DomainError(f"A test compares intent or sentiment models, not {kind!r}.")
    if not 1 <= share <= 99:
        raise DomainError("The candidate's share is a percentage from 1 to 99.")
    if kind == ModelKind.SENTIMENT and not language:
        raise DomainError("A sentiment test needs the language of the messages it scores.")
    Organization.objects.select_for_update().only("pk").get(pk=organization.pk)
    if ModelExperiment.objects.filter(
        organization=organization, kind=kind, status=ModelExperiment.Status.RUNNING
    ).exists():
        raise DomainError(f"An A/B test of {kind} models is already running: promote or roll it back first.")
    candidate = _candidate_row(organization, kind, candidate_version, language)
    if candidate is None:
        raise DomainError(f"There is no {kind} model v{candidate_version} to test.")
    control = _active_version(organization, kind, language)
    if control == candidate_version:
        raise DomainError(f"v{candidate_version} is already the active {kind} model.")
    experiment = ModelExperiment.objects.create(
        organization=organization,
        kind=kind,
        language=language if kind == ModelKind.SENTIMENT else "",
        candidate_version=candidate_version,
        control_version=control,
        share=share,
        started_by=actor if getattr(actor, "pk", None) else None,
    )
    audit_record(
        organization_id=organization.pk,
        action="model.experiment_started",
        actor=actor,
        object_type="model_experiment",
        object_id=experiment.pk,
        data={"kind": kind, "language": experiment.language, "candidate": candidate_version, "control": control,
              "share": share},
    )  # fmt: skip
    active_models_forget()
    transaction.on_commit(active_models_forget)
    return experiment


def _end(experiment: ModelExperiment, status: str, actor: Any, action: str, data: dict[str, Any]) -> ModelExperiment:
    from agents.active_models import active_models_forget

    locked = ModelExperiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != ModelExperiment.Status.RUNNING:
        raise DomainError(f"This test has ended already ({locked.get_status_display().lower()}).")
    locked.status, locked.ended_at = status, timezone.now()
    locked.save(update_fields=["status", "ended_at"])
    audit_record(
        organization_id=locked.organization_id,
        action=action,
        actor=actor,
        object_type="model_experiment",
        object_id=locked.pk,
        data={"kind": locked.kind, "candidate": locked.candidate_version, "control": locked.control_version,
              "report": experiment_report(locked), **data},
    )  # fmt: skip
    active_models_forget()
    transaction.on_commit(active_models_forget)
    return locked


@transaction.atomic
def experiment_promote(*, experiment: ModelExperiment, actor: Any = None, override: bool = False) -> ModelExperiment:
    """End the test and make the candidate the active version. The activation guard applies:
    a candidate that scores worse on the held-back examples needs ``override``."""
    from agents.sentiment_models import sentiment_model_activate
    from agents.services import intent_model_activate

    organization = experiment.organization
    candidate = _candidate_row(organization, experiment.kind, experiment.candidate_version, experiment.language)
    if candidate is None:
        raise DomainError(f"The candidate v{experiment.candidate_version} no longer exists.")
    if experiment.kind == ModelKind.INTENT:
        intent_model_activate(model=candidate, actor=actor, override=override)
    else:
        if candidate.organization_id is None and actor is not None and not getattr(actor, "is_superuser", False):
            raise DomainError(
                "The operator's sentiment models serve every organization: only the operator can promote one. "
                "Roll this test back, or test a version trained on your own corrections."
            )
        sentiment_model_activate(model=candidate, actor=actor, override=override, organization=organization)
    return _end(experiment, ModelExperiment.Status.PROMOTED, actor, "model.experiment_promoted", {"override": override})


@transaction.atomic
def experiment_roll_back(*, experiment: ModelExperiment, actor: Any = None) -> ModelExperiment:
    """End the test; every conversation is answered by the active version again."""
    return _end(experiment, ModelExperiment.Status.ROLLED_BACK, actor, "model.experiment_rolled_back", {})


@dataclass
class ArmFigures:
    arm: str
    version: int | None
    conversations: int
    bot_turns: int
    fallback_rate: float | None
    handoff_rate: float | None
    csat_mean: float | None
    csat_responses: int
    resolution_rate: float | None

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def experiment_report(experiment: ModelExperiment) -> dict[str, dict[str, Any]]:
    """The arms side by side: ``{"control": {...}, "candidate": {...}}`` (ArmFigures)."""
    from tickets.models import Conversation, Message, MessageRole, Ticket, TicketStatus

    figures: dict[str, dict[str, Any]] = {}
    for arm, version in (
        (ExperimentArm.CONTROL, experiment.control_version),
        (ExperimentArm.CANDIDATE, experiment.candidate_version),
    ):
        ids = ExperimentAssignment.objects.filter(experiment=experiment, arm=arm).values("conversation_id")
        turns = Message.objects.filter(
            conversation_id__in=ids, role=MessageRole.BOT, created_at__gte=experiment.started_at
        )
        turn_counts = turns.aggregate(
            total=Count("pk"),
            fallbacks=Count("pk", filter=Q(metadata__answered=False)),
        )
        handed = turns.filter(metadata__handoff=True).values("conversation_id").distinct().count()
        conversations = Conversation.objects.filter(pk__in=ids)
        open_tickets = Ticket.objects.filter(conversation=OuterRef("pk")).exclude(
            status__in=[TicketStatus.RESOLVED, TicketStatus.CLOSED]
        )
        any_ticket = Ticket.objects.filter(conversation=OuterRef("pk"))
        counted = conversations.aggregate(
            total=Count("pk"),
            rated=Count("pk", filter=Q(csat_score__isnull=False)),
            csat=Avg("csat_score"),
        )
        resolved = (
            conversations.annotate(has_ticket=Exists(any_ticket), has_open=Exists(open_tickets))
            .filter(Q(has_ticket=False, status=Conversation.Status.ENDED) | Q(has_ticket=True, has_open=False))
            .count()
        )
        figures[arm] = ArmFigures(
            arm=arm,
            version=version,
            conversations=counted["total"],
            bot_turns=turn_counts["total"],
            fallback_rate=_rate(turn_counts["fallbacks"], turn_counts["total"]),
            handoff_rate=_rate(handed, counted["total"]),
            csat_mean=round(counted["csat"], 2) if counted["csat"] is not None else None,
            csat_responses=counted["rated"],
            resolution_rate=_rate(resolved, counted["total"]),
        ).as_dict()
    return figures
