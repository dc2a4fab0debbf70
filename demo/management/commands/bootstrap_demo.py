from typing import Any

from django.core.management.base import BaseCommand

from demo.company import demo_bootstrap


class Command(BaseCommand):
    help = "Create (or refresh) the demo company: staff, customers, tickets, macros and knowledge base."

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo_bootstrap()
        verb = "Created" if result.created else "Refreshed"
        self.stdout.write(f"{verb} demo organization {result.organization.name!r}.")
        self.stdout.write("Staff logins for /admin/ (username / password / role):")
        for username, password, role in result.credentials:
            self.stdout.write(f"  {username:<14} {password:<22} {role}")
