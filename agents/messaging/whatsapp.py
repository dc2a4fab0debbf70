"""WhatsApp Cloud API through pywa. Meta checks the webhook once with a GET challenge
(``hub.mode``, ``hub.verify_token``, ``hub.challenge``) and signs every POST with
``X-Hub-Signature-256`` (HMAC-SHA256 of the body under the app secret), checked with pywa's own
validator. One POST carries messages and status callbacks (sent, delivered, read, failed) of the
business number; a message id (``wamid…``) comes again when Meta retries.

Credentials: ``{"access_token": "…", "app_secret": "…", "verify_token": "…"}``; the account's
sender id is the phone number id."""

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from agents.messaging.adapters import (
    Inbound,
    Media,
    Outgoing,
    SendFailed,
    StatusUpdate,
    WebhookRefused,
    http_client,
    json_body,
    plain,
)
from config.clients import process_client

STATUSES = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed"}
# Meta's "re-engagement message" error: more than 24 hours since the customer last wrote.
OUTSIDE_WINDOW_CODE = 131047


def _client(account: Any) -> Any:
    return _whatsapp(account.sender_id, account.secret("access_token"), settings.CONCIERGE_WHATSAPP_API_URL)


@process_client
def _whatsapp(phone_id: str, token: str, base: str) -> Any:
    """One pywa client per business number and token in a process (pywa wants an HTTP client of
    its own for each), kept: its connections and TLS context are made once."""
    from pywa import WhatsApp

    return WhatsApp(phone_id=phone_id, token=token, session=http_client(base))


def _text(message: dict[str, Any]) -> tuple[str, tuple[Media, ...]]:
    kind = message.get("type")
    if kind == "text":
        return str((message.get("text") or {}).get("body") or ""), ()
    if kind in ("image", "document", "audio", "video", "sticker"):
        part = message.get(kind) or {}
        media = Media(ref=str(part.get("id") or ""), content_type=str(part.get("mime_type") or ""))
        name = str(part.get("filename") or f"{kind}-{message.get('id', '')[-8:]}")
        return str(part.get("caption") or ""), (Media(media.ref, media.content_type, name),)
    if kind == "button":
        return str((message.get("button") or {}).get("text") or ""), ()
    if kind == "interactive":
        reply = (message.get("interactive") or {}).get("button_reply") or {}
        return str(reply.get("title") or ""), ()
    if kind == "location":
        place = message.get("location") or {}
        where = ", ".join(str(place[k]) for k in ("name", "address") if place.get(k))
        point = f"({place.get('latitude')}, {place.get('longitude')})"
        return (f"\U0001f4cd {where} {point}" if where else f"\U0001f4cd {point}"), ()
    return "", ()


class WhatsAppAdapter:
    provider = "whatsapp"
    channel = "whatsapp"
    max_chars = 4096
    reply_window = timedelta(hours=24)  # Meta's customer-service window

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        token = request.GET.get("hub.verify_token", "")
        expected = account.secret("verify_token")
        if request.GET.get("hub.mode") != "subscribe" or not expected:
            return plain("Not a WhatsApp webhook verification.", status=400)
        if not hmac.compare_digest(token.encode(), expected.encode()):
            return plain("hub.verify_token does not match this account's verify token.", status=403)
        return plain(request.GET.get("hub.challenge", ""))

    def verify(self, account: Any, request: HttpRequest) -> None:
        from pywa.utils import HUB_SIG, webhook_updates_validator

        header = request.headers.get(HUB_SIG, "")
        secret = account.secret("app_secret")
        if not header:
            raise WebhookRefused(401, f"The {HUB_SIG} header is missing.")
        if not secret or not webhook_updates_validator(secret, request.body, header):
            raise WebhookRefused(403, f"The {HUB_SIG} signature does not match this app's secret.")

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]:
        data = json_body(request)
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            raise WebhookRefused(400, "A WhatsApp webhook body has object 'whatsapp_business_account'.")
        items: list[Inbound | StatusUpdate] = []
        try:
            for entry in data.get("entry") or []:
                for change in entry.get("changes") or []:
                    value = change.get("value") or {}
                    names = {
                        c.get("wa_id"): (c.get("profile") or {}).get("name", "") for c in value.get("contacts") or []
                    }
                    for message in value.get("messages") or []:
                        text, media = _text(message)
                        sender, message_id = str(message["from"]), str(message["id"])
                        if not text and not media:
                            continue  # a reaction, or a type WhatsApp calls "unsupported": nothing to answer
                        items.append(
                            Inbound(
                                provider_message_id=message_id,
                                address="+" + sender.lstrip("+"),
                                text=text,
                                display_name=str(names.get(sender) or ""),
                                verified_phone=True,  # WhatsApp proved the number when it was registered
                                media=media,
                            )
                        )
                    for status in value.get("statuses") or []:
                        errors = status.get("errors") or [{}]
                        reason = errors[0].get("title") or errors[0].get("message") or ""
                        if errors[0].get("code"):
                            reason = f"{reason} ({errors[0]['code']})"
                        items.append(StatusUpdate(str(status["id"]), STATUSES.get(status.get("status"), ""), reason))
        except (AttributeError, KeyError, TypeError) as exc:
            raise WebhookRefused(400, f"Malformed WhatsApp webhook body: missing or wrong {exc}.") from exc
        return [i for i in items if not isinstance(i, StatusUpdate) or i.status]

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        return plain("ok")

    def send(self, account: Any, outgoing: Outgoing) -> str:
        import httpx
        from pywa.errors import WhatsAppError

        client = _client(account)
        to = outgoing.to.lstrip("+")
        try:
            sent = client.send_message(to=to, text=outgoing.text)
            for file in outgoing.files:  # uploaded to Meta, then sent as an image or a document
                if file.content_type.startswith("image/"):
                    client.send_image(to=to, image=file.content, mime_type=file.content_type)
                else:
                    client.send_document(to=to, document=file.content, filename=file.name, mime_type=file.content_type)
        except WhatsAppError as exc:
            transient = bool(exc.is_transient) or exc.code in (4, 80007, 130429, 131048, 131056)
            raise SendFailed(f"WhatsApp error {exc.code}: {exc.message}", retry=transient) from exc
        except httpx.HTTPError as exc:
            raise SendFailed(f"WhatsApp did not answer: {exc}", retry=True) from exc
        return str(sent.id)

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        client = _client(account)
        url = client.get_media_url(media.ref)
        content = client.get_media_bytes(url.url)
        return bytes(content), media.content_type or url.mime_type


ADAPTER = WhatsAppAdapter()
