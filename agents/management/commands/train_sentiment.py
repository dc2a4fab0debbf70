from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.datasets import labelled_rows
from agents.sentiment_models import sentiment_corrections, sentiment_model_train
from config.errors import DomainError
from config.progress import progress_bar
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = (
        "Train a sentiment model for one language and make it the active one: the operator's, for every "
        "organization, from a CSV with text,label (negative/neutral/positive; a fifth held back for its figures), "
        "or with --org an organization's own, from the customer messages its staff corrected in admin (the "
        "held-back corrections give its figures)."
    )

    def add_arguments(self, parser: Any) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--csv")
        source.add_argument("--org", help="Organization slug: train on its corrected messages.")
        parser.add_argument("--language", default="en")
        parser.add_argument("--limit", type=int, default=0, help="Only the first N rows.")
        parser.add_argument("--no-activate", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"]) if options["org"] else None
        try:
            held: list[tuple[str, str]] | None = None
            if organization is not None:
                corrected = sentiment_corrections(organization=organization, language=options["language"])
                rows = [(t, label) for t, label, is_held in corrected if not is_held]
                held = [(t, label) for t, label, is_held in corrected if is_held] or None
                source = f"{organization.slug}: {len(corrected)} corrected messages"
            else:
                rows = [(text, label.strip().lower()) for text, label in labelled_rows(Path(options["csv"]))]
                source = Path(options["csv"]).name
            if options["limit"]:
                rows = rows[: options["limit"]]
            with progress_bar(total=len(rows), description="training", unit="rows", stream=self.stderr) as bar:
                model = sentiment_model_train(
                    language=options["language"],
                    rows=rows,
                    source=source,
                    activate=not options["no_activate"],
                    organization=organization,
                    held=held,
                    progress=bar,
                )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        metrics = model.metrics
        scope = organization.slug if organization else "every organization"
        self.stdout.write(
            f"Trained sentiment model {model.language} v{model.version} for {scope} on {model.examples} rows "
            f"({'active' if model.is_active else 'inactive'}): held-back accuracy {metrics['accuracy']:.3f}, "
            f"macro recall {metrics['macro_recall']:.3f}."
        )
