from typing import Any

from django.core.management.base import BaseCommand

from tickets.services import sla_check


class Command(BaseCommand):
    help = "Run the SLA pass now (beat runs it every minute) and print what it changed."

    def handle(self, *args: Any, **options: Any) -> None:
        changes = sla_check()
        for change in changes:
            raised = f", priority raised to {change.priority_raised_to}" if change.priority_raised_to else ""
            moved = f", reassigned to {change.reassigned_to}" if change.reassigned_to else ""
            self.stdout.write(f"ticket #{change.ticket_id}: {change.before} -> {change.after}{raised}{moved}")
        self.stdout.write(f"{len(changes)} ticket(s) changed.")
