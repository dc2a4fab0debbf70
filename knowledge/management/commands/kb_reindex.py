from typing import Any

from django.core.management.base import BaseCommand

from knowledge.services import kb_reindex
from tickets.models import Organization


class Command(BaseCommand):
    help = "Rebuild the search indexes (chunks, vectors, keyword indexes) of one organization or all of them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument("--changed-only", action="store_true", help="Only articles marked as needing it.")

    def handle(self, *args: Any, **options: Any) -> None:
        organizations = Organization.objects.order_by("pk")
        if options["org"]:
            organizations = organizations.filter(slug=options["org"])
            if not organizations.exists():
                from django.core.management.base import CommandError

                raise CommandError(f"No organization with slug {options['org']!r}.")
        for organization in organizations:
            totals = kb_reindex(organization=organization, force=not options["changed_only"])
            desk = f", {totals['desk_documents']} staff-search document(s)" if "desk_documents" in totals else ""
            self.stdout.write(
                f"{organization.slug}: {totals['articles']} article(s), {totals['chunks']} chunk(s){desk}"
            )
