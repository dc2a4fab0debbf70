"""The trained models that serve now: the one active intent model of an organization and the
one active sentiment model of a language, loaded once per version in each process. Which row
is active is read at most once every ACTIVE_CHECK_SECONDS per process (a query per chat turn
was a tenth of the turn's database work): a version activated in this process serves from the
next message, one activated in another process (admin, a command) within those seconds.
Loading happens beside the old model, which keeps serving until the new one is ready.

Reading only: training and activation are agents.services; the pipeline reads from here."""

import threading
import time
from typing import Any

from agents.intents import IntentClassifier
from agents.models import IntentModel, SentimentModel

ACTIVE_CHECK_SECONDS = 2.0

_loaded: dict[tuple[str, Any], tuple[int, IntentClassifier]] = {}
_loaded_lock = threading.Lock()
# (kind, key) -> (checked at, (pk, version) of the active row or None)
_active_rows: dict[tuple[str, Any], tuple[float, tuple[int, int] | None]] = {}


def active_models_forget() -> None:
    """Read the active rows again on the next message (called when this process activates one)."""
    _active_rows.clear()


def _active_classifier(kind: str, key: Any, rows: Any) -> tuple[IntentClassifier | None, int | None]:
    """The classifier of the one active row in ``rows`` (a queryset of IntentModel or
    SentimentModel) and its version. One small query per call tells whether another process
    activated a different version; only then is the model loaded again."""
    now = time.monotonic()
    checked = _active_rows.get((kind, key))
    if checked is not None and now - checked[0] < ACTIVE_CHECK_SECONDS:
        row = checked[1]
    else:
        row = rows.filter(is_active=True).values_list("pk", "version").first()
        _active_rows[(kind, key)] = (now, row)
    if row is None:
        return None, None
    pk, version = row
    cached = _loaded.get((kind, key))
    if cached is None or cached[0] != pk:
        with _loaded_lock:
            cached = _loaded.get((kind, key))
            if cached is None or cached[0] != pk:
                blob = rows.model.objects.values_list("blob", flat=True).get(pk=pk)
                cached = _loaded[(kind, key)] = (pk, IntentClassifier.loads(bytes(blob)))
    return cached[1], version


def active_intent_classifier(organization_id: int) -> tuple[IntentClassifier | None, int | None]:
    return _active_classifier("intent", organization_id, IntentModel.objects.filter(organization_id=organization_id))


def active_sentiment_model(language: str) -> tuple[IntentClassifier | None, int | None]:
    """The active trained sentiment classifier for a language, if any."""
    return _active_classifier("sentiment", language, SentimentModel.objects.filter(language=language))
