"""Per-message sentiment, -1..1, for English and Chinese.

What scores a message (sentiment_engine): a trained model when one is active for its language
(the organization's own, else the operator's), else the model shipped with Concierge
(agents.sentiment_linear, files under agents/shipped/), else the lexicons below. Every engine's
English score is pulled down by the complaint cues.

Lexicons. English: VADER's compound score, corrected by complaint cues. VADER scores "I want a refund
now" as mildly positive: it has no sentiment words. Support conversations are full of such
demands, so each cue (a demand, a failure report, impatience, shouting) pulls the score down.
Chinese: pysenti's lexicon score, squashed into -1..1."""

import logging
import math
import re
import time
from typing import Any

import numpy as np

from agents.language import detect_language
from agents.sentiment_linear import shipped_sentiment
from config.clients import process_client
from knowledge import embeddings

logging.getLogger("jieba").setLevel(logging.WARNING)

_COMPLAINT_CUES = [
    r"\brefund\b",
    r"\bmoney back\b",
    r"\bcancel (my|the|this)\b",
    r"\b(never|still not|hasn'?t|has not|didn'?t|did not|not) "
    r"(arrived?|received?|came|come|work(ed|ing|s)?|delivered)\b",
    r"\b(still|keep) waiting\b",
    r"\bno(body|one) (answers?|replie[sd]|responds?|helps?)\b",
    r"\b(unacceptable|ridiculous|useless|terrible|worst|scam|rip[- ]?off|disgrace(ful)?|furious|fed up)\b",
    r"\b(broken|damaged|defective|faulty|missing|wrong item|charged twice|overcharged)\b",
    r"\b(again|(second|third|fourth) time|how many times)\b",
    r"\b(right )?now\b!*$",
    r"\b(manager|supervisor|complain(t)?)\b",
]
_CUES = [re.compile(p, re.IGNORECASE) for p in _COMPLAINT_CUES]
CUE_WEIGHT = 0.3


@process_client
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def complaint_cues(text: str) -> int:
    hits = sum(1 for cue in _CUES if cue.search(text))
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 8 and sum(c.isupper() for c in letters) / len(letters) > 0.7:
        hits += 1  # shouting
    if "!!" in text:
        hits += 1
    return hits


def score_english(text: str) -> float:
    compound = float(_vader().polarity_scores(text)["compound"])
    cues = complaint_cues(text)
    if cues:
        compound = min(compound, 0.3) - CUE_WEIGHT * cues
    return max(-1.0, min(1.0, compound))


def score_chinese(text: str) -> float:
    import pysenti

    return math.tanh(float(pysenti.classify(text)["score"]) / 4)


def score_with_model(model: Any, text: str, language: str, vector: Any = None, states: Any = None) -> float:
    """P(positive) - P(negative) from a classifier (a trained SentimentModel's or the shipped
    one); English complaint cues still pull the score down, since demands without sentiment
    words are rare in public training sets. ``vector``, ``states``: the message's sentence
    vector and token states (knowledge.embeddings.Encoding), when the caller has them."""
    if getattr(model, "reads_states", False):
        row = model.probabilities([text], states=None if states is None else [states])[0]
    else:
        row = model.probabilities([text], None if vector is None else np.asarray(vector)[None, :])[0]
    probability = dict(zip(model.labels, (float(p) for p in row), strict=True))
    score = probability.get("positive", 0.0) - probability.get("negative", 0.0)
    if language == "en":
        cues = complaint_cues(text)
        if cues:
            score = min(score, 0.3) - CUE_WEIGHT * cues
    return max(-1.0, min(1.0, score))


def sentiment_engine(language: str, trained: Any = None, version: int | None = None) -> tuple[Any, str]:
    """The model that scores a message of this language and a name for it: a trained model
    (the organization's or the operator's) when one is active, else the one shipped with
    Concierge, else (no file for the language) the lexicon, which returns None."""
    if trained is not None:
        return trained, f"trained {language} v{version}"
    shipped = shipped_sentiment(language)
    if shipped is not None:
        return shipped, f"shipped {language}"
    return None, f"lexicon {language}"


def sentiment_score(
    text: str, language: str | None = None, model: Any = None, vector: Any = None, states: Any = None
) -> float:
    """-1..1. With ``model`` (see sentiment_engine) the classifier scores; without, the lexicon
    engines do. ``vector``, ``states``: the message's embedding, when the caller has it."""
    language = language or detect_language(text)
    if model is not None:
        return score_with_model(model, text, language, vector, states)
    return score_chinese(text) if language == "zh" else score_english(text)


NEUTRAL_BAND = 0.05


def sentiment_label_3way(score: float, three_way: bool = True) -> str:
    if three_way and abs(score) <= NEUTRAL_BAND:
        return "neutral"
    return "negative" if score < 0 else "positive"


def _labels_from(model: Any, texts: list[str], three_way: bool) -> list[str]:
    """A model's most probable label per text (of negative/positive only, for two-way data)."""
    labels = list(model.labels)
    probabilities = np.asarray(model.probabilities(texts))
    if not three_way and "neutral" in labels:
        probabilities[:, labels.index("neutral")] = -1.0
    return [labels[i] for i in probabilities.argmax(axis=1)]


LATENCY_SAMPLE = 200


def sentiment_evaluate(rows: list[tuple[str, str]], model: Any = None) -> dict[str, Any]:
    """Accuracy, macro recall, macro-F1, per-label recall and latency per message (p50, p95:
    one message at a time, its embedding included; model_p95_ms: given the embedding, as in a
    chat turn, which embeds a message once for sentiment, intent and retrieval) on (text,
    negative|neutral|positive) rows. Where no row is neutral, each message counts as negative or
    positive: by the larger of the two probabilities, or by the sign of the lexicon's score."""
    from sklearn.metrics import f1_score

    texts = [text for text, _ in rows]
    gold = [label for _, label in rows]
    labels = sorted(set(gold))
    three_way = "neutral" in labels
    if model is not None:
        predicted = []
        for start in range(0, len(texts), 512):
            predicted += _labels_from(model, texts[start : start + 512], three_way)
    else:
        predicted = [sentiment_label_3way(sentiment_score(text), three_way) for text in texts]
    recall = {
        label: sum(p == g for p, g in zip(predicted, gold, strict=True) if g == label) / gold.count(label)
        for label in labels
    }
    timings, model_only = [], []
    for text in texts[:LATENCY_SAMPLE]:
        started = time.perf_counter()
        sentiment_score(text, model=model)
        timings.append((time.perf_counter() - started) * 1000)
        if model is not None:  # as in a chat turn, where the message is embedded once for every stage
            encoding = embeddings.encode([text])[0]
            started = time.perf_counter()
            sentiment_score(text, model=model, vector=encoding.vector, states=encoding.states)
            model_only.append((time.perf_counter() - started) * 1000)
    timings.sort()
    model_only.sort()
    return {
        "rows": len(rows),
        "accuracy": round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(rows), 4),
        "macro_recall": round(sum(recall.values()) / len(recall), 4),
        "macro_f1": round(float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)), 4),
        "recall": {label: round(value, 4) for label, value in recall.items()},
        "latency_p50_ms": round(timings[len(timings) // 2], 2),
        "latency_p95_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.95))], 2),
        "model_p95_ms": round(model_only[min(len(model_only) - 1, int(len(model_only) * 0.95))], 2)
        if model_only
        else None,
    }


def sentiment_trend(scores: list[float]) -> float:
    """Slope of the customer's recent scores (negative: getting worse)."""
    recent = scores[-4:]
    if len(recent) < 2:
        return 0.0
    n = len(recent)
    mean_x, mean_y = (n - 1) / 2, sum(recent) / n
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(recent))
    denominator = sum((x - mean_x) ** 2 for x in range(n))
    return numerator / denominator


def warm() -> None:
    """Load what scores a message of each language before the first customer message: the
    shipped model, or the lexicon where none ships (the lexicons otherwise serve only
    ``evaluate_sentiment --lexicon``; pysenti's alone is ~70 MB)."""
    for language, sample in (("en", "warm up"), ("zh", "预热")):
        model, _ = sentiment_engine(language)
        if model is not None:
            score_with_model(model, sample, language)
        else:
            sentiment_score(sample, language)
