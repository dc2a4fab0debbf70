"""System checks for the data-protection settings."""

from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from tickets.crypto import validate_key


@register(Tags.security)
def encryption_key_valid(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        validate_key(settings.FIELD_ENCRYPTION_KEY)
    except ValueError as exc:
        return [Error(str(exc), id="concierge.E001")]
    return []


@register(Tags.security, deploy=True)
def encryption_key_set(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if not settings.FIELD_ENCRYPTION_KEY:
        return [
            Warning(
                "FIELD_ENCRYPTION_KEY is not set: personal data is encrypted with a key derived from SECRET_KEY.",
                hint="Set FIELD_ENCRYPTION_KEY to a Fernet key (README, Security), kept apart from SECRET_KEY.",
                id="concierge.W001",
            )
        ]
    return []
