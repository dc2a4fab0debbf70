"""List, add or remove the websites allowed to embed an organization's chat widget."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.widget import widget_origin_add, widget_origin_remove, widget_origins_list
from config.errors import DomainError
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = (
        "Websites allowed to embed the chat widget: exact origins (https://shop.example.com) "
        "or every subdomain (https://*.example.com)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: the first organization).")
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--add", metavar="ORIGIN", help="Allow this website.")
        action.add_argument("--remove", metavar="ORIGIN", help="Stop allowing this website.")
        action.add_argument("--list", action="store_true", help="Print the allowed websites, one a line.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        try:
            if options["add"]:
                entry = widget_origin_add(organization=organization, origin=options["add"])
                self.stdout.write(f"{organization.slug}: allowed {entry.origin}")
            elif options["remove"]:
                widget_origin_remove(organization=organization, origin=options["remove"])
                self.stdout.write(f"{organization.slug}: no longer allowed {options['remove']}")
            else:
                for origin in widget_origins_list(organization=organization):
                    self.stdout.write(origin)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
