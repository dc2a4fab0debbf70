"""Try a messaging channel without a provider account: one inbound message as if WhatsApp,
Telegram, WeChat, Twilio (SMS or a voicemail) or a company's app had sent it, through the same
services as a real webhook; the assistant answers here and what would be sent is printed."""

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from agents.messaging.accounts import messaging_account_save
from agents.messaging.adapters import Inbound, Outgoing
from agents.messaging.inbound import messaging_receive
from agents.messaging.models import MessagingAccount, MessagingProvider
from agents.messaging.outbound import printed_instead
from agents.messaging.voice import CallEvent, voice_call_event
from config.errors import DomainError
from tenancy.services import organization_get

# Who writes, by default: a phone number for the phone channels, the provider's kind of id else.
DEFAULT_SENDER: dict[str, str] = {
    MessagingProvider.WHATSAPP: "+15555550100",
    MessagingProvider.SMS: "+15555550100",
    MessagingProvider.VOICE: "+15555550100",
    MessagingProvider.TELEGRAM: "100200300",
    MessagingProvider.WECHAT: "o-try-out-follower",
    MessagingProvider.API: "app-user-1",
}
TRY_OUT_SENDER: dict[str, str] = {MessagingProvider.WHATSAPP: "100000000000001", MessagingProvider.SMS: "+15555550199"}


class Command(BaseCommand):
    help = (
        "Inject one inbound message on a messaging channel (whatsapp, telegram, wechat, sms, voice, api) as if "
        "the provider had delivered it, and print what would be sent back. Without an account of that provider, "
        "the organization gets a try-out one (its replies, also agents' replies from admin, are logged, not sent)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("channel", choices=[p.value for p in MessagingProvider])
        parser.add_argument("text", help="What the customer writes (for voice: the voicemail's transcription).")
        parser.add_argument("--org", default="trailhead", help="Organization slug (default: the demo's).")
        parser.add_argument("--from", dest="sender", help="The customer's address on the provider.")
        parser.add_argument("--name", default="", help="The customer's display name.")
        parser.add_argument("--id", dest="message_id", help="The provider's message id (repeat one to see a retry).")
        parser.add_argument("--start", action="store_true", help="A bot start (Telegram /start, a WeChat follow).")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = options["channel"]
        try:
            organization = organization_get(slug=options["org"])
            account = self._account(organization, provider)
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        sender = options["sender"] or DEFAULT_SENDER[provider]
        message_id = options["message_id"] or f"inject-{uuid.uuid4().hex[:12]}"
        self.stdout.write(f"{account} (account {account.pk}) receives from {sender}: {options['text']}")
        with printed_instead(self._print):
            if provider == MessagingProvider.VOICE:
                for kind, extra in (
                    (
                        "recorded",
                        {"recording_url": f"https://api.twilio.com/try-out/{message_id}", "recording_seconds": 20},
                    ),
                    ("transcribed", {"transcription": options["text"]}),
                ):
                    received = voice_call_event(
                        account=account, event=CallEvent(kind, message_id, sender, "completed", **extra)
                    )
            else:
                inbound = Inbound(
                    provider_message_id=message_id,
                    address=sender,
                    text=options["text"],
                    display_name=options["name"],
                    verified_phone=sender.startswith("+"),
                    command="start" if options["start"] else "",
                )
                received = messaging_receive(account=account, inbound=inbound)
        if received is None:
            raise CommandError("Nothing was stored.")
        self.stdout.write(
            f"{received.outcome}: message {received.message_id} in conversation {received.conversation_id}"
        )
        self._ticket(received.conversation_id)

    def _account(self, organization: Any, provider: str) -> MessagingAccount:
        existing = (
            MessagingAccount.objects.filter(organization=organization, provider=provider, active=True)
            .order_by("-try_out", "pk")
            .first()
        )
        if existing is not None:
            return existing
        account = MessagingAccount(
            organization=organization,
            provider=provider,
            name=f"Try-out {MessagingProvider(provider).label} (channel_inject)",
            sender_id=TRY_OUT_SENDER.get(provider, "try-out"),
            try_out=True,
        )
        typed = {"access_token": "try-out", "app_secret": "try-out", "bot_token": "0:try-out", "app_id": "wx-try-out"}
        typed |= {"token": "try-out", "account_sid": "AC-try-out", "auth_token": "try-out"}
        typed |= {"webhook_url": "https://app.example.com/concierge"}
        return messaging_account_save(account=account, typed=typed)

    def _print(self, account: MessagingAccount, outgoing: Outgoing) -> None:
        lines = [f"→ would send to {outgoing.to} through {account.get_provider_display()} (part {outgoing.part + 1}):"]
        lines += [f"  {line}" for line in outgoing.text.splitlines()]
        lines += [f"  [file] {file.name} ({file.content_type}, {len(file.content)} bytes)" for file in outgoing.files]
        self.stdout.write("\n".join(lines))

    def _ticket(self, conversation_id: int | None) -> None:
        from tickets.selectors import conversation_open_ticket

        if conversation_id is None:
            return
        ticket = conversation_open_ticket(conversation_id=conversation_id)
        if ticket is not None:
            self.stdout.write(
                f"handed to people: ticket #{ticket.pk} ({ticket.get_priority_display()}), {ticket.subject}"
            )
