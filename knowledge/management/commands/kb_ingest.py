from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from config.progress import progress_bar
from knowledge.ingest import SUFFIXES, read_documents
from knowledge.services import kb_articles_to_index, kb_documents_ingest, kb_reindex
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = "Ingest knowledge-base files (markdown, HTML, text, JSONL id/title/body) and index them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="+", help="Files or folders.")
        parser.add_argument("--org", help="Organization slug (default: the first).")
        parser.add_argument("--draft", action="store_true", help="Store as drafts instead of publishing.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        files: list[Path] = []
        for raw in options["paths"]:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES))
            else:
                files.append(path)
        stored, failures = 0, []
        with progress_bar(total=len(files), description="reading", unit="files", stream=self.stderr) as bar:
            for path in files:
                try:
                    stored += len(
                        kb_documents_ingest(
                            organization=organization, documents=read_documents(path), publish=not options["draft"]
                        )
                    )
                except DomainError as exc:
                    failures.append(str(exc))
                    self.stderr.write(f"skipped {exc}")
                bar.update(1)
        total = kb_articles_to_index(organization=organization)
        with progress_bar(total=total, description="indexing", unit="articles", stream=self.stderr) as bar:
            totals = kb_reindex(organization=organization, progress=bar)
        self.stdout.write(
            f"Ingested {stored} article(s) into {organization.name}; indexed {totals['articles']} "
            f"article(s) as {totals['chunks']} chunk(s)."
        )
        if failures:
            raise CommandError(f"{len(failures)} file(s) could not be ingested; the rest were.")
