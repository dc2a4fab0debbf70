"""Setting up a messaging account: which credentials each provider needs, the ones Concierge
can make itself (a verify token, a webhook secret), the webhook URLs to copy into the
provider's console, and registering the webhook with Telegram."""

import json
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from agents.messaging.models import MessagingAccount, MessagingProvider
from config.errors import DomainError
from tenancy.audit import audit_record


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str
    secret: bool = True
    required: bool = True
    generated: bool = False  # Concierge makes one when left blank (the provider is told it)


P = MessagingProvider
CREDENTIALS: dict[str, tuple[CredentialField, ...]] = {
    P.WHATSAPP: (
        CredentialField("access_token", "Access token (a system user's permanent token)"),
        CredentialField("app_secret", "App secret (signs the webhook, X-Hub-Signature-256)"),
        CredentialField("verify_token", "Verify token (give it to Meta with the webhook URL)", generated=True),
    ),
    P.TELEGRAM: (
        CredentialField("bot_token", "Bot token from @BotFather"),
        CredentialField("webhook_secret", "Webhook secret token", generated=True),
    ),
    P.WECHAT: (
        CredentialField("app_id", "AppID", secret=False),
        CredentialField("app_secret", "AppSecret"),
        CredentialField("token", "Token (the server configuration's)"),
        CredentialField("encoding_aes_key", "EncodingAESKey (safe mode only)", required=False),
    ),
    P.SMS: (
        CredentialField("account_sid", "Account SID", secret=False),
        CredentialField("auth_token", "Auth token"),
    ),
    P.VOICE: (
        CredentialField("account_sid", "Account SID", secret=False),
        CredentialField("auth_token", "Auth token"),
    ),
    P.API: (
        CredentialField("secret", "Signing secret (HMAC-SHA256, both directions)", generated=True),
        CredentialField("webhook_url", "Your app's webhook URL for replies", secret=False),
    ),
}
SENDER_ID_NEEDED: dict[str, str] = {
    P.WHATSAPP: "the phone number id",
    P.SMS: "the Twilio number",
    P.VOICE: "the Twilio number",
}


def messaging_credentials_merge(
    *, provider: str, stored: dict[str, Any], typed: dict[str, str], sender_id: str = ""
) -> dict[str, str]:
    """The account's credentials after an edit: a field typed replaces the stored value, a blank
    one keeps it, a missing generated one is made; DomainError names what is still missing."""
    fields = CREDENTIALS.get(provider)
    if fields is None:
        raise DomainError(f"Unknown provider '{provider}'.")
    merged: dict[str, str] = {}
    for field in fields:
        value = (typed.get(field.name) or "").strip() or str(stored.get(field.name) or "")
        if not value and field.generated:
            value = secrets.token_urlsafe(24)
        if value:
            merged[field.name] = value
    missing = [field.label for field in fields if field.required and not merged.get(field.name)]
    if missing:
        raise DomainError("Missing: " + "; ".join(missing) + ".")
    if provider in SENDER_ID_NEEDED and not sender_id.strip():
        raise DomainError(f"Sender id is needed: {SENDER_ID_NEEDED[provider]}.")
    url = merged.get("webhook_url", "")
    if url and not url.startswith(("https://", "http://")):
        raise DomainError("The webhook URL must start with https://.")
    key = merged.get("encoding_aes_key", "")
    if key and len(key) != 43:
        raise DomainError("An EncodingAESKey is 43 characters long.")
    return merged


def messaging_account_save(*, account: MessagingAccount, typed: dict[str, str], actor: Any = None) -> MessagingAccount:
    """Store the account with its credentials merged and encrypted; audited without the values."""
    stored = account.secrets()
    merged = messaging_credentials_merge(
        provider=account.provider, stored=stored, typed=typed, sender_id=account.sender_id
    )
    changed = sorted(name for name in merged if merged[name] != stored.get(name))
    account.credentials = json.dumps(merged)
    with transaction.atomic():
        created = account.pk is None
        account.save()
        audit_record(
            organization_id=account.organization_id,
            action="messaging.account_saved",
            actor=actor,
            object_type="messaging_account",
            object_id=account.pk,
            data={"provider": account.provider, "created": created, "credentials_changed": changed},
        )
    return account


def messaging_webhook_url(account: MessagingAccount, event: str = "") -> str:
    base = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    return f"{base}{reverse('messaging-webhook', args=[account.webhook_key])}" + (f"?event={event}" if event else "")


def telegram_webhook_register(*, account: MessagingAccount) -> str:
    """Tell Telegram where to post this bot's updates, with the secret it must send back."""
    from telegram.error import TelegramError

    from agents.messaging.telegram import _with_bot

    if account.provider != P.TELEGRAM:
        raise DomainError("Only a Telegram bot registers its webhook from here.")
    url = messaging_webhook_url(account)
    if not url.startswith("https://"):
        raise DomainError(f"Telegram only posts to https:// URLs; CONCIERGE_PUBLIC_URL makes this one {url}.")
    try:
        _with_bot(
            account,
            lambda bot: bot.set_webhook(
                url=url, secret_token=account.secret("webhook_secret"), allowed_updates=["message", "edited_message"]
            ),
        )
    except TelegramError as exc:
        raise DomainError(f"Telegram refused the webhook: {exc.message}") from exc
    return url
