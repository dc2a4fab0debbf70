"""Check every organization's audit chain (or one): hashes, links and positions."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenancy.audit import audit_verify
from tenancy.management.options import organizations_option


class Command(BaseCommand):
    help = "Verify the hash-chained audit trail; exit 1 naming the first tampered entries."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Organization slug (default: every organization).")

    def handle(self, *args: Any, **options: Any) -> None:
        organizations = organizations_option(options["org"])
        broken = []
        for organization in organizations:
            report = audit_verify(organization=organization)
            if report.problems:
                broken.append(report.organization)
                self.stdout.write(f"{report.organization}: TAMPERED ({len(report.problems)} problem(s))")
                for problem in report.problems[:20]:
                    self.stdout.write(f"  {problem}")
            else:
                self.stdout.write(f"{report.organization}: ok, {report.entries} entries")
        if broken:
            raise CommandError(f"audit trail broken for: {', '.join(broken)}")
