"""Export everything held about one customer as JSON (a data subject access request)."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenancy.management.options import organization_option
from tickets.models import Customer
from tickets.privacy import customer_export
from tickets.selectors import customer_by_email


def find_customer(options: dict[str, Any]) -> Customer:
    organization = organization_option(options["org"])
    if options.get("id"):
        customer = Customer.objects.filter(organization=organization, pk=options["id"]).first()
    elif options.get("email"):
        customer = customer_by_email(organization=organization, email=options["email"])
    else:
        raise CommandError("name the customer with --id or --email")
    if customer is None:
        raise CommandError("no such customer in this organization")
    return customer


class Command(BaseCommand):
    help = "Print (or write) one customer's personal data as JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", required=True, help="Organization slug.")
        parser.add_argument("--id", type=int)
        parser.add_argument("--email")
        parser.add_argument("--output", help="Write to this file instead of printing.")

    def handle(self, *args: Any, **options: Any) -> None:
        data = customer_export(customer=find_customer(options), actor="command line")
        text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            self.stdout.write(f"wrote {options['output']}")
        else:
            self.stdout.write(text)
