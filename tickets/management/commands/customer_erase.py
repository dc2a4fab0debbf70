"""Erase one customer's personal data (a right-to-erasure request). Irreversible."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tickets.management.commands.customer_export import find_customer
from tickets.privacy import customer_erase


class Command(BaseCommand):
    help = "Erase one customer's transcripts, contact details and notes; tickets stay, anonymised."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--id", type=int)
        parser.add_argument("--email")
        parser.add_argument("--yes", action="store_true", help="Confirm: this cannot be undone.")

    def handle(self, *args: Any, **options: Any) -> None:
        customer = find_customer(options)
        if not options["yes"]:
            raise CommandError(f"this erases customer {customer.pk} for good; run again with --yes to confirm")
        counts = customer_erase(customer=customer, actor="command line")
        self.stdout.write(
            f"erased customer {customer.pk}: {counts['conversations']} conversation(s), {counts['messages']} "
            f"message(s), {counts['notes']} note(s); {counts['tickets_scrubbed']} ticket(s) kept, anonymised"
        )
