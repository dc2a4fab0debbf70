from typing import Any

from django.core.management.base import BaseCommand

from config.progress import progress_bar
from knowledge.services import kb_articles_to_index, kb_reindex
from tenancy.management.options import organizations_option


class Command(BaseCommand):
    help = "Rebuild the search indexes (chunks, vectors, keyword indexes) of one organization or all of them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--changed-only", action="store_true", help="Only articles marked as needing it.")

    def handle(self, *args: Any, **options: Any) -> None:
        for organization in organizations_option(options["org"]):
            force = not options["changed_only"]
            total = kb_articles_to_index(organization=organization, force=force)
            with progress_bar(total=total, description=organization.slug, unit="articles", stream=self.stderr) as bar:
                totals = kb_reindex(organization=organization, force=force, progress=bar)
            corpora = "".join(
                f", {count} {name.removesuffix('_documents')} keyword document(s)"
                for name, count in totals.items()
                if name.endswith("_documents")
            )
            self.stdout.write(
                f"{organization.slug}: {totals['articles']} article(s), {totals['chunks']} chunk(s){corpora}"
            )
