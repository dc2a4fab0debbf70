from typing import Any

from django.core.management.base import BaseCommand

from config.version import __version__


class Command(BaseCommand):
    help = "Print the version of Concierge this checkout or image runs."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(__version__)
