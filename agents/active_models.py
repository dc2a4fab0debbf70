"""The trained models that serve now: the one active intent model of an organization and the
one active sentiment model of a language, loaded once per version in each process. A version
activated in another process (admin, a command) is picked up on the next message; loading
happens beside the old model, which keeps serving until the new one is ready.

Reading only: training and activation are agents.services; the pipeline reads from here."""

import threading
from typing import Any

from agents.intents import IntentClassifier
from agents.models import IntentModel, SentimentModel

_loaded: dict[tuple[str, Any], tuple[int, IntentClassifier]] = {}
_loaded_lock = threading.Lock()


def _active_classifier(kind: str, key: Any, rows: Any) -> tuple[IntentClassifier | None, int | None]:
    """The classifier of the one active row in ``rows`` (a queryset of IntentModel or
    SentimentModel) and its version. One small query per call tells whether another process
    activated a different version; only then is the model loaded again."""
    row = rows.filter(is_active=True).values_list("pk", "version").first()
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
