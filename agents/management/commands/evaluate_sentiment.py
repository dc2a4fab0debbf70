from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.active_models import active_sentiment_model
from agents.datasets import labelled_rows
from agents.evaluation import figures_line, figures_write
from agents.language import detect_language
from agents.sentiment import sentiment_engine, sentiment_evaluate
from agents.sentiment_linear import shipped_sentiment
from config.errors import DomainError
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = (
        "Measure sentiment on a CSV with text,label (negative/neutral/positive): accuracy, macro-F1, macro recall "
        "and latency per message. --engine auto measures what scores a message today (an active trained model, "
        "else the shipped one, else the lexicon); shipped, lexicon name one. Without neutral rows, each message "
        "counts as negative or positive."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--csv", required=True)
        parser.add_argument("--limit", type=int, default=0)
        parser.add_argument("--engine", choices=["auto", "shipped", "lexicon"], default="auto")
        parser.add_argument("--org", help="With --engine auto: the organization whose own model counts.")
        parser.add_argument("--json", help="Also write the figures to this JSON file.")

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
        if options["engine"] == "lexicon":
            model, engine = None, f"lexicon-{language}"
        elif options["engine"] == "shipped":
            model, engine = shipped_sentiment(language), f"shipped-{language}"
            if model is None:
                raise CommandError(f"No sentiment model ships for {language!r}.")
        else:
            organization = organization_option(options["org"]) if options["org"] else None
            trained, version = active_sentiment_model(language, organization.pk if organization else None)
            model, engine = sentiment_engine(language, trained, version)
            engine = engine.replace(" ", "-")
        result = sentiment_evaluate(rows, model=model)
        described: dict[str, Any] = {
            "task": "sentiment",
            "data": Path(options["csv"]).name,
            "engine": engine,
            "rows": len(rows),
        }
        self.stdout.write(figures_line(described, result))
        self.stdout.write("  ".join(f"recall[{label}] {value:.4f}" for label, value in result["recall"].items()))
        figures_write(options["json"], described, result)
