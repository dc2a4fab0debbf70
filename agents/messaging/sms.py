"""SMS through Twilio, with the twilio SDK: ``X-Twilio-Signature`` checked by its
RequestValidator against the URL Twilio called and the posted form; inbound messages (and MMS
media URLs) and status callbacks (queued, sent, delivered, undelivered, failed with ErrorCode)
come to the same webhook; the webhook answers with empty TwiML (the reply goes out through the
REST API, off the request). Twilio retries under the same MessageSid.

Credentials: ``{"account_sid": "AC…", "auth_token": "…"}``; the sender id is our Twilio number."""

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
    provider_http,
    rebased,
)

STATUSES = {
    "queued": "queued",
    "accepted": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
}


def _public_url(request: HttpRequest) -> str:
    """The URL Twilio signed: the one configured in its console, i.e. as the public sees us."""
    base = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    return f"{base}{request.get_full_path()}" if base else request.build_absolute_uri()


def _client(account: Any) -> Any:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    base = settings.CONCIERGE_TWILIO_API_URL

    class Rebased(TwilioHttpClient):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            return super().request(method, rebased(url, base), *args, **kwargs)

    http = Rebased(timeout=10) if base else TwilioHttpClient(timeout=10)
    return Client(account.secret("account_sid"), account.secret("auth_token"), http_client=http)


def twilio_signature_check(account: Any, request: HttpRequest) -> None:
    """Shared by the SMS and voice webhooks."""
    from twilio.request_validator import RequestValidator

    signature = request.headers.get("X-Twilio-Signature", "")
    token = account.secret("auth_token")
    if not signature:
        raise WebhookRefused(401, "The X-Twilio-Signature header is missing.")
    params = {key: request.POST.get(key) for key in request.POST}
    if not token or not RequestValidator(token).validate(_public_url(request), params, signature):
        raise WebhookRefused(403, "The X-Twilio-Signature does not match this account's auth token and URL.")


def twilio_message_send(account: Any, outgoing: Outgoing, *, status_path: str) -> str:
    """One SMS (an MMS when files go with it: Twilio fetches them from their signed links) from
    the account's number; Twilio reports its fate to ``status_path``. Shared by SMS and voice
    (an agent's answer to a voicemail goes back as a text message from the same number)."""
    from twilio.base.exceptions import TwilioException, TwilioRestException

    callback = settings.CONCIERGE_PUBLIC_URL.rstrip("/")
    extra: dict[str, Any] = {"status_callback": f"{callback}{status_path}"} if callback else {}
    if outgoing.files:
        extra["media_url"] = [file.url for file in outgoing.files]
    try:
        sent = _client(account).messages.create(to=outgoing.to, from_=account.sender_id, body=outgoing.text, **extra)
    except TwilioRestException as exc:
        retry = exc.status == 429 or exc.status >= 500
        raise SendFailed(f"Twilio error {exc.code or exc.status}: {exc.msg}", retry=retry) from exc
    except (TwilioException, OSError) as exc:
        raise SendFailed(f"Twilio did not answer: {exc}", retry=True) from exc
    return str(sent.sid)


class SmsAdapter:
    provider = "sms"
    channel = "sms"
    max_chars = 1600  # Twilio's limit for one (concatenated) message
    reply_window: timedelta | None = None

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        return HttpResponse("Twilio posts messages here.", status=405, content_type="text/plain")

    def verify(self, account: Any, request: HttpRequest) -> None:
        twilio_signature_check(account, request)

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]:
        form = request.POST
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        if not sid:
            raise WebhookRefused(400, "A Twilio message webhook carries MessageSid.")
        status = form.get("MessageStatus") or form.get("SmsStatus") or ""
        if "Body" not in form and status:
            reason = form.get("ErrorMessage") or (f"Twilio error {form['ErrorCode']}" if form.get("ErrorCode") else "")
            mapped = STATUSES.get(status, "")
            return [StatusUpdate(sid, mapped, reason)] if mapped else []
        sender = form.get("From", "")
        if not sender:
            raise WebhookRefused(400, "An inbound Twilio message carries From.")
        try:
            count = int(form.get("NumMedia") or 0)
        except ValueError as exc:
            raise WebhookRefused(400, "NumMedia is not a number.") from exc
        media = tuple(
            Media(ref=form.get(f"MediaUrl{i}", ""), content_type=form.get(f"MediaContentType{i}", ""))
            for i in range(min(count, 10))
            if form.get(f"MediaUrl{i}")
        )
        return [
            Inbound(
                provider_message_id=sid,
                address=sender,
                text=form.get("Body", ""),
                verified_phone=sender.startswith("+"),  # the carrier's caller id, as Twilio passes it
                media=media,
            )
        ]

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        from twilio.twiml.messaging_response import MessagingResponse

        return HttpResponse(str(MessagingResponse()), content_type="text/xml")

    def send(self, account: Any, outgoing: Outgoing) -> str:
        return twilio_message_send(account, outgoing, status_path=f"/api/v1/messaging/{account.webhook_key}")

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        url = rebased(media.ref, settings.CONCIERGE_TWILIO_API_URL)
        auth = (account.secret("account_sid"), account.secret("auth_token"))
        response = provider_http().get(url, auth=auth, follow_redirects=True)
        response.raise_for_status()
        return response.content, media.content_type or response.headers.get("content-type", "")


ADAPTER = SmsAdapter()
