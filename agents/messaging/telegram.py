"""Telegram Bot API through python-telegram-bot. Telegram signs nothing: the webhook is set with
a secret token (setWebhook's ``secret_token``) that Telegram sends back in the
``X-Telegram-Bot-Api-Secret-Token`` header of every update. Updates are parsed with the SDK's own
``Update``; Telegram retries an update until it gets a 2xx, under the same ``update_id``.

Credentials: ``{"bot_token": "123:ABC…", "webhook_secret": "…"}``."""

import asyncio
import hmac
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
    json_body,
    tls_context,
)
from agents.messaging.adapters import plain as _plain

HEADER = "X-Telegram-Bot-Api-Secret-Token"


def _bot(account: Any) -> Any:
    from telegram import Bot
    from telegram.request import HTTPXRequest

    base = settings.CONCIERGE_TELEGRAM_API_URL.rstrip("/")
    # The SDK's async client lives in one event loop, this send's: made per send, but with the
    # process's TLS context (loading the CAs is most of making it).
    request = HTTPXRequest(connect_timeout=5, read_timeout=10, httpx_kwargs={"verify": tls_context()})
    return Bot(
        token=account.secret("bot_token"), base_url=f"{base}/bot", base_file_url=f"{base}/file/bot", request=request
    )


def _with_bot(account: Any, work: Any) -> Any:
    """Run ``work(bot)`` in one HTTP session of the SDK's, opened and closed here."""

    async def run() -> Any:
        bot = _bot(account)
        await bot.request.initialize()
        try:
            return await work(bot)
        finally:
            await bot.request.shutdown()

    return asyncio.run(run())


class TelegramAdapter:
    provider = "telegram"
    channel = "telegram"
    max_chars = 4096
    reply_window = None

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        return _plain("Telegram posts its updates here.", status=405)

    def verify(self, account: Any, request: HttpRequest) -> None:
        expected = account.secret("webhook_secret")
        given = request.headers.get(HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRefused(403, f"The {HEADER} header does not match this bot's webhook secret.")

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]:
        from telegram import Update

        data = json_body(request)
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise WebhookRefused(400, "A Telegram update is a JSON object with an integer update_id.")
        try:
            update = Update.de_json(data, None)
        except (KeyError, TypeError, ValueError) as exc:
            raise WebhookRefused(400, f"Not a Telegram update: {exc}.") from exc
        message = update.message or update.edited_message
        if message is None or message.chat is None:
            return []  # joins, reactions, callbacks: nothing a customer wrote
        text = message.text or message.caption or ""
        media: tuple[Media, ...] = ()
        if message.photo:
            biggest = message.photo[-1]
            media = (Media(ref=biggest.file_id, content_type="image/jpeg", filename=f"photo-{message.message_id}.jpg"),)
        elif message.document is not None:
            document = message.document
            media = (Media(document.file_id, document.mime_type or "", document.file_name or "document"),)
        command = ""
        if text.startswith("/"):
            command = text.split()[0][1:].split("@")[0].lower()
        user = message.from_user
        name = " ".join(filter(None, [user.first_name, user.last_name])) if user is not None else ""
        return [
            Inbound(
                provider_message_id=str(update.update_id),
                address=str(message.chat.id),
                text=text,
                display_name=name or (message.chat.title or ""),
                media=media,
                command=command,
            )
        ]

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        return _plain("ok")

    def send(self, account: Any, outgoing: Outgoing) -> str:
        from telegram import InputFile
        from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

        async def deliver(bot: Any) -> Any:
            sent = await bot.send_message(chat_id=outgoing.to, text=outgoing.text)
            for file in outgoing.files:
                upload = InputFile(file.content, filename=file.name)
                if file.content_type.startswith("image/"):
                    await bot.send_photo(chat_id=outgoing.to, photo=upload)
                else:
                    await bot.send_document(chat_id=outgoing.to, document=upload)
            return sent

        try:
            sent = _with_bot(account, deliver)
        except RetryAfter as exc:
            raise SendFailed(f"Telegram asks to wait {exc.retry_after} s", retry=True) from exc
        except (BadRequest, Forbidden) as exc:  # the chat is gone, the bot blocked: final
            raise SendFailed(f"Telegram refused it: {exc.message}", retry=False) from exc
        except (NetworkError, TelegramError) as exc:
            raise SendFailed(f"Telegram did not answer: {exc}", retry=True) from exc
        return f"{outgoing.to}:{sent.message_id}"

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        async def download(bot: Any) -> bytes:
            found = await bot.get_file(media.ref)
            return bytes(await found.download_as_bytearray())

        return _with_bot(account, download), media.content_type


ADAPTER = TelegramAdapter()
