from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.evaluation import figures_line, figures_write, language_evaluate, language_rows


class Command(BaseCommand):
    help = (
        "Measure language detection (en, zh, other): English and Chinese sentences from the public sets in "
        "--data, other languages from Django's own translation catalogues. Prints accuracy, macro-F1, macro "
        "recall, recall per language and latency."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--data", default="../shared/data", help="The public data folder.")
        parser.add_argument("--json", help="Also write the figures to this JSON file.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = language_rows(Path(options["data"]))
        except OSError as exc:
            raise CommandError(f"{options['data']}: cannot read the public sets ({exc}).") from exc
        result = language_evaluate(rows)
        described: dict[str, Any] = {
            "task": "language",
            "data": "en+zh+other",
            "engine": "script+py3langid",
            "rows": len(rows),
        }
        self.stdout.write(figures_line(described, result))
        self.stdout.write("  ".join(f"recall[{label}] {value:.4f}" for label, value in result["recall"].items()))
        figures_write(options["json"], described, result)
