from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.services import intent_examples_import, intent_examples_read_csv, intent_model_train
from config.errors import DomainError
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = "Train a new intent model version from the organization's examples (optionally importing a CSV first)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: the first).")
        parser.add_argument("--import-csv", help="CSV with text and label (or intent) columns to add as examples.")
        parser.add_argument("--no-activate", action="store_true", help="Keep the current version active.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        try:
            if options["import_csv"]:
                rows = intent_examples_read_csv(Path(options["import_csv"]))
                added = intent_examples_import(organization=organization, rows=rows)
                self.stdout.write(f"Imported {added} new example(s) of {len(rows)}.")
            model = intent_model_train(organization=organization, activate=not options["no_activate"])
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        metrics = model.metrics
        figures = (
            f"held-back accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}, "
            f"p95 {metrics['latency_p95_ms']:.1f} ms/message"
            if metrics
            else "too few examples to hold any back"
        )
        state = "active" if model.is_active else "inactive"
        self.stdout.write(
            f"Trained intent model v{model.version} ({state}) on {model.examples} examples, "
            f"{len(model.intents)} intents: {figures}."
        )
