from typing import Any

from django.core.management.base import BaseCommand

from knowledge.services import kb_reindex
from tenancy.management.options import organizations_option


class Command(BaseCommand):
    help = "Rebuild the search indexes (chunks, vectors, keyword indexes) of one organization or all of them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--changed-only", action="store_true", help="Only articles marked as needing it.")

    def handle(self, *args: Any, **options: Any) -> None:
        for organization in organizations_option(options["org"]):
            totals = kb_reindex(organization=organization, force=not options["changed_only"])
            corpora = "".join(
                f", {count} {name.removesuffix('_documents')} keyword document(s)"
                for name, count in totals.items()
                if name.endswith("_documents")
            )
            self.stdout.write(
                f"{organization.slug}: {totals['articles']} article(s), {totals['chunks']} chunk(s){corpora}"
            )
