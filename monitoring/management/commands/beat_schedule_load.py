"""Load the periodic task schedule defined in config/celery.py into the database that
Celery beat (django-celery-beat's DatabaseScheduler) reads."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from monitoring.services import beat_schedule_load


class Command(BaseCommand):
    help = "Write the beat schedule from code into django-celery-beat's tables and print what changed."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = beat_schedule_load()
        except DatabaseError as exc:
            raise CommandError(f"could not write the schedule: {exc}") from exc
        for state in ("added", "updated", "removed"):
            for name in result[state]:
                self.stdout.write(f"{state:<8} {name}")
        self.stdout.write(
            f"beat schedule: {len(result['added'])} added, {len(result['updated'])} updated, "
            f"{len(result['unchanged'])} unchanged, {len(result['removed'])} removed"
        )
