"""Per-message sentiment, -1..1, for English and Chinese.

English: VADER's compound score, corrected by complaint cues. VADER scores "I want a refund
now" as mildly positive: it has no sentiment words. Support conversations are full of such
demands, so each cue (a demand, a failure report, impatience, shouting) pulls the score down.
Chinese: pysenti's lexicon score, squashed into -1..1."""

import logging
import math
import re
from typing import Any

from agents.language import detect_language
from config.clients import process_client

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


def score_with_model(model: Any, text: str, language: str) -> float:
    """P(positive) - P(negative) from a trained classifier; English complaint cues still pull
    the score down, since demands without sentiment words are rare in public training sets."""
    row = model.probabilities([text])[0]
    probability = dict(zip(model.labels, (float(p) for p in row), strict=True))
    score = probability.get("positive", 0.0) - probability.get("negative", 0.0)
    if language == "en":
        cues = complaint_cues(text)
        if cues:
            score = min(score, 0.3) - CUE_WEIGHT * cues
    return max(-1.0, min(1.0, score))


def sentiment_score(text: str, language: str | None = None, model: Any = None) -> float:
    """-1..1. With ``model`` (an active trained SentimentModel's classifier for this language)
    the classifier scores; without, the lexicon engines do."""
    language = language or detect_language(text)
    if model is not None:
        return score_with_model(model, text, language)
    return score_chinese(text) if language == "zh" else score_english(text)


NEUTRAL_BAND = 0.05


def sentiment_label_3way(score: float, three_way: bool = True) -> str:
    if three_way and abs(score) <= NEUTRAL_BAND:
        return "neutral"
    return "negative" if score < 0 else "positive"


def _model_label(model: Any, text: str, three_way: bool) -> str:
    """A trained model's most probable label (of negative/positive only, for two-way data)."""
    probability = dict(zip(model.labels, (float(p) for p in model.probabilities([text])[0]), strict=True))
    if not three_way:
        probability.pop("neutral", None)
    return max(probability, key=lambda label: probability[label])


def sentiment_evaluate(rows: list[tuple[str, str]], model: Any = None) -> dict[str, Any]:
    """Accuracy, macro recall and per-label recall on (text, negative|neutral|positive) rows.
    Where no row is neutral, each message counts as negative or positive by the sign."""
    import time

    labels = sorted({label for _, label in rows})
    three_way = "neutral" in labels
    hits: dict[str, int] = dict.fromkeys(labels, 0)
    totals: dict[str, int] = dict.fromkeys(labels, 0)
    started = time.perf_counter()
    for text, gold in rows:
        predicted = (
            _model_label(model, text, three_way)
            if model is not None
            else sentiment_label_3way(sentiment_score(text), three_way)
        )
        totals[gold] += 1
        hits[gold] += predicted == gold
    recall = {label: hits[label] / totals[label] for label in labels}
    return {
        "rows": len(rows),
        "accuracy": round(sum(hits.values()) / len(rows), 4),
        "macro_recall": round(sum(recall.values()) / len(recall), 4),
        "recall": {label: round(value, 4) for label, value in recall.items()},
        "ms_per_message": round((time.perf_counter() - started) * 1000 / len(rows), 3),
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
    """Load the lexicons before the first customer message."""
    score_english("warm up")
    score_chinese("预热")
