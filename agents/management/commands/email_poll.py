"""Poll the organizations' IMAP mailboxes now (the beat does it every minute)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.email.mailbox import email_mailbox_poll
from agents.models import EmailMailbox
from config.errors import DomainError
from tenancy.services import organizations_for_option


class Command(BaseCommand):
    help = "Poll every enabled IMAP mailbox (or one organization's) now and print what each poll took."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--org", help="Only this organization's mailboxes.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            organizations = organizations_for_option(slug=options["org"])
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        mailboxes = EmailMailbox.objects.select_related("channel__organization").filter(
            enabled=True, channel__organization__in=organizations
        )
        failed = 0
        for mailbox in mailboxes:
            result = email_mailbox_poll(mailbox=mailbox)
            line = f"{mailbox}: taken {result.taken}, already taken {result.duplicates}, not emails {result.refused}"
            self.stdout.write(line + (f"; error: {result.error}" if result.error else ""))
            failed += bool(result.error)
        if not mailboxes:
            self.stdout.write("No enabled mailboxes.")
        if failed:
            raise CommandError(f"{failed} mailbox(es) could not be polled.")
