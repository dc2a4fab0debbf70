"""WeChat Official Account, through wechatpy. WeChat checks the server once with a GET
(``signature``, ``timestamp``, ``nonce``, ``echostr``) and signs every POST the same way:
SHA-1 of the sorted token, timestamp and nonce. In safe mode (``encrypt_type=aes``) the XML is
AES-encrypted under the account's EncodingAESKey and signed again as ``msg_signature``; a
passive reply then goes back encrypted too.

WeChat waits five seconds for an answer, then tries twice more with the same MsgId. The webhook
stores the message and queues the assistant's turn like every channel's, then waits up to
CONCIERGE_WECHAT_PASSIVE_SECONDS for the worker's reply: a reply ready in time travels back in
the HTTP answer itself (a passive reply); otherwise it answers ``success`` and the reply goes out
through the customer-service message API (``message/custom/send``), which WeChat accepts for 48
hours after the customer last wrote.

Credentials: ``{"app_id": "wx…", "app_secret": "…", "token": "…", "encoding_aes_key": "…"}``
(the key only for safe mode); the account's sender id is the official account's original id
(``gh_…``)."""

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from agents.messaging.adapters import Inbound, Media, Outgoing, SendFailed, StatusUpdate, WebhookRefused, plain, rebased

API_BASE = "https://api.weixin.qq.com/cgi-bin/"
# WeChat's answers that no retry will change: the 48-hour window passed, the follower left,
# a wrong openid, an API the account may not use.
FINAL_ERRORS = {40003, 43004, 45015, 48001, 40013}
FOLLOWED = "(followed the official account)"


def _cache_session() -> Any:
    """wechatpy keeps the access token in a session store: ours is the shared cache (Redis in
    production), so every process uses one token instead of each fetching its own (WeChat
    allows 2,000 a day, and a new token retires the old one)."""
    from django.core.cache import cache
    from wechatpy.session import SessionStorage

    class CacheSession(SessionStorage):
        def get(self, key: str, default: Any = None) -> Any:
            return cache.get(f"wechat:{key}", default)

        def set(self, key: str, value: Any, ttl: int | None = None) -> None:
            cache.set(f"wechat:{key}", value, timeout=ttl)

        def delete(self, key: str) -> None:
            cache.delete(f"wechat:{key}")

    return CacheSession()


def _client(account: Any) -> Any:
    from wechatpy import WeChatClient

    base = settings.CONCIERGE_WECHAT_API_URL

    class Client(WeChatClient):
        def fetch_access_token(self) -> Any:
            return self._fetch_access_token(
                url=rebased("https://api.weixin.qq.com/cgi-bin/token", base),
                params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            )

    client = Client(account.secret("app_id"), account.secret("app_secret"), session=_cache_session(), timeout=10)
    client.API_BASE_URL = rebased(API_BASE, base)
    return client


def _crypto(account: Any) -> Any:
    from wechatpy.crypto import WeChatCrypto

    key = account.secret("encoding_aes_key")
    if not key:
        raise WebhookRefused(400, "Safe mode needs the account's EncodingAESKey, and none is configured.")
    return WeChatCrypto(account.secret("token"), key, account.secret("app_id"))


def _signature_check(account: Any, request: HttpRequest) -> None:
    from wechatpy.exceptions import InvalidSignatureException
    from wechatpy.utils import check_signature

    signature, stamp, nonce = (request.GET.get(k, "") for k in ("signature", "timestamp", "nonce"))
    if not (signature and stamp and nonce):
        raise WebhookRefused(401, "WeChat signs its requests: signature, timestamp and nonce are missing.")
    token = account.secret("token")
    try:
        if not token:
            raise InvalidSignatureException()
        check_signature(token, signature, stamp, nonce)
    except InvalidSignatureException as exc:
        raise WebhookRefused(403, "The signature does not match this account's token.") from exc


class WeChatAdapter:
    provider = "wechat"
    channel = "wechat"
    # One customer-service text may carry 2,048 bytes: 600 Chinese characters stay under it.
    max_chars = 600
    reply_window = timedelta(hours=48)

    def challenge(self, account: Any, request: HttpRequest) -> HttpResponse:
        try:
            _signature_check(account, request)
        except WebhookRefused as refused:
            return plain(refused.message, status=refused.status)
        return plain(request.GET.get("echostr", ""))

    def verify(self, account: Any, request: HttpRequest) -> None:
        _signature_check(account, request)
        stamp = request.GET.get("timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > settings.CONCIERGE_WEBHOOK_MAX_AGE:
            raise WebhookRefused(401, "The timestamp is not within five minutes of now (a replayed request?).")

    def _xml(self, account: Any, request: HttpRequest) -> str:
        if request.GET.get("encrypt_type", "raw") != "aes":
            return request.body.decode("utf-8", "replace")
        from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

        crypto = _crypto(account)
        try:
            return str(
                crypto.decrypt_message(
                    request.body,
                    request.GET.get("msg_signature", ""),
                    request.GET.get("timestamp", ""),
                    request.GET.get("nonce", ""),
                )
            )
        except (InvalidSignatureException, InvalidAppIdException) as exc:
            raise WebhookRefused(403, "The msg_signature or the encrypted AppID does not match this account.") from exc
        except Exception as exc:  # not XML, not base64, not our key: the body is not WeChat's
            raise WebhookRefused(400, f"The encrypted body could not be read: {type(exc).__name__}.") from exc

    def parse(self, account: Any, request: HttpRequest) -> list[Inbound | StatusUpdate]:
        from wechatpy import parse_message

        xml = self._xml(account, request)
        try:
            message = parse_message(xml)
        except Exception as exc:  # xmltodict's ExpatError, a body without <xml>
            raise WebhookRefused(400, f"Not WeChat message XML: {type(exc).__name__}.") from exc
        source = str(getattr(message, "source", "") or "")
        if not source:
            raise WebhookRefused(400, "WeChat message XML names its sender in FromUserName.")
        request.wechat_message = message  # type: ignore[attr-defined]  # the passive reply answers it
        kind = getattr(message, "type", "")
        text, command = "", ""
        media: tuple[Media, ...] = ()
        if kind == "text":
            text = str(message.content or "")
        elif kind == "image":
            media = (Media(ref=str(message.media_id), content_type="image/jpeg", filename=f"wechat-{message.id}.jpg"),)
        elif kind == "voice":
            text = str(getattr(message, "recognition", "") or "")  # WeChat's own speech recognition, when on
        elif kind == "event" and getattr(message, "event", "") == "subscribe":
            text, command = FOLLOWED, "start"
        else:
            return []  # locations, links, menu clicks, unfollows: nothing to answer
        created = int(message.create_time.timestamp()) if getattr(message, "create_time", None) else 0
        # Events carry no MsgId: WeChat's advice is to tell them apart by sender and time.
        message_id = str(message.id) if getattr(message, "id", 0) else f"{source}:{created}:{kind}"
        return [Inbound(provider_message_id=message_id, address=source, text=text, media=media, command=command)]

    def ack(self, account: Any, request: HttpRequest, received: list[Any]) -> HttpResponse:
        from wechatpy.replies import TextReply

        from agents.messaging.outbound import messaging_passive_claim

        inbound = getattr(request, "wechat_message", None)
        asked = [r.message_id for r in received if r.message_id]
        if inbound is None or not asked:
            return plain("success")
        text = messaging_passive_claim(
            message_ids=asked, max_chars=self.max_chars, wait_seconds=settings.CONCIERGE_WECHAT_PASSIVE_SECONDS
        )
        if text is None:
            return plain("success")  # the reply goes out through the customer-service API
        xml = TextReply(source=inbound.target, target=inbound.source, content=text).render()
        if request.GET.get("encrypt_type") == "aes":
            xml = _crypto(account).encrypt_message(xml, request.GET.get("nonce", ""), str(int(time.time())))
        return HttpResponse(xml, content_type="application/xml; charset=utf-8")

    def send(self, account: Any, outgoing: Outgoing) -> str:
        from wechatpy.exceptions import WeChatClientException

        client = _client(account)
        try:
            client.message.send_text(outgoing.to, outgoing.text)
            for file in outgoing.files:
                if file.content_type.startswith("image/"):
                    uploaded = client.media.upload("image", (file.name, file.content, file.content_type))
                    client.message.send_image(outgoing.to, uploaded["media_id"])
                else:  # the customer-service API sends no documents: a link to it instead
                    client.message.send_text(outgoing.to, f"{file.name}: {file.url}")
        except WeChatClientException as exc:
            final = exc.errcode in FINAL_ERRORS
            raise SendFailed(f"WeChat error {exc.errcode}: {exc.errmsg}", retry=not final) from exc
        except OSError as exc:
            raise SendFailed(f"WeChat did not answer: {exc}", retry=True) from exc
        # The customer-service API names no message id: ours, stable across a retry.
        return f"cs-{outgoing.record_id}-{outgoing.part}"

    def fetch_media(self, account: Any, media: Media) -> tuple[bytes, str]:
        response = _client(account).media.download(media.ref)
        response.raise_for_status()
        return bytes(response.content), media.content_type or response.headers.get("content-type", "")


ADAPTER = WeChatAdapter()
