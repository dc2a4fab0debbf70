"""Per-message sentiment, -1..1, for English and Chinese.

English: VADER's compound score, corrected by complaint cues. VADER scores "I want a refund
now" as mildly positive: it has no sentiment words. Support conversations are full of such
demands, so each cue (a demand, a failure report, impatience, shouting) pulls the score down.
Chinese: pysenti's lexicon score, squashed into -1..1."""

import logging
import math
import re
from functools import lru_cache
from typing import Any

from agents.language import detect_language

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


@lru_cache(maxsize=1)
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


def sentiment_score(text: str, language: str | None = None) -> float:
    language = language or detect_language(text)
    return score_chinese(text) if language == "zh" else score_english(text)


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
