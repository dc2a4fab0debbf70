from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.datasets import labelled_rows
from agents.services import sentiment_model_train
from config.errors import DomainError


class Command(BaseCommand):
    help = (
        "Train a sentiment model for one language from a CSV with text,label (negative/neutral/positive) "
        "and make it the active one; a fifth of the rows is held back for its figures."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--csv", required=True)
        parser.add_argument("--language", default="en")
        parser.add_argument("--limit", type=int, default=0, help="Only the first N rows.")
        parser.add_argument("--no-activate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = [(text, label.strip().lower()) for text, label in labelled_rows(Path(options["csv"]))]
            if options["limit"]:
                rows = rows[: options["limit"]]
            model = sentiment_model_train(
                language=options["language"],
                rows=rows,
                source=Path(options["csv"]).name,
                activate=not options["no_activate"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        metrics = model.metrics
        self.stdout.write(
            f"Trained sentiment model {model.language} v{model.version} on {model.examples} rows "
            f"({'active' if model.is_active else 'inactive'}): held-back accuracy {metrics['accuracy']:.3f}, "
            f"macro recall {metrics['macro_recall']:.3f}."
        )
