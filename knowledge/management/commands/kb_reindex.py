from typing import Any

from django.core.management.base import BaseCommand

from knowledge.services import kb_reindex
from tickets.management.options import organizations_option


class Command(BaseCommand):
    help = "Rebuild the search indexes (chunks, vectors, keyword indexes) of one organization or all of them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--changed-only", action="store_true", help="Only articles marked as needing it.")

    def handle(self, *args: Any, **options: Any) -> None:
        for organization in organizations_option(options["org"]):
            totals = kb_reindex(organization=organization, force=not options["changed_only"])
            desk = f", {totals['desk_documents']} staff-search document(s)" if "desk_documents" in totals else ""
            self.stdout.write(
                f"{organization.slug}: {totals['articles']} article(s), {totals['chunks']} chunk(s){desk}"
            )
