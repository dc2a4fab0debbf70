"""The API channel: a company's own app (its mobile app, a kiosk, a bot of its own) posts its
customers' messages to Concierge and receives the replies on a webhook of its own, what
Chatwoot calls an API inbox. Both directions are signed the same way:

    X-Concierge-Timestamp: <unix seconds>
    X-Concierge-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

A request older or newer than five minutes is refused (a replayed one), and a message id
posted twice is taken once. Inbound body::

    {"id": "app-msg-1", "user": {"id": "u-42", "name": "Kim", "email": "kim@example.com"},
     "text": "Where is my order?"}

or a status of a reply we sent: ``{"type": "status", "id": "<our id>", "status": "read"}``.
The company's webhook receives ``{"id", "user_id", "author", "text", "sources", "attachments"}``
(attachments as signed links that expire); ``id`` is the same on a retry, so the app can drop a
repeat.

Credentials: ``{"secret": "…", "webhook_url": "https://app.example.com/concierge"}``."""

import hashlib
import hmac
import json
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from agents.messaging.adapters import (
    Inbound,
    Media,
    Outgoing,
    SendFailed,
    StatusUpdate,
    WebhookRefused,
    json_body,
    provider_http,
)
from tickets.rules import MESSAGE_MAX_CHARS

SIGNATURE = "X-Concierge-Signature"
TIMESTAMP = "X-Concierge-Timestamp"
STATUSES = {"delivered", "read", "failed"}


def api_signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _field(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name, "")
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise WebhookRefused(400, f"'{name}' must be a string.")
    value = str(value).strip()
    if len(value) > limit:
        raise WebhookRefused(400, f"'{name}' is longer than {limit} characters.")
    return value


class ApiChannelAdapter:
    provider = "api"
    channel = "api"
    max_chars = 20000
    reply_window = None

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        return JsonResponse({"error": "POST signed messages here (see the README, 'API channel')."}, status=405)

    def verify(self, account: Any, request: HttpRequest) -> None:
        secret = account.secret("secret")
        stamp = request.headers.get(TIMESTAMP, "")
        given = request.headers.get(SIGNATURE, "")
        if not given or not stamp:
            raise WebhookRefused(401, f"Sign the request: {TIMESTAMP} and {SIGNATURE} headers.")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > settings.CONCIERGE_WEBHOOK_MAX_AGE:
            raise WebhookRefused(401, f"{TIMESTAMP} is not within five minutes of now (a replayed request?).")
        if not secret or not hmac.compare_digest(given, api_signature(secret, stamp, request.body)):
            raise WebhookRefused(403, f"{SIGNATURE} does not match this channel's secret.")

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]:
        data = json_body(request)
        if not isinstance(data, dict):
            raise WebhookRefused(400, "The body must be a JSON object.")
        message_id = _field(data, "id", 200)
        if not message_id:
            raise WebhookRefused(400, "'id' (your id for this message) is required.")
        if data.get("type") == "status":
            status = _field(data, "status", 20)
            if status not in STATUSES:
                raise WebhookRefused(400, f"'status' must be one of {', '.join(sorted(STATUSES))}.")
            return [StatusUpdate(message_id, status, _field(data, "reason", 300))]
        user = data.get("user")
        if not isinstance(user, dict) or not _field(user, "id", 200):
            raise WebhookRefused(400, "'user.id' (your id for the customer) is required.")
        text = _field(data, "text", MESSAGE_MAX_CHARS)
        if not text:
            raise WebhookRefused(400, "'text' is required and must not be empty.")
        return [
            Inbound(
                provider_message_id=message_id,
                address=_field(user, "id", 200),
                text=text,
                display_name=_field(user, "name", 200),
                email=_field(user, "email", 254).lower(),
            )
        ]

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        return JsonResponse(
            {"ok": True, "received": [{"status": r.outcome, "conversation_id": r.conversation_id} for r in received]},
            status=202,
        )

    def send(self, account: Any, outgoing: Outgoing) -> str:
        import httpx

        url, secret = account.secret("webhook_url"), account.secret("secret")
        if not url:
            raise SendFailed("the API channel has no webhook_url to deliver replies to", retry=False)
        our_id = f"out-{outgoing.record_id}-{outgoing.part}"
        body = json.dumps(
            {
                "id": our_id,
                "user_id": outgoing.to,
                "text": outgoing.text,
                "sources": outgoing.sources,
                "author": outgoing.author,
                "attachments": [
                    {"name": f.name, "type": f.content_type, "size": len(f.content), "url": f.url}
                    for f in outgoing.files
                ],
            },
            ensure_ascii=False,
        ).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP: stamp, SIGNATURE: api_signature(secret, stamp, body)}
        try:
            response = provider_http().post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendFailed(f"the app's webhook did not answer: {exc}", retry=True) from exc
        if response.status_code >= 300:
            retry = response.status_code == 429 or response.status_code >= 500
            raise SendFailed(f"the app's webhook answered {response.status_code}", retry=retry)
        return our_id

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        raise SendFailed("the API channel sends text only", retry=False)


ADAPTER = ApiChannelAdapter()
