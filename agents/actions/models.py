"""An organization's actions (see agents.actions). Imported by agents.models, so Django finds it."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from tenancy.models import Organization
from tickets.fields import EncryptedTextField

# Inputs the assistant finds in the conversation itself; any other input name is asked for and
# taken from the customer's next message whole (e.g. "address").
FOUND_INPUTS = {"order", "email"}
# Inputs filled from the identified customer's profile, never asked for.
PROFILE_INPUTS = {"customer_id", "customer_email", "customer_name"}


class ActionMethod(models.TextChoices):
    GET = "GET", "GET (inputs in the query string)"
    POST = "POST", "POST (inputs as a JSON object)"


class ActionAuth(models.TextChoices):
    NONE = "none", "None"
    BEARER = "bearer", "Bearer token (Authorization: Bearer <secret>)"
    BASIC = "basic", "Basic (username and secret)"
    HEADER = "header", "A header of your choice holding the secret"
    HMAC = "hmac", "HMAC-SHA256 signature of the request (X-Concierge-Signature)"


def action_url_validate(url: str) -> None:
    """HTTPS only; plain HTTP just for the hosts the operator allows (the demo's own server)."""
    parts = urlsplit(url.replace("{", "").replace("}", ""))
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname in settings.CONCIERGE_ACTIONS_HTTP_HOSTS:
        return
    raise ValidationError("An action's URL must be https:// (plain http only for CONCIERGE_ACTIONS_HTTP_HOSTS).")


class AssistantAction(models.Model):
    """One endpoint of the organization's systems the assistant may call for a customer."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="assistant_actions")
    name = models.SlugField(max_length=50, help_text="Short name, shown in the audit trail (e.g. order_status).")
    description = models.CharField(max_length=200, blank=True, help_text="What it does, for staff.")
    intent = models.CharField(
        max_length=100, blank=True, help_text="The intent that calls it (e.g. order_status), from the intent examples."
    )
    examples = models.TextField(
        blank=True, help_text="Or: customer phrases that call it, one a line (matched by meaning, not exact words)."
    )
    method = models.CharField(max_length=4, choices=ActionMethod.choices, default=ActionMethod.GET)
    url = models.CharField(
        max_length=500,
        validators=[action_url_validate],
        help_text="May hold inputs in braces, e.g. https://shop.example.com/api/orders/{order}.",
    )
    inputs = models.CharField(
        max_length=200,
        blank=True,
        help_text="Comma-separated: order and email are found in the conversation; customer_id, customer_email "
        "and customer_name come from the identified customer; any other name is asked for.",
    )
    auth = models.CharField(max_length=8, choices=ActionAuth.choices, default=ActionAuth.NONE)
    auth_username = models.CharField("username", max_length=200, blank=True, help_text="For basic authentication.")
    auth_header = models.CharField(
        "header name", max_length=100, blank=True, help_text="For 'a header of your choice', e.g. X-Api-Key."
    )
    auth_secret = EncryptedTextField(
        "secret", blank=True, help_text="Token, password or signing key; stored encrypted."
    )
    timeout_seconds = models.FloatField(default=5.0, validators=[MinValueValidator(0.5), MaxValueValidator(30.0)])
    requires_identified = models.BooleanField(
        "customer must be identified", default=True, help_text="Only for customers whose identity the widget verified."
    )
    reply_en = models.TextField(
        "reply (English)",
        blank=True,
        help_text="Made from the result's fields in braces, e.g. 'Order {order} is {status}.' Blank lists the fields.",
    )
    reply_zh = models.TextField("reply (Simplified Chinese)", blank=True)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "agents"
        verbose_name = "assistant action"
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="assistant_action_unique")]

    def __str__(self) -> str:
        return self.name

    def input_names(self) -> list[str]:
        return [name.strip() for name in self.inputs.split(",") if name.strip()]

    def clean(self) -> None:
        if not self.intent and not self.examples.strip():
            raise ValidationError("Give the intent or example phrases that call this action.")
        if self.auth == ActionAuth.BASIC and not self.auth_username:
            raise ValidationError({"auth_username": "Basic authentication needs a username."})
        if self.auth == ActionAuth.HEADER and not self.auth_header:
            raise ValidationError({"auth_header": "Name the header that carries the secret."})
        if self.auth != ActionAuth.NONE and not self.auth_secret:
            raise ValidationError({"auth_secret": "This authentication needs a secret."})
        for name in self.input_names():
            if not name.isidentifier():
                raise ValidationError({"inputs": f"{name!r} is not a valid input name (letters, digits, _)."})
        if not self.requires_identified and set(self.input_names()) & PROFILE_INPUTS:
            raise ValidationError(
                {"requires_identified": "Inputs from the customer's profile need an identified customer."}
            )
