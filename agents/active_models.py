"""The trained models that serve now: an organization's active intent model, the sentiment
model for a message's language (the organization's own, else the operator's, else the one
shipped with Concierge), and, while an A/B test runs, the candidate version for the
conversations in its arm. Each version is loaded once per process. Which rows are active and
which tests run is read at most once every ACTIVE_CHECK_SECONDS per process (a query per chat
turn was a tenth of the turn's database work): a change made in this process serves from the
next message, one made in another process (admin, a command) within those seconds; in a web
worker, where PostgreSQL announces changes (config.changes), a value is kept until a change of
its organization is announced, so a turn after a quiet spell does not read them all again.
Loading happens beside the old model, which keeps serving until the new one is ready.

Reading only: training, activation and tests are agents.services and agents.experiments; the
pipeline reads from here."""

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q

from agents.intents import IntentClassifier
from agents.models import IntentModel, ModelExperiment, ModelKind, SentimentModel, experiment_arm
from config import changes

ACTIVE_CHECK_SECONDS = 2.0

# (kind, pk) -> the loaded model; versions are immutable, so a pk never needs loading twice.
_loaded: dict[tuple[str, int], Any] = {}
_loaded_lock = threading.Lock()
_loading: dict[tuple[str, int], threading.Lock] = {}  # held while a version loads
_served: dict[tuple[str, Any], tuple[int, int]] = {}  # (kind, key) -> (pk, version) answering last
# what a query found, and when: (kind, key) -> (checked at, value, config.changes token)
_checked: dict[tuple[str, Any], tuple[float, Any, tuple[int, int]]] = {}


def active_models_forget() -> None:
    """Read the active rows and running tests again on the next message (called when this
    process activates a version or starts or ends a test)."""
    _checked.clear()


def models_unload() -> None:
    """Drop every loaded version (tests: a database recreated between tests reuses ids)."""
    _loaded.clear()
    _served.clear()


def _recent(kind: str, key: Any, read: Callable[[], Any]) -> Any:
    organization_id = key[0] if isinstance(key, tuple) else key
    checked = _checked.get((kind, key))
    if checked is not None and changes.still_good(checked[0], ACTIVE_CHECK_SECONDS, organization_id, checked[2]):
        return checked[1]
    now = time.monotonic()
    since = changes.token(organization_id)
    value = read()
    _checked[(kind, key)] = (now, value, since)
    return value


def recent_read(kind: str, key: Any, read: Callable[[], Any]) -> Any:
    """``read()``'s value, read again at most every ACTIVE_CHECK_SECONDS per process."""
    return _recent(kind, key, read)


def _load(kind: str, model: type[Any], pk: int, version: int, key: Any = None) -> tuple[Any, int]:
    """(the loaded model of row ``pk``, its version). A version is loaded by one thread while the
    others keep answering with the version ``key`` served before (load beside, then swap): a new
    version never stalls live chats. With nothing served before, they wait for it."""
    cached = _loaded.get((kind, pk))
    if cached is None:
        with _loaded_lock:
            lock = _loading.setdefault((kind, pk), threading.Lock())
        before = _served.get((kind, key)) if key is not None else None
        previous = _loaded.get((kind, before[0])) if before else None
        if not lock.acquire(blocking=previous is None):
            assert before is not None
            return previous, before[1]  # another thread is loading the new version
        try:
            cached = _loaded.get((kind, pk))
            if cached is None:
                blob = model.objects.values_list("blob", flat=True).get(pk=pk)
                cached = _loaded[(kind, pk)] = IntentClassifier.loads(bytes(blob))
        finally:
            lock.release()
    if key is not None:
        _served[(kind, key)] = (pk, version)
    return cached, version


@dataclass(frozen=True)
class RunningTest:
    pk: int
    share: int
    candidate_pk: int | None  # None: the candidate row is gone; the control serves everyone
    version: int


def _running_test(organization_id: int, kind: str, language: str = "") -> RunningTest | None:
    def read() -> RunningTest | None:
        row = (
            ModelExperiment.objects.filter(
                organization_id=organization_id, kind=kind, status=ModelExperiment.Status.RUNNING
            )
            .values("pk", "share", "candidate_version", "language")
            .first()
        )
        if row is None or (kind == ModelKind.SENTIMENT and row["language"] != language):
            return None
        rows: Any
        if kind == ModelKind.INTENT:
            rows = IntentModel.objects.filter(organization_id=organization_id)
        else:
            rows = SentimentModel.objects.filter(
                Q(organization_id=organization_id) | Q(organization__isnull=True), language=language
            ).order_by("organization_id")  # the organization's own version first
        candidate = rows.filter(version=row["candidate_version"]).values_list("pk", flat=True).first()
        return RunningTest(row["pk"], row["share"], candidate, row["candidate_version"])

    return _recent(f"test-{kind}", (organization_id, language), read)


def _candidate(test: RunningTest | None, conversation_id: int | None) -> tuple[int, str] | None:
    """(test pk, arm) for a conversation in a running test."""
    if test is None or conversation_id is None:
        return None
    return test.pk, experiment_arm(test.pk, test.share, conversation_id)


@dataclass
class Serving:
    model: Any
    version: int | None
    test: tuple[int, str] | None = None  # (A/B test pk, arm) when one decided


def active_intent_classifier(organization_id: int) -> tuple[IntentClassifier | None, int | None]:
    row = _recent(
        "intent",
        organization_id,
        lambda: (
            IntentModel.objects.filter(organization_id=organization_id, is_active=True)
            .values_list("pk", "version")
            .first()
        ),
    )
    if row is None:
        return None, None
    return _load("intent", IntentModel, row[0], row[1], organization_id)


def serving_intent(organization_id: int, conversation_id: int | None = None) -> Serving:
    """The intent model that answers this conversation: the candidate in its arm of a
    running test, else the active one."""
    test = _running_test(organization_id, ModelKind.INTENT)
    placed = _candidate(test, conversation_id)
    if test is not None and placed is not None and placed[1] == "candidate" and test.candidate_pk is not None:
        return Serving(*_load("intent", IntentModel, test.candidate_pk, test.version), placed)
    classifier, version = active_intent_classifier(organization_id)
    return Serving(classifier, version, placed)


def active_sentiment_model(language: str, organization_id: int | None = None) -> tuple[Any, int | None]:
    """The active trained sentiment classifier for a language: the organization's own, else the
    operator's; (None, None) when neither is trained (the shipped model then scores)."""

    def read() -> tuple[int, int] | None:
        rows = SentimentModel.objects.filter(language=language, is_active=True)
        own = None
        if organization_id is not None:
            own = rows.filter(organization_id=organization_id).values_list("pk", "version").first()
        return own or rows.filter(organization__isnull=True).values_list("pk", "version").first()

    row = _recent("sentiment", (organization_id, language), read)
    if row is None:
        return None, None
    return _load("sentiment", SentimentModel, row[0], row[1], (organization_id, language))


def serving_sentiment(language: str, organization_id: int | None = None, conversation_id: int | None = None) -> Serving:
    """The trained sentiment model for this message (the candidate in its arm of a running
    test), or Serving(None, None) when the shipped model or the lexicon should score."""
    if organization_id is not None:
        test = _running_test(organization_id, ModelKind.SENTIMENT, language)
        placed = _candidate(test, conversation_id)
        if test is not None and placed is not None and placed[1] == "candidate" and test.candidate_pk is not None:
            return Serving(*_load("sentiment", SentimentModel, test.candidate_pk, test.version), placed)
    else:
        placed = None
    model, version = active_sentiment_model(language, organization_id)
    return Serving(model, version, placed)


def intent_policies(organization_id: int) -> dict[str, Any]:
    """The organization's own intent policies (agents.dialog.Policy by intent), read at most
    every ACTIVE_CHECK_SECONDS per process; a change saved in this process applies at once."""
    from agents.dialog import Policy
    from agents.models import IntentPolicy

    def read() -> dict[str, Any]:
        rows = IntentPolicy.objects.filter(organization_id=organization_id).values_list(
            "intent", "action", "reply_en", "reply_zh"
        )
        return {
            intent: Policy(action, reply_en, reply_zh, acknowledge=action == "handoff" and intent != "human_request")
            for intent, action, reply_en, reply_zh in rows
        }

    return dict(_recent("policies", organization_id, read))
