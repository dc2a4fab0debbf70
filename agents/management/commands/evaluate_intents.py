import random
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.datasets import labelled_rows
from agents.intents import IntentClassifier, evaluate
from config.errors import DomainError


def _rows(path: Path) -> list[tuple[str, str]]:
    try:
        return labelled_rows(path)
    except DomainError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Train on one CSV (text,label) and measure on another: accuracy and macro-F1 on in-scope rows, "
        "out-of-scope recall (rows labelled oos), latency per message. Without --test, holds back --holdout."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--train", required=True)
        parser.add_argument("--test")
        parser.add_argument("--holdout", type=float, default=0.2)
        parser.add_argument("--threshold", type=float, default=0.3, help="Below this confidence: out of scope.")

    def handle(self, *args: Any, **options: Any) -> None:
        train = _rows(Path(options["train"]))
        if options["test"]:
            test = _rows(Path(options["test"]))
        else:
            random.Random(7).shuffle(train)  # noqa: S311 (a reproducible split)
            cut = int(len(train) * (1 - options["holdout"]))
            train, test = train[:cut], train[cut:]
        started = time.perf_counter()
        classifier = IntentClassifier(threshold=options["threshold"]).fit(
            [t for t, _ in train], [lb for _, lb in train]
        )
        seconds = time.perf_counter() - started
        result = evaluate(classifier, [t for t, _ in test], [lb for _, lb in test])
        oos = "n/a" if result.out_of_scope_recall is None else f"{result.out_of_scope_recall:.3f}"
        self.stdout.write(
            f"trained on {len(train)} in {seconds:.1f} s, tested on {result.rows}\n"
            f"accuracy {result.accuracy:.3f}  macro-F1 {result.macro_f1:.3f}  out-of-scope recall {oos}\n"
            f"latency ms/message: p50 {result.latency_p50_ms:.2f}  p95 {result.latency_p95_ms:.2f}"
        )
