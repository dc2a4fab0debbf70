"""Re-encrypt personal data with the first FIELD_ENCRYPTION_KEY and recompute email hashes.

Rotation: put the new key first in FIELD_ENCRYPTION_KEY (old keys after it), restart, run
this command, then drop the old keys."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from config.progress import progress_bar
from tickets import crypto
from tickets.models import Customer, Message


class Command(BaseCommand):
    help = "Re-encrypt customer emails, phones and message texts with the current first key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch", type=int, default=1000)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            crypto.validate_key(settings.FIELD_ENCRYPTION_KEY)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        customers = messages = 0
        total = Customer.objects.count() + Message.objects.count()
        try:
            with progress_bar(total=total, description="re-encrypting", unit="rows", stream=self.stderr) as bar:
                for customer in Customer.objects.order_by("pk").iterator(chunk_size=options["batch"]):
                    with transaction.atomic():
                        customer.save(update_fields=["email", "phone", "email_hash"])  # decrypted, re-encrypted
                    customers += 1
                    bar.update(1)
                batch: list[Message] = []
                rows = Message.objects.only("pk", "text").order_by("pk").iterator(chunk_size=options["batch"])
                for message in rows:
                    batch.append(message)
                    if len(batch) >= options["batch"]:
                        Message.objects.bulk_update(batch, ["text"])
                        messages += len(batch)
                        bar.update(len(batch))
                        batch = []
                if batch:
                    Message.objects.bulk_update(batch, ["text"])
                    messages += len(batch)
                    bar.update(len(batch))
        except ValueError as exc:  # a value no configured key can open
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"re-encrypted {customers} customer(s) and {messages} message(s) with the first key")
