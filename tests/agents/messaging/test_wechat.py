"""WeChat Official Account: the server check (echostr), SHA-1 signatures on every call, message
XML in plain and safe (AES) mode, the passive reply when the assistant answers within WeChat's
5 seconds (a real Celery worker takes the turn meanwhile) and the customer-service message API
otherwise, Chinese from the question to the answer and back."""

import base64
import logging
import os
import time

import pytest
from celery.contrib.testing.worker import start_worker
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto

from agents.messaging.models import DeliveryStatus, Direction, MessagingRecord
from config.celery import app as celery_app
from tests.agents.messaging.conftest import BOT, CUSTOMER, account_make, admin_reply, texts, webhook_path
from tests.agents.messaging.providers import PNG, wechat_api, wechat_query, wechat_xml
from tests.support import until
from tickets.models import Attachment, Channel, Conversation, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)
APP_ID, APP_SECRET, TOKEN = "wx0123456789abcdef", "wechat-app-secret", "wechat-token"
AES_KEY = base64.b64encode(os.urandom(32)).decode()[:43]


@pytest.fixture
def api(settings):
    server = wechat_api(APP_ID, APP_SECRET)
    settings.CONCIERGE_WECHAT_API_URL = server.url
    yield server
    server.close()


@pytest.fixture
def account(org):
    return account_make(
        org, "wechat", "gh_acme", app_id=APP_ID, app_secret=APP_SECRET, token=TOKEN, encoding_aes_key=AES_KEY
    )


@pytest.fixture
def worker():
    """A real Celery worker (in a thread of this process) on the test run's Redis broker. Celery
    sets up logging for a worker (the root logger's level and handlers): put it back afterwards,
    or later tests' log capture would hear nothing."""
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    celery_app.control.purge()
    try:
        with start_worker(celery_app, perform_ping_check=False, shutdown_timeout=30):
            yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers
        logging.captureWarnings(False)


def post(client, account, xml: str, query=None, aes=False):
    query = dict(query or wechat_query(TOKEN))
    body = xml.encode()
    if aes:
        crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
        body = crypto.encrypt_message(xml, query["nonce"], query["timestamp"]).encode()
        # WeChat's msg_signature: SHA-1 of the sorted token, timestamp, nonce and the ciphertext.
        encrypted = parse_message_field(body, "Encrypt")
        import hashlib

        parts = sorted([TOKEN, query["timestamp"], query["nonce"], encrypted])
        query |= {"encrypt_type": "aes", "msg_signature": hashlib.sha1("".join(parts).encode()).hexdigest()}  # noqa: S324
    path = webhook_path(account) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(path, data=body, content_type="text/xml")


def parse_message_field(xml: bytes, name: str) -> str:
    import xmltodict

    return str(xmltodict.parse(xml)["xml"][name])


def test_the_server_check_answers_echostr_only_when_signed_with_the_token(client, account):
    ok = client.get(webhook_path(account), {**wechat_query(TOKEN), "echostr": "4410"})
    assert (ok.status_code, ok.content) == (200, b"4410")
    forged = client.get(webhook_path(account), {**wechat_query("other-token"), "echostr": "4410"})
    assert forged.status_code == 403 and forged.content != b"4410"


def test_forged_stale_unsigned_and_malformed_calls_store_nothing(client, account):
    xml = wechat_xml("你好", 1001)
    assert post(client, account, xml, query=wechat_query("wrong")).status_code == 403
    assert post(client, account, xml, query=wechat_query(TOKEN, timestamp=int(time.time()) - 3600)).status_code == 401
    assert post(client, account, xml, query={"nonce": "x"}).status_code == 401
    assert post(client, account, "<xml><Content>no sender</Content>").status_code == 400
    assert post(client, account, "not xml at all").status_code == 400
    assert not Message.objects.exists() and not MessagingRecord.objects.exists()


def test_a_retried_message_is_taken_once_and_answered_through_the_customer_service_api(
    client, trained_org, account, api, worker, settings
):
    settings.CONCIERGE_WECHAT_PASSIVE_SECONDS = 0  # no wait: the answer must go out through the API
    xml = wechat_xml("退款需要多长时间？", 2001)
    for _ in range(3):  # WeChat tries three times with the same MsgId
        response = post(client, account, xml)
        assert (response.status_code, response.content) == (200, b"success")
    sent = until(lambda: api.to(r"/cgi-bin/message/custom/send"), timeout=30)
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.WECHAT
    assert texts(conversation.pk, CUSTOMER) == ["退款需要多长时间？"]
    until(lambda: MessagingRecord.objects.filter(direction=Direction.OUTBOUND, status="sent").exists(), timeout=10)
    assert len(texts(conversation.pk, BOT)) == 1 and len(api.to(r"/cgi-bin/message/custom/send")) == 1
    body = sent[0].body.decode("utf-8")
    assert '"touser": "o-follower-1"' in body and "退货和退款" in body  # Chinese answer, Chinese article cited
    assert "\\u" not in body  # sent as UTF-8, not escaped
    assert sent[0].query["access_token"] == "ACCESS-1" and len(api.to(r"/cgi-bin/token")) == 1


def test_an_answer_ready_in_time_is_the_passive_reply_encrypted_in_safe_mode(client, trained_org, account, api, worker):
    post(client, account, wechat_xml("你好", 3000), aes=True)  # warms the worker's models
    until(lambda: MessagingRecord.objects.filter(direction=Direction.OUTBOUND).exclude(status="queued").exists(), 30)
    query = wechat_query(TOKEN, nonce="n2")
    response = post(client, account, wechat_xml("退款需要多长时间？", 3001), query=query, aes=True)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/xml")
    crypto = WeChatCrypto(TOKEN, AES_KEY, APP_ID)
    signature = parse_message_field(response.content, "MsgSignature")
    stamp, nonce = parse_message_field(response.content, "TimeStamp"), parse_message_field(response.content, "Nonce")
    reply = parse_message(crypto.decrypt_message(response.content, signature, stamp, nonce))
    # From the official account to the follower who asked.
    assert reply.type == "text" and reply.source == "gh_acme" and reply.target == "o-follower-1"
    assert "退货和退款" in reply.content
    record = MessagingRecord.objects.filter(direction=Direction.OUTBOUND).latest("created_at")
    assert record.status == DeliveryStatus.SENT and record.provider_message_id == f"passive-{record.pk}"
    assert reply.content.startswith(record.message.text)
    time.sleep(settings_passive_margin())
    assert all("退货和退款" not in r.body.decode() for r in api.to(r"/cgi-bin/message/custom/send"))  # not sent twice


def settings_passive_margin() -> float:
    from django.conf import settings

    return settings.CONCIERGE_WECHAT_PASSIVE_SECONDS + 1.5


def test_follow_image_handoff_and_an_agents_reply(client, trained_org, account, api, eager, agent, settings):
    settings.CONCIERGE_WECHAT_PASSIVE_SECONDS = 0
    event = wechat_xml("", 0, kind="event", Event="subscribe")
    assert post(client, account, event).content == b"success"
    greeting = api.to(r"/cgi-bin/message/custom/send")[-1].body.decode()
    assert "assistant" in greeting  # the account's language (English by default) greets a new follower

    image = wechat_xml("", 4001, kind="image", PicUrl="http://mmbiz.example/x.png", MediaId="MEDIA-IN-1")
    post(client, account, image)
    stored = Attachment.objects.get(message__role="customer")
    assert stored.file.read() == PNG and api.to(r"/cgi-bin/media/get")[0].query["media_id"] == "MEDIA-IN-1"

    post(client, account, wechat_xml("我要人工客服", 4002))
    ticket = Ticket.objects.get(conversation__channel=Channel.WECHAT)
    admin_reply(agent, ticket, "您好，我是客服小李，马上为您处理。")
    last = api.to(r"/cgi-bin/message/custom/send")[-1].body.decode("utf-8")
    assert "您好，我是客服小李，马上为您处理。" in last
