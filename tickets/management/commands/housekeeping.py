from typing import Any

from django.core.management.base import BaseCommand

from tickets.services import conversations_close_stale, transcripts_purge


class Command(BaseCommand):
    help = "End stale chats and delete transcripts past each organization's retention (beat runs it hourly)."

    def handle(self, *args: Any, **options: Any) -> None:
        ended = conversations_close_stale()
        deleted = transcripts_purge()
        self.stdout.write(f"Ended {ended} stale conversation(s); deleted {deleted} message(s) past retention.")
