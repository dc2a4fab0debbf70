"""Print (and optionally store) the daily or weekly report of one or every organization."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenancy.management.options import organizations_option
from tickets.reports import last_complete_start, report_build, report_csv, report_json, report_store, report_text


class Command(BaseCommand):
    help = "Print the day or week report: volumes, resolution and automation, response times, SLA, CSAT, agents."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--period", choices=["day", "week"], default="day")
        parser.add_argument("--org", help="Organization slug (default: every organization).")
        parser.add_argument(
            "--date", help="A day inside the period, YYYY-MM-DD (default: the last complete day or week)."
        )
        parser.add_argument("--format", choices=["text", "csv", "json"], default="text")
        parser.add_argument("--store", action="store_true", help="Also save the reports (as beat does).")

    def handle(self, *args: Any, **options: Any) -> None:
        organizations = organizations_option(options["org"])
        day = None
        if options["date"]:
            try:
                day = date.fromisoformat(options["date"])
            except ValueError as exc:
                raise CommandError(f"--date must look like 2026-11-23, not {options['date']!r}") from exc
        period = options["period"]
        reports = []
        for organization in organizations:
            start = day or last_complete_start(organization=organization, period=period)
            if options["store"]:
                reports.append(report_store(organization=organization, period=period, start=start).data)
            else:
                reports.append(report_build(organization=organization, period=period, start=start))
        if options["format"] == "json":
            self.stdout.write(report_json(reports))
        elif options["format"] == "csv":
            self.stdout.write(report_csv(reports), ending="")
        else:
            self.stdout.write("\n\n".join(report_text(data) for data in reports))
