"""The operator's one-screen picture: every dependency as /readyz sees it, Celery queues and
heartbeat, search index sizes per organization, and the desk's open work."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from monitoring.services import celery_queue_depths, heartbeat_age_seconds, index_sizes, readiness


def _desk_counts() -> dict[str, int]:
    from django.utils import timezone

    from tickets.models import Conversation, Ticket
    from tickets.rules import ACTIVE_STATUSES
    from tickets.selectors import sla_at_risk_q, sla_breached_q

    now = timezone.now()
    return {
        "open_conversations": Conversation.objects.exclude(status=Conversation.Status.ENDED).count(),
        "active_tickets": Ticket.objects.filter(status__in=ACTIVE_STATUSES).count(),
        "unassigned_tickets": Ticket.objects.filter(status__in=ACTIVE_STATUSES, assignee__isnull=True).count(),
        "sla_at_risk": Ticket.objects.filter(sla_at_risk_q(now)).count(),
        "sla_breached": Ticket.objects.filter(sla_breached_q(now)).count(),
    }


class Command(BaseCommand):
    help = "Print readiness of every dependency, queue depths, index sizes and open work; exit 1 when not ready."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON object instead of text.")

    def handle(self, *args: Any, **options: Any) -> None:
        report = readiness()
        age = heartbeat_age_seconds()
        status = {
            **report,
            "queues": celery_queue_depths(),
            "celery_heartbeat_age_seconds": None if age is None else round(age, 1),
            "indexes": index_sizes(),
            "desk": _desk_counts(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(status, indent=2, default=str))
        else:
            self.stdout.write(f"ready: {'yes' if report['ready'] else 'NO'}")
            for name, check in report["checks"].items():
                mark = "ok  " if check["ok"] else "DOWN"
                self.stdout.write(f"  {mark} {name:<14} {check['latency_ms']:>8.1f} ms  {check['detail']}")
            queues = ", ".join(f"{q} {n}" for q, n in status["queues"].items()) or "unknown"
            self.stdout.write(f"celery queues: {queues}; heartbeat age: {status['celery_heartbeat_age_seconds']} s")
            self.stdout.write("indexes:")
            for row in status["indexes"]:
                corpora = "  ".join(
                    f"{name.removeprefix('keyword_')} {size}"
                    for name, size in row.items()
                    if name.startswith("keyword_")
                )
                self.stdout.write(
                    f"  {row['organization']:<20} articles {row['articles']}  vectors {row['vectors']}"
                    f"  keyword {corpora}"
                )
            self.stdout.write("desk: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in status["desk"].items()))
        if not report["ready"]:
            raise CommandError(f"not ready: {', '.join(report['failed'])} down")
