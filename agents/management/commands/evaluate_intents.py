import random
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.datasets import labelled_rows
from agents.evaluation import figures_line, figures_write
from agents.intents import IntentClassifier, evaluate
from config.errors import DomainError
from config.progress import progress_bar


def _rows(path: Path) -> list[tuple[str, str]]:
    try:
        return labelled_rows(path)
    except DomainError as exc:
        raise CommandError(str(exc)) from exc


class Command(BaseCommand):
    help = (
        "Train on one CSV (text,label) and measure on another: accuracy, macro-F1 and macro recall on in-scope "
        "rows, out-of-scope recall (rows labelled oos; those in the training file train the fallback class), "
        "latency per message. Without --test, holds back --holdout of the training file."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--train", required=True)
        parser.add_argument("--test")
        parser.add_argument("--holdout", type=float, default=0.2)
        parser.add_argument("--threshold", type=float, default=0.3, help="Below this confidence: out of scope.")
        parser.add_argument("--json", help="Also write the figures to this JSON file.")

    def handle(self, *args: Any, **options: Any) -> None:
        train = _rows(Path(options["train"]))
        if options["test"]:
            test, data = _rows(Path(options["test"])), Path(options["test"]).name
        else:
            random.Random(7).shuffle(train)  # noqa: S311 (a reproducible split)
            cut = int(len(train) * (1 - options["holdout"]))
            train, test = train[:cut], train[cut:]
            data = f"{Path(options['train']).name}:holdout{options['holdout']:g}"
        started = time.perf_counter()
        with progress_bar(total=len(train), description="training", unit="rows", stream=self.stderr) as bar:
            classifier = IntentClassifier(threshold=options["threshold"]).fit(
                [t for t, _ in train], [lb for _, lb in train], progress=bar
            )
        seconds = time.perf_counter() - started
        with progress_bar(total=len(test), description="measuring", unit="rows", stream=self.stderr) as bar:
            result = evaluate(classifier, [t for t, _ in test], [lb for _, lb in test], progress=bar)
        figures = result.as_dict()
        figures["oos_recall"] = figures.pop("out_of_scope_recall")
        figures["train_seconds"] = round(seconds, 1)
        described: dict[str, Any] = {"task": "intent", "data": data, "engine": "minilm+tfidf", "rows": result.rows}
        self.stdout.write(figures_line(described, figures))
        self.stdout.write(f"trained on {len(train)} rows in {seconds:.1f} s")
        figures_write(options["json"], described, figures)
