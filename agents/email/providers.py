"""Inbound mail from email providers' webhooks, normalised by django-anymail.

``POST /api/v1/email/inbound/<organization slug>/<provider>``: the organization's credentials for
that provider (admin, stored encrypted) are handed to anymail's own webhook view, which checks
the provider's basic auth and signature and turns the post into a MIME message; that message
then takes the same road as mail from a polled mailbox or an MTA pipe (``email_receive``).

Replays: Mailgun signs a timestamp with each post, and one signed more than
``SIGNATURE_MAX_AGE`` seconds away from now is refused. Within that window, and for providers
that only offer basic auth, a post sent again finds its Message-ID stored already and adds
nothing. Amazon SNS's own message signature is not checked (anymail does not, and checking it
means fetching Amazon's certificate at run time): SES posts are trusted on their basic auth.
"""

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from anymail.exceptions import AnymailError, AnymailNotSupportedWarning, AnymailWebhookValidationFailure
from anymail.webhooks.base import AnymailCoreWebhookView
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.email.inbound import email_receive
from agents.email.parsing import MAX_RAW_BYTES
from agents.models import EmailProvider, EmailProviderKind
from config.errors import DomainError

logger = logging.getLogger(__name__)

SIGNATURE_MAX_AGE = 300  # seconds either side of now a signed timestamp may be


@dataclass(frozen=True)
class ProviderSpec:
    # anymail's view, named, not imported: the web process imports a provider's module on its
    # first post (Amazon SES's imports boto3, ~19 MB in every web process that never gets one).
    view_path: str
    signing_setting: str = ""  # the anymail setting the organization's signing key goes to
    basic_auth: bool = True  # the provider's only protection is the URL's basic auth
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def view(self) -> type[AnymailCoreWebhookView]:
        return import_string(f"anymail.webhooks.{self.view_path}")


PROVIDERS: dict[str, ProviderSpec] = {
    EmailProviderKind.MAILGUN: ProviderSpec(
        "mailgun.MailgunInboundWebhookView", "webhook_signing_key", basic_auth=False
    ),
    EmailProviderKind.SENDGRID: ProviderSpec("sendgrid.SendGridInboundWebhookView"),
    EmailProviderKind.POSTMARK: ProviderSpec("postmark.PostmarkInboundWebhookView"),
    # Subscribing the SNS topic is confirmed by hand in the SNS console (no boto3 call from here).
    EmailProviderKind.AMAZON_SES: ProviderSpec(
        "amazon_ses.AmazonSESInboundWebhookView", extra={"auto_confirm_sns_subscriptions": False}
    ),
    EmailProviderKind.MAILERSEND: ProviderSpec(
        "mailersend.MailerSendInboundWebhookView", "inbound_secret", basic_auth=False
    ),
}


def email_provider_problem(*, provider: str, webhook_secret: str, signing_key: str) -> str:
    """What a provider's settings lack, or "" when they can be used."""
    spec = PROVIDERS[provider]
    if spec.signing_setting and not signing_key:
        return f"{EmailProviderKind(provider).label} signs its posts: its signing key is needed."
    if spec.basic_auth and ":" not in webhook_secret:
        return "This provider is checked by basic auth only: set the webhook secret as user:password."
    return ""


def _refusal(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _stale(request: HttpRequest, provider: str) -> bool:
    if provider != EmailProviderKind.MAILGUN:
        return False
    try:
        signed_at = int(request.POST["timestamp"])
    except (KeyError, ValueError):
        return True
    return abs(time.time() - signed_at) > SIGNATURE_MAX_AGE


@csrf_exempt
@require_POST
def email_provider_inbound(request: HttpRequest, slug: str, provider: str) -> HttpResponse:
    spec = PROVIDERS.get(provider)
    config = (
        EmailProvider.objects.select_related("channel__organization")
        .filter(channel__organization__slug=slug, provider=provider, enabled=True)
        .first()
        if spec is not None
        else None
    )
    if spec is None or config is None:
        return _refusal(404, "not_found", f"This organization receives no email from {provider!r}.")
    if int(request.headers.get("Content-Length") or 0) > MAX_RAW_BYTES * 2:  # form and JSON encodings swell
        return _refusal(413, "too_large", f"Emails are limited to {MAX_RAW_BYTES // 2**20} MB.")
    problem = email_provider_problem(
        provider=provider, webhook_secret=config.webhook_secret, signing_key=config.signing_key
    )
    if problem:  # never accept an unauthenticated post
        return _refusal(403, "not_configured", problem)
    if config.webhook_secret and "HTTP_AUTHORIZATION" not in request.META:
        # Amazon SNS, among others, sends basic auth only once challenged.
        response = _refusal(401, "auth_required", "This webhook needs its basic auth.")
        response["WWW-Authenticate"] = 'Basic realm="Concierge inbound email"'
        return response
    kwargs: dict[str, Any] = {"webhook_secret": config.webhook_secret or [], **spec.extra}
    if spec.signing_setting:
        kwargs[spec.signing_setting] = config.signing_key
    with warnings.catch_warnings():  # anymail no longer tests SendGrid; its inbound parsing stands
        warnings.simplefilter("ignore", AnymailNotSupportedWarning)
        view = spec.view(**kwargs)
    try:
        view.run_validators(request)
    except AnymailWebhookValidationFailure as exc:
        return _refusal(403, "bad_signature", str(exc))
    except AnymailError as exc:
        return _refusal(400, "invalid", str(exc))
    if _stale(request, provider):
        return _refusal(403, "stale_signature", f"The signature is more than {SIGNATURE_MAX_AGE} s old: a replay.")
    try:
        events = view.parse_events(request)
    except (AnymailError, ValueError, KeyError, TypeError) as exc:
        return _refusal(400, "invalid", f"Not an inbound email from {EmailProviderKind(provider).label}: {exc}")
    if provider == EmailProviderKind.AMAZON_SES and request.headers.get("x-amz-sns-message-type") == (
        "SubscriptionConfirmation"
    ):
        subscription = view._parse_sns_message(request)
        logger.warning(
            "Amazon SNS asks to confirm topic %s for %s: open %s or confirm it in the SNS console",
            subscription.get("TopicArn"),
            slug,
            subscription.get("SubscribeURL"),
        )
    outcomes = []
    for event in events:
        try:
            received = email_receive(raw=event.message.as_bytes(), organization=config.channel.organization)
        except DomainError as exc:
            return _refusal(400, "invalid", str(exc))
        outcomes.append({"status": received.outcome, "conversation_id": received.conversation_id})
    EmailProvider.objects.filter(pk=config.pk).update(last_received_at=timezone.now())
    return JsonResponse({"received": outcomes}, status=200)
