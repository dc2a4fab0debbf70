from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.active_models import active_sentiment_model
from agents.datasets import labelled_rows
from agents.language import detect_language
from agents.sentiment import sentiment_evaluate
from config.errors import DomainError


class Command(BaseCommand):
    help = (
        "Measure sentiment on a CSV with text,label (negative/neutral/positive): accuracy, macro recall, "
        "latency. Uses the active trained model for the file's language if there is one (--engine lexicon: "
        "the built-in engines). Without neutral rows, each message counts as negative or positive by sign."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--csv", required=True)
        parser.add_argument("--limit", type=int, default=0)
        parser.add_argument("--engine", choices=["auto", "lexicon"], default="auto")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = [(text, label.strip().lower()) for text, label in labelled_rows(Path(options["csv"]))]
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        if options["limit"]:
            rows = rows[: options["limit"]]
        unknown = {label for _, label in rows} - {"negative", "neutral", "positive"}
        if not rows or unknown:
            raise CommandError(f"{options['csv']}: no rows, or unknown labels {', '.join(sorted(unknown))}.")
        language = detect_language(" ".join(text for text, _ in rows[:50]))
        model, version = active_sentiment_model(language) if options["engine"] == "auto" else (None, None)
        result = sentiment_evaluate(rows, model=model)
        engine = f"trained model {language} v{version}" if model is not None else f"lexicon ({language})"
        self.stdout.write(
            f"{engine}: rows {result['rows']}  accuracy {result['accuracy']:.3f}  "
            f"macro recall {result['macro_recall']:.3f}  ({result['ms_per_message']:.2f} ms/message)\n"
            + "  ".join(f"recall[{label}] {value:.3f}" for label, value in result["recall"].items())
        )
