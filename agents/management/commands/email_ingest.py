"""Take one raw email from a file, as if it had arrived: try the email channel without a mail server."""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.email.inbound import email_receive
from config.errors import DomainError
from tenancy.services import organization_get


class Command(BaseCommand):
    help = (
        "Take one raw email (an .eml file) as if it had arrived at the support address: it joins its "
        "conversation or starts one, and the assistant's turn is queued (the Celery worker sends the answer)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="An .eml file: the message as a mail server received it.")
        parser.add_argument("--org", help="Organization slug; default: the one whose support address it was sent to.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        try:
            organization = organization_get(slug=options["org"]) if options["org"] else None
            received = email_receive(raw=path.read_bytes(), organization=organization)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        record = received.record
        if received.outcome == "ignored":
            self.stdout.write(f"ignored {record.mail_id}: {record.reason}")
        elif received.outcome == "duplicate":
            self.stdout.write(f"already taken: {record.mail_id} (conversation {received.conversation_id})")
        else:
            answer = "the assistant's turn is queued" if received.assistant_answers else "waiting for a person"
            self.stdout.write(f"received {record.mail_id} into conversation {received.conversation_id}; {answer}")
