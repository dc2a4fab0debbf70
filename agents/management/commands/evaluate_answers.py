"""How often the assistant answers right, answers wrong, and declines what it should not answer,
through the whole turn (language, intent, retrieval, the answer policy, the confidence gate)."""

import csv
import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from agents.pipeline import ConversationContext, run_pipeline
from config.errors import DomainError
from config.progress import progress_bar
from knowledge.ingest import documents_read
from knowledge.services import kb_scratch_organization


def _questions(path: Path, columns: set[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise CommandError(f"{path}: no such file.")
    with path.open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not columns <= set(reader.fieldnames):
            raise CommandError(f"{path}: needs the columns {','.join(sorted(columns))}.")
        return list(reader)


class Command(BaseCommand):
    help = (
        "Ingest articles (JSONL id,title,body or a folder) into a throw-away organization, run each question "
        "through the assistant's whole turn, and print the share of right answers (the expected article cited), "
        "wrong answers (another article cited) and unrelated questions declined (no article cited)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--articles", required=True, help="Articles: JSONL (id,title,body), markdown folder.")
        parser.add_argument("--queries", required=True, help="CSV with query,article_id.")
        parser.add_argument("--unrelated", required=True, help="CSV with a text column: questions to decline.")
        parser.add_argument(
            "--unrelated-label", default="oos", help="With a label column, only its rows with this label (oos)."
        )
        parser.add_argument("--limit", type=int, default=0, help="Only the first N of each set.")
        parser.add_argument("--json", help="Also write the figures here.")

    def handle(self, *args: Any, **options: Any) -> None:
        articles = Path(options["articles"])
        if not articles.exists():
            raise CommandError(f"{articles}: no such file.")
        try:
            documents = documents_read(articles)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        if not documents:
            raise CommandError(f"{articles}: no articles in it.")
        queries = [
            (row["query"], slugify(row["article_id"]))
            for row in _questions(Path(options["queries"]), {"query", "article_id"})
        ]
        unrelated_rows = _questions(Path(options["unrelated"]), {"text"})
        label = options["unrelated_label"]
        unrelated = [row["text"] for row in unrelated_rows if "label" not in row or not label or row["label"] == label]
        if options["limit"]:
            queries, unrelated = queries[: options["limit"]], unrelated[: options["limit"]]
        if not queries or not unrelated:
            raise CommandError("Both question sets need at least one row.")

        right = wrong = declined = 0
        started = time.perf_counter()
        with kb_scratch_organization(documents=documents, name="Answer evaluation") as (organization, _):
            slug_of_title = {document.title: document.slug for document in documents}
            context = ConversationContext(organization.pk, organization.name)
            total = len(queries) + len(unrelated)
            with progress_bar(total=total, description="asking", unit="questions", stream=self.stderr) as bar:
                for text, expected in queries:
                    state = run_pipeline(text, context)
                    cited = [slug_of_title.get(source["title"]) for source in state["sources"]]
                    if state["answered"] and cited:
                        right += cited[0] == expected
                        wrong += cited[0] != expected
                    bar.update()
                for text in unrelated:
                    state = run_pipeline(text, context)
                    declined += not (state["answered"] and state["sources"])
                    bar.update()
        figures = {
            "articles": len(documents),
            "questions": len(queries),
            "unrelated": len(unrelated),
            "right_answers": round(right / len(queries), 4),
            "wrong_answers": round(wrong / len(queries), 4),
            "unrelated_declined": round(declined / len(unrelated), 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
        self.stdout.write(
            f"right answers: {figures['right_answers']:.3f}\n"
            f"wrong answers: {figures['wrong_answers']:.3f}\n"
            f"unrelated declined: {figures['unrelated_declined']:.3f}\n"
            f"({len(queries)} questions, {len(unrelated)} unrelated, {len(documents)} articles)"
        )
        if options["json"]:
            Path(options["json"]).write_text(json.dumps(figures, indent=2) + "\n")
