import time
from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.datasets import labelled_rows
from agents.sentiment import sentiment_score
from tickets.errors import DomainError

NEUTRAL_BAND = 0.05


class Command(BaseCommand):
    help = (
        "Measure the sentiment engine on a CSV with text,label (negative/neutral/positive): prints accuracy, "
        "macro recall and latency. Without neutral rows, each message counts as negative or positive by sign."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--csv", required=True)
        parser.add_argument("--limit", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = [(text, label.strip().lower()) for text, label in labelled_rows(Path(options["csv"]))]
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        if options["limit"]:
            rows = rows[: options["limit"]]
        labels = sorted({label for _, label in rows})
        unknown = set(labels) - {"negative", "neutral", "positive"}
        if unknown:
            raise CommandError(f"{options['csv']}: unknown labels {', '.join(sorted(unknown))}.")
        three_way = "neutral" in labels
        correct = 0
        per_label: Counter[str] = Counter()
        hits: Counter[str] = Counter()
        started = time.perf_counter()
        for text, gold in rows:
            score = sentiment_score(text)
            if three_way and abs(score) <= NEUTRAL_BAND:
                predicted = "neutral"
            else:
                predicted = "negative" if score < 0 else "positive"
            per_label[gold] += 1
            if predicted == gold:
                correct += 1
                hits[gold] += 1
        elapsed_ms = (time.perf_counter() - started) * 1000
        recall = {label: hits[label] / per_label[label] for label in labels}
        self.stdout.write(
            f"rows {len(rows)}  accuracy {correct / len(rows):.3f}"
            f"  macro recall {sum(recall.values()) / len(recall):.3f}"
            f"  ({elapsed_ms / len(rows):.2f} ms/message)\n"
            + "  ".join(f"recall[{label}] {value:.3f}" for label, value in recall.items())
        )
