"""Messaging channels' records: an organization's account with a provider (WhatsApp, Telegram,
WeChat, Twilio SMS and Voice, the API channel), the identities a customer is known by on them,
every message that went in or out through one with its delivery state, and every phone call."""

import json
import secrets
from typing import Any

from django.db import models
from django.db.models import Q

from tenancy.models import Organization
from tickets.fields import BlindIndexField, EncryptedTextField


class MessagingProvider(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp Cloud API"
    TELEGRAM = "telegram", "Telegram bot"
    SMS = "sms", "SMS (Twilio)"
    WECHAT = "wechat", "WeChat Official Account"
    VOICE = "voice", "Phone (Twilio Voice)"
    API = "api", "API channel (your own app)"


def webhook_key_new() -> str:
    return secrets.token_urlsafe(18)


class MessagingAccount(models.Model):
    """One provider account of an organization: the provider's credentials (encrypted, as JSON),
    the key in its webhook URL, and whether the assistant answers what arrives through it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="messaging_accounts")
    provider = models.CharField(max_length=10, choices=MessagingProvider.choices)
    name = models.CharField(max_length=100, help_text="Shown to staff, e.g. 'WhatsApp +44 20 7946 0000'.")
    webhook_key = models.CharField(
        max_length=40, unique=True, default=webhook_key_new, editable=False, help_text="Names this account in its URL."
    )
    sender_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="Our own id on the provider: the WhatsApp phone number id, the Twilio number (E.164), the WeChat "
        "account's original id (gh_…).",
    )
    credentials = EncryptedTextField(
        default="{}",
        help_text="JSON with the provider's secrets (see README, 'Messaging channels'). Stored encrypted.",
    )
    assistant_answers = models.BooleanField(default=True, help_text="Off: every message goes to an agent.")
    greeting = models.CharField(
        max_length=500,
        blank=True,
        help_text="Phone: what a caller hears before the tone. Blank: the built-in greeting in the account's language.",
    )
    language = models.CharField(
        max_length=10,
        default="en",
        choices=[("en", "English"), ("zh", "Simplified Chinese")],
        help_text="Greets a new follower or subscriber (Telegram /start, WeChat follow); on the phone, the "
        "language the greeting is spoken and voicemail transcribed in.",
    )
    active = models.BooleanField(default=True)
    try_out = models.BooleanField(
        default=False,
        help_text="A try-out account (channel_inject makes one): replies are written to the log, never sent.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "messaging account"
        ordering = ["organization", "provider", "name"]

    def __str__(self) -> str:
        return f"{self.get_provider_display()}: {self.name}"

    def secrets(self) -> dict[str, Any]:
        try:
            value = json.loads(self.credentials or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}

    def secret(self, name: str) -> str:
        return str(self.secrets().get(name) or "")


class ChannelIdentity(models.Model):
    """How a customer is known on one provider: a Telegram chat id, a WhatsApp or SMS phone
    number, an app's user id. Phone numbers the provider has verified join one customer across
    channels."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="channel_identities")
    customer = models.ForeignKey("tickets.Customer", on_delete=models.CASCADE, related_name="channel_identities")
    provider = models.CharField(max_length=10, choices=MessagingProvider.choices)
    address = EncryptedTextField(help_text="The provider's id for the person (encrypted).")
    address_hash = BlindIndexField(source="address")
    verified_phone = models.BooleanField(default=False, help_text="The address is a phone number the provider proved.")
    display_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "channel identities"
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "address_hash"], name="channel_identity_unique_address"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.address}"


class Direction(models.TextChoices):
    INBOUND = "in", "Received"
    OUTBOUND = "out", "Sent"


class DeliveryStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    FAILED = "failed", "Failed"


# A status callback moves a message forward only: a late "sent" never undoes "read".
STATUS_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.FAILED: 4,
}


class MessagingRecord(models.Model):
    """One message in or out through an account: the provider's id for it (inbound: what makes
    a retried webhook a duplicate; outbound: what status callbacks name), and its state."""

    account = models.ForeignKey(MessagingAccount, on_delete=models.CASCADE, related_name="records")
    conversation = models.ForeignKey(
        "tickets.Conversation", null=True, blank=True, on_delete=models.CASCADE, related_name="messaging_records"
    )
    message = models.OneToOneField(
        "tickets.Message", null=True, blank=True, on_delete=models.CASCADE, related_name="messaging"
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    provider_message_id = models.CharField(max_length=200, blank=True)
    recipient = EncryptedTextField(blank=True)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices)
    reason = models.CharField(max_length=300, blank=True, help_text="Why sending failed, in the provider's words.")
    attempts = models.PositiveSmallIntegerField(default=0)
    parts = models.PositiveSmallIntegerField(default=0, help_text="Outbound: how many parts have been sent.")
    media = models.JSONField(default=list, blank=True, help_text="Inbound: the provider's names for the files sent.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "direction", "provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="messaging_record_unique_provider_id",
            )
        ]
        indexes = [models.Index(fields=["conversation", "direction"])]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.provider_message_id or self.pk}"


class CallStatus(models.TextChoices):
    RINGING = "ringing", "Ringing"
    VOICEMAIL = "voicemail", "Voicemail left"
    MISSED = "missed", "Missed"


class VoiceCall(models.Model):
    """One phone call to an organization's number: who called, whether they left a voicemail
    (its recording and the provider's transcription) or hung up (a missed call), and the
    conversation it became."""

    account = models.ForeignKey(MessagingAccount, on_delete=models.CASCADE, related_name="calls")
    call_sid = models.CharField(max_length=64, help_text="Twilio's id for the call.")
    caller = EncryptedTextField(help_text="The caller's number as the carrier gave it (encrypted).")
    status = models.CharField(max_length=10, choices=CallStatus.choices, default=CallStatus.RINGING)
    provider_status = models.CharField(max_length=20, blank=True, help_text="Twilio's last CallStatus.")
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds the call lasted.")
    recording_sid = models.CharField(max_length=64, blank=True)
    recording_url = models.URLField(max_length=500, blank=True)
    recording_seconds = models.PositiveIntegerField(null=True, blank=True, verbose_name="voicemail seconds")
    transcription = EncryptedTextField(blank=True)
    conversation = models.ForeignKey(
        "tickets.Conversation", null=True, blank=True, on_delete=models.SET_NULL, related_name="calls"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "phone call"
        ordering = ["-started_at"]
        constraints = [models.UniqueConstraint(fields=["account", "call_sid"], name="voice_call_unique_sid")]
        indexes = [models.Index(fields=["account", "status"])]

    def __str__(self) -> str:
        return f"Call {self.call_sid}"
