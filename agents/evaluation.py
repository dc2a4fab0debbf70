"""What the evaluate_* commands print and write: one line of figures in a fixed order
(``key value`` pairs, the same keys for intent, sentiment and language, ``-`` where a figure
does not apply) and, with --json, the same figures as one JSON object. Latency: p50 and p95
per message on its own, its embedding included; ``model_p95_ms``: p95 given the embedding, as
in a chat turn, which embeds each message once for sentiment, intent and retrieval.

    task intent  data clinc150_val.csv  engine minilm+tfidf  rows 3100  accuracy 0.9617 ...

The language set: English from the English sets in ../shared/data, Chinese from the waimai
reviews, other languages from the translations Django ships (its own locale files, in a dozen
languages; none of these texts is copied into the project)."""

import csv
import json
import re
from pathlib import Path
from typing import Any

FIELDS = ("accuracy", "macro_f1", "macro_recall", "oos_recall", "latency_p50_ms", "latency_p95_ms", "model_p95_ms")


def figures_line(described: dict[str, Any], figures: dict[str, Any]) -> str:
    """``described``: task, data, engine and rows."""

    def shown(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    values = "  ".join(f"{name} {shown(figures.get(name))}" for name in FIELDS)
    head = "  ".join(f"{key} {described[key]}" for key in ("task", "data", "engine", "rows"))
    return f"{head}  {values}"


def figures_write(path: str | None, described: dict[str, Any], figures: dict[str, Any]) -> None:
    if not path:
        return
    record = {
        **{key: described[key] for key in ("task", "data", "engine", "rows")},
        **{k: figures.get(k) for k in FIELDS},
    }
    extra = {k: v for k, v in figures.items() if k not in FIELDS and k != "rows"}
    Path(path).write_text(json.dumps({**record, **extra}, indent=2, sort_keys=False) + "\n", encoding="utf-8")


# --- the language set ---------------------------------------------------------------------

ENGLISH_FILES = ("sentiment/sst2_dev.csv", "sentiment/tweeteval_val.csv", "intents/clinc150_val.csv")
CHINESE_FILES = ("sentiment/waimai_10k_zh.csv",)
OTHER_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl", "pl", "tr", "sv", "cs", "vi", "id", "ru", "ja", "ko", "ar")
_MSGSTR = re.compile(r'^msgstr "(.+)"$', re.MULTILINE)


def _texts(path: Path) -> list[str]:
    with path.open(encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _translations() -> list[str]:
    """Sentences of three words or more from Django's own translation catalogues."""
    import django

    base = Path(django.__file__).parent
    found = []
    for language in OTHER_LANGUAGES:
        catalogues = [base / "conf" / "locale" / language / "LC_MESSAGES" / "django.po"]
        catalogues += sorted((base / "contrib").glob(f"*/locale/{language}/LC_MESSAGES/django.po"))
        for catalogue in catalogues:
            if catalogue.is_file():
                text = catalogue.read_text(encoding="utf-8")
                found += [m for m in _MSGSTR.findall(text) if len(m.split()) >= 3 and "%" not in m]
    return found


def language_rows(data_dir: Path) -> list[tuple[str, str]]:
    rows = [(text, "en") for name in ENGLISH_FILES for text in _texts(data_dir / name)]
    rows += [(text, "zh") for name in CHINESE_FILES for text in _texts(data_dir / name)]
    rows += [(text, "other") for text in _translations()]
    return rows


def language_evaluate(rows: list[tuple[str, str]]) -> dict[str, Any]:
    import time

    from sklearn.metrics import f1_score

    from agents.language import detect_language

    gold = [label for _, label in rows]
    timings, predicted = [], []
    for text, _ in rows:
        started = time.perf_counter()
        predicted.append(detect_language(text))
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    labels = sorted(set(gold))
    recall = {
        label: round(sum(p == g for p, g in zip(predicted, gold, strict=True) if g == label) / gold.count(label), 4)
        for label in labels
    }
    return {
        "accuracy": round(sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(rows), 4),
        "macro_f1": round(float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)), 4),
        "macro_recall": round(sum(recall.values()) / len(recall), 4),
        "recall": recall,
        "latency_p50_ms": round(timings[len(timings) // 2], 3),
        "latency_p95_ms": round(timings[int(len(timings) * 0.95)], 3),
    }
