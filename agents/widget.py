"""The chat widget on a company's own website: which websites may embed it, who the visitor is,
and the session that lets a page open the chat websocket.

- Origins: each organization lists the websites allowed to embed its widget, exact
  (``https://shop.example.com``) or every subdomain (``https://*.example.com``). The widget's
  HTTP endpoints answer CORS for them (django-cors-headers, asked per request through
  ``cors_request_allowed``) and refuse other websites; the chat websocket does the same.
  Concierge's own pages (its host) are always allowed.
- Identity: an anonymous visitor keeps one customer and conversation through a signed token the
  widget keeps in localStorage and refreshes before it expires. A company's signed-in user is
  identified by ``user_id`` with ``user_hash = HMAC-SHA256(identity secret, user_id)`` made on
  the company's server; a missing or wrong hash is refused. An identified visitor gets their
  own customer record and latest conversation on any device.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.http.request import split_domain_port, validate_host

from agents.models import PrechatForm, WidgetOrigin, WidgetSettings, identity_secret_new
from agents.tokens import WidgetSession, widget_token_issue, widget_token_read
from config.errors import DomainError, NotAllowed
from tenancy.models import Organization

WIDGET_PATH_PREFIX = "/api/v1/widget/"


# --- origins -------------------------------------------------------------------------------


def origin_normalize(value: str) -> str:
    """``scheme://host[:port]`` in lower case, or ``scheme://*.domain[:port]``; DomainError for
    anything else (paths, queries, credentials, other schemes, a bare ``*``)."""
    raw = (value or "").strip().rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DomainError(f"{value!r} is not an origin: write it as https://shop.example.com.")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise DomainError(f"{value!r} is not an origin: no path, query or user name, just scheme://host[:port].")
    host = (parts.hostname or "").lower()
    wildcard = host.startswith("*.")
    name = host[2:] if wildcard else host
    labels = name.split(".")
    if not name or "*" in name or any(not label for label in labels) or (wildcard and len(labels) < 2):
        raise DomainError(f"{value!r} is not an origin: a wildcard covers subdomains, as in https://*.example.com.")
    try:
        port = parts.port
    except ValueError as exc:
        raise DomainError(f"{value!r} has a bad port.") from exc
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def origin_matches(origin: str, allowed: str) -> bool:
    """Whether a browser's Origin header is covered by one allowed entry."""
    if origin == allowed:
        return True
    if "://*." not in allowed:
        return False
    scheme, rest = allowed.split("://*.", 1)
    domain, _, port = rest.partition(":")
    parts = urlsplit(origin)
    try:
        origin_port = parts.port
    except ValueError:
        return False
    host = parts.hostname or ""
    return (
        parts.scheme == scheme
        and str(origin_port or "") == port
        and host.endswith("." + domain)
        and host != "." + domain
    )


def origin_is_own(origin: str, host: str) -> bool:
    """A page Concierge serves itself (the demo site, the console): the origin is the host the
    request came to (and its port, when the Host header names one; a proxy passing ``$host``
    drops it); without a Host header, one of ALLOWED_HOSTS (never ``*``)."""
    parts = urlsplit(origin)
    if not parts.netloc:
        return False
    if host:  # a browser always sends Host: the page must be on this host (and port, when Host has one)
        domain, port = split_domain_port(host)
        if not domain or (parts.hostname or "") != domain:
            return False
        try:
            origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        except ValueError:
            return False
        return not port or str(origin_port) == port
    own = [name for name in settings.ALLOWED_HOSTS if name != "*"]
    return validate_host(parts.hostname or "", own)


def _origin_listed(origin: str, entries: Any) -> bool:
    """Whether a browser's Origin header matches one of these allowed entries."""
    try:
        origin = origin_normalize(origin)
    except DomainError:
        return False
    return any(origin_matches(origin, entry) for entry in entries.values_list("origin", flat=True))


def origin_allowed(*, organization_id: int, origin: str, host: str) -> bool:
    if not origin or origin_is_own(origin, host):
        return True
    return _origin_listed(origin, WidgetOrigin.objects.filter(widget__organization_id=organization_id))


def origin_check(*, organization_id: int, origin: str, host: str) -> None:
    if not origin_allowed(organization_id=organization_id, origin=origin, host=host):
        raise NotAllowed(
            f"The website {origin} is not allowed to embed this chat widget. An admin adds it under "
            "Chat widget > Allowed websites (or: manage.py widget_origins --add).",
            code="origin_not_allowed",
        )


def cors_request_allowed(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """django-cors-headers asks this for each request: CORS headers go on widget endpoints for
    origins some organization allows. Which organization allows it is checked by the view, which
    knows the widget key (a preflight does not)."""
    origin = request.headers.get("origin", "")
    if not request.path_info.startswith(WIDGET_PATH_PREFIX) or not origin:
        return False
    return _origin_listed(origin, WidgetOrigin.objects.distinct())


@transaction.atomic
def widget_origin_add(*, organization: Organization, origin: str) -> WidgetOrigin:
    entry, _ = WidgetOrigin.objects.get_or_create(widget=widget_settings(organization), origin=origin_normalize(origin))
    return entry


@transaction.atomic
def widget_origin_remove(*, organization: Organization, origin: str) -> None:
    deleted, _ = WidgetOrigin.objects.filter(
        widget__organization=organization, origin=origin_normalize(origin)
    ).delete()
    if not deleted:
        raise DomainError(f"{origin} is not in the list of allowed websites.")


def widget_origins_list(*, organization: Organization) -> list[str]:
    return list(WidgetOrigin.objects.filter(widget__organization=organization).values_list("origin", flat=True))


# --- settings and identity -----------------------------------------------------------------


def widget_settings(organization: Organization) -> WidgetSettings:
    """The organization's widget settings, made with the defaults the first time."""
    found, _ = WidgetSettings.objects.get_or_create(organization=organization)
    return found


@transaction.atomic
def widget_identity_secret_rotate(*, config: WidgetSettings) -> WidgetSettings:
    """A new identity secret: hashes made with the old one are refused from now on."""
    config.identity_secret = identity_secret_new()
    config.save(update_fields=["identity_secret"])
    return config


def identity_hash(secret: str, user_id: str) -> str:
    """What the company's server sends as ``user_hash``: hex HMAC-SHA256 of the user id."""
    return hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Identity:
    user_id: str
    user_hash: str
    email: str = ""
    name: str = ""


def identity_verify(config: WidgetSettings, identity: Identity) -> None:
    if not identity.user_id or len(identity.user_id) > 100:
        raise DomainError("identify() needs a user_id of at most 100 characters.")
    expected = identity_hash(config.identity_secret, identity.user_id)
    if not identity.user_hash or not hmac.compare_digest(expected, identity.user_hash.strip().lower()):
        raise NotAllowed(
            "Identity verification failed: user_hash must be the HMAC-SHA256 of user_id made with "
            "the organization's identity secret.",
            code="identity_refused",
        )


# --- sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WidgetStart:
    conversation: Any
    token: str
    identified: bool
    resumed: bool


def _resumable(conversation_id: int, organization: Organization, customer_id: int) -> Any:
    from tickets.models import Conversation

    return (
        Conversation.objects.filter(pk=conversation_id, organization=organization, customer_id=customer_id)
        .exclude(status=Conversation.Status.ENDED)
        .first()
    )


def _latest_open_conversation(customer: Any) -> Any:
    from tickets.models import Channel, Conversation

    return (
        Conversation.objects.filter(customer=customer, channel=Channel.WEB)
        .exclude(status=Conversation.Status.ENDED)
        .order_by("-started_at")
        .first()
    )


def _identified_customer(organization: Organization, identity: Identity) -> Any:
    from tickets import services as desk
    from tickets.models import Customer

    customer = Customer.objects.filter(organization=organization, external_id=identity.user_id).first()
    email, name = identity.email.strip().lower()[:254], identity.name.strip()[:200]
    if customer is None:
        return desk.customer_create(organization=organization, external_id=identity.user_id, name=name, email=email)
    changes = {key: value for key, value in {"name": name, "email": email}.items() if value}
    return desk.customer_update(customer=customer, **changes) if changes else customer


@transaction.atomic
def widget_session_start(
    *,
    widget_key: str,
    name: str = "",
    email: str = "",
    token: str = "",
    identity: Identity | None = None,
    origin: str = "",
    host: str = "",
) -> WidgetStart:
    """Open or resume the visitor's chat and sign a token for it.

    In order: a website the organization does not allow is refused (nothing is stored); an
    identity is verified and resumes that user's latest open chat (any device); a still-valid
    token of this organization resumes its chat (a page load, a new tab, a refresh before
    expiry); otherwise a new customer, after the pre-chat form when the organization asks for it."""
    from tickets import services as desk
    from tickets.selectors import customer_by_email

    organization = Organization.objects.filter(widget_key=widget_key).first() if widget_key else None
    if organization is None:
        raise DomainError("Unknown widget key.")
    origin_check(organization_id=organization.pk, origin=origin, host=host)
    config = widget_settings(organization)
    customer: Any = None
    conversation: Any = None
    identified = False
    if identity is not None:
        identity_verify(config, identity)
        customer = _identified_customer(organization, identity)
        conversation = _latest_open_conversation(customer)
        identified = True
    else:
        previous = widget_token_read(token) if token else None
        if previous is not None and previous.organization_id == organization.pk:
            conversation = _resumable(previous.conversation_id, organization, previous.customer_id)
            customer = conversation.customer if conversation is not None else None
            identified = previous.identified
            if customer is None:  # the chat ended: the same visitor starts a new one
                from tickets.models import Customer

                customer = Customer.objects.filter(pk=previous.customer_id, organization=organization).first()
    resumed = conversation is not None
    if customer is None:
        name, email = (name or "").strip()[:200], (email or "").strip().lower()
        if config.prechat == PrechatForm.REQUIRED and not (name and email):
            raise DomainError("Please give your name and email to start the chat.")
        customer = customer_by_email(organization=organization, email=email) if email else None
        if customer is None:
            customer = desk.customer_create(organization=organization, name=name, email=email)
        elif name and not customer.name:
            customer = desk.customer_update(customer=customer, name=name)
    if conversation is None:
        conversation = desk.conversation_start(customer=customer)
    session = WidgetSession(organization.pk, customer.pk, conversation.pk, identified)
    return WidgetStart(conversation, widget_token_issue(session), identified, resumed)


def widget_contact_leave(*, conversation_id: int, email: Any) -> None:
    """Outside business hours the widget asks for an email: the reply then reaches the customer
    by email too (the desk emails a customer whose chat is closed)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    from tickets import services as desk
    from tickets.models import Conversation

    email = email.strip().lower() if isinstance(email, str) else ""
    try:
        validate_email(email)
    except ValidationError as exc:
        raise DomainError("Please give a valid email address.") from exc
    conversation = Conversation.objects.select_related("customer").get(pk=conversation_id)
    desk.customer_update(customer=conversation.customer, email=email[:254])


def widget_public_config(*, widget_key: str, origin: str = "", host: str = "") -> dict[str, Any]:
    """What the widget shows before a chat starts: its look and words, and the pre-chat form."""
    organization = Organization.objects.filter(widget_key=widget_key).first() if widget_key else None
    if organization is None:
        raise DomainError("Unknown widget key.")
    origin_check(organization_id=organization.pk, origin=origin, host=host)
    config = widget_settings(organization)
    return {
        "organization": organization.name,
        "title": config.title or organization.name,
        "greeting": config.greeting,
        "color": config.color,
        "position": config.position,
        "locale": config.locale,
        "prechat": config.prechat,
        "token_max_age": settings.CONCIERGE_WIDGET_TOKEN_MAX_AGE,
    }
