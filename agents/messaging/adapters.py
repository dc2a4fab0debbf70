"""What every messaging adapter provides, and the registry the webhook view and the sender use.

An adapter knows one provider's protocol and nothing of conversations: it checks that a
webhook request really comes from the provider (with the provider's SDK where there is one),
turns the request into inbound messages and status updates, answers the provider as it
expects, and sends one text to one person. The conversation, the assistant and the desk are the
channel layer's (agents.messaging.inbound and .outbound), the same for every provider."""

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from django.http import HttpRequest, HttpResponse

from config.clients import process_client


@dataclass(frozen=True)
class Media:
    """A file the customer sent, as the provider names it (fetched off the request)."""

    ref: str  # the provider's file id, or a URL
    content_type: str = ""
    filename: str = ""


@dataclass(frozen=True)
class Inbound:
    provider_message_id: str
    address: str  # the person on the provider: chat id, phone number, the app's user id
    text: str
    display_name: str = ""
    verified_phone: bool = False
    email: str = ""  # only where the sender vouches for it (the API channel's signed request)
    media: tuple[Media, ...] = ()
    command: str = ""  # a bot command such as Telegram's /start


@dataclass(frozen=True)
class StatusUpdate:
    provider_message_id: str
    status: str  # a DeliveryStatus value
    reason: str = ""


@dataclass(frozen=True)
class OutgoingFile:
    """A file an agent attached to a reply: its bytes for providers that take an upload, and a
    signed link that expires (CONCIERGE_ATTACHMENT_URL_MAX_AGE) for those that fetch a URL."""

    name: str
    content_type: str
    content: bytes
    url: str


@dataclass(frozen=True)
class Outgoing:
    """One text to send (a part of a longer reply), with the record it belongs to; the reply's
    files travel with its last part."""

    record_id: int
    part: int
    to: str
    text: str
    sources: list[dict[str, Any]] = field(default_factory=list)
    author: str = ""
    files: tuple[OutgoingFile, ...] = ()


class WebhookRefused(Exception):
    """The request is not the provider's, or not what the provider sends: the HTTP status and a
    message for whoever sent it; nothing is stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SendFailed(Exception):
    """The provider did not take the message. ``retry``: worth trying again later (network,
    rate limit, the provider's own trouble); otherwise the reason is final."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class Adapter(Protocol):
    provider: str
    channel: str  # the tickets.Channel its conversations are on
    max_chars: int  # longest text one provider message may carry
    # How long after the customer last wrote the provider still takes a free-form reply
    # (WhatsApp 24 h, WeChat 48 h); None: no such window.
    reply_window: timedelta | None

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse: ...

    def verify(self, account: Any, request: HttpRequest) -> None: ...

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]: ...

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        """The answer the provider waits for; ``received``: what became of each inbound item
        (agents.messaging.inbound.MessagingReceived), for providers that take the reply in it."""
        ...

    def send(self, account: Any, outgoing: Outgoing) -> str: ...

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]: ...


_adapters: dict[str, Adapter] = {}


def adapter_register(adapter: Adapter) -> None:
    _adapters[adapter.provider] = adapter


def adapter_for(provider: str) -> Adapter:
    if not _adapters:
        _load()
    return _adapters[provider]


def adapters() -> dict[str, Adapter]:
    if not _adapters:
        _load()
    return dict(_adapters)


def _load() -> None:
    from agents.messaging import api_channel, sms, telegram, voice, wechat, whatsapp

    for module in (whatsapp, telegram, wechat, sms, voice, api_channel):
        adapter_register(module.ADAPTER)


@process_client
def tls_context() -> Any:
    """The TLS context the providers' HTTP clients verify with (certifi's CAs, as httpx's own
    default): loading the CAs takes ~50 ms, so once per process rather than per message."""
    import httpx

    return httpx.create_ssl_context()


class _RebasedTransport:
    """An httpx transport that sends every request to another base URL (see ``rebased``)."""

    def __init__(self, base: str) -> None:
        import httpx

        self.base = base
        self.inner = httpx.HTTPTransport(verify=tls_context())

    def handle_request(self, request: Any) -> Any:
        import httpx

        request.url = httpx.URL(rebased(str(request.url), self.base))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def http_client(base: str = "") -> Any:
    """A new httpx client with the process's TLS context; ``base`` sends its requests there."""
    import httpx

    transport: Any = _RebasedTransport(base) if base else httpx.HTTPTransport(verify=tls_context())
    return httpx.Client(transport=transport, timeout=10)


@process_client
def provider_http(base: str = "") -> Any:
    """One httpx client per process (and per API base, where settings point a provider at a
    gateway or a test server), shared by the threads sending and fetching: its connections and
    TLS context are made once, not for every message. httpx clients are thread-safe."""
    return http_client(base)


def rebased(url: str, base: str) -> str:
    """``url`` sent to ``base`` instead (scheme, host and port; a path prefix of base kept):
    how tests and self-hosted gateways point an SDK at a server of their own."""
    if not base:
        return url
    target, original = urlsplit(base), urlsplit(url)
    path = target.path.rstrip("/") + original.path
    return original._replace(scheme=target.scheme, netloc=target.netloc, path=path).geturl()


def text_split(text: str, limit: int) -> list[str]:
    """A long reply in parts no longer than ``limit``, cut at a paragraph, a line or a word
    where one is near the end, never inside a word when a space is in reach."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        window = text[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:  # Chinese has no spaces: after the last full stop in reach
            cut = max(window.rfind(mark) + 1 for mark in "。！？；")
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookRefused(400, f"The body is not JSON: {exc}.") from exc


def plain(text: str, status: int = 200) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
