"""Telegram Bot API: the webhook's secret-token header, updates parsed with python-telegram-bot's
own Update, /start, photos both ways, and replies sent through the SDK to a loopback Bot API that
checks the token and the fields."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from agents.messaging.accounts import telegram_webhook_register
from agents.messaging.adapters import text_split
from agents.messaging.models import DeliveryStatus, MessagingRecord
from config.errors import DomainError
from tests.agents.messaging.conftest import BOT, CUSTOMER, account_make, admin_reply, texts, webhook_path
from tests.agents.messaging.providers import PNG, bot_api, telegram_update
from tickets import services
from tickets.models import Attachment, Channel, Conversation, Message, Ticket

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN, SECRET = "123456:loopback-bot-token", "webhook-secret-1"


@pytest.fixture
def bot(settings):
    server = bot_api(TOKEN)
    settings.CONCIERGE_TELEGRAM_API_URL = server.url
    yield server
    server.close()


@pytest.fixture
def account(org):
    return account_make(org, "telegram", name="Acme bot", bot_token=TOKEN, webhook_secret=SECRET)


def post(client, account, update, secret=SECRET):
    headers = {"HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN": secret} if secret else {}
    data = update if isinstance(update, bytes | str) else __import__("json").dumps(update)
    return client.post(webhook_path(account), data=data, content_type="application/json", **headers)


def sent(bot) -> list[str]:
    return [r.params["text"] for r in bot.to(r"/bot[^/]+/sendMessage")]


def test_updates_without_the_secret_token_or_malformed_are_refused(client, account):
    update = telegram_update(1, "hello")
    assert post(client, account, update, secret="").status_code == 403
    assert post(client, account, update, secret="guess").status_code == 403
    assert post(client, account, "{not json").status_code == 400
    assert post(client, account, {"update_id": "one"}).status_code == 400
    assert post(client, account, {"message": {}}).status_code == 400
    assert not Message.objects.exists() and not MessagingRecord.objects.exists()
    # A member joining, a reaction: nothing a customer wrote, nothing stored, and Telegram gets its 200.
    assert post(client, account, {"update_id": 9, "my_chat_member": {}}).status_code == 200
    assert not Message.objects.exists()


def test_start_greets_and_a_retried_update_is_taken_once(client, account, bot, eager):
    for _ in range(2):
        assert post(client, account, telegram_update(10, "/start")).status_code == 200
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.TELEGRAM and conversation.customer.name == "Kim Lee"
    assert texts(conversation.pk, CUSTOMER) == ["/start"] and len(texts(conversation.pk, BOT)) == 1
    assert len(sent(bot)) == 1 and "assistant" in sent(bot)[0].lower()
    assert bot.to(r"/bot[^/]+/sendMessage")[0].params["chat_id"] == "4242"


def test_the_whole_path_answer_handoff_and_an_agents_reply_with_a_photo(
    client, trained_org, account, bot, eager, agent
):
    assert post(client, account, telegram_update(20, "How long do refunds take?")).status_code == 200
    answer = sent(bot)[-1]
    assert "refund" in answer.lower() and "Returns and refunds" in answer
    record = MessagingRecord.objects.get(message__role="bot")
    assert record.status == DeliveryStatus.SENT and record.provider_message_id.startswith("4242:")

    assert post(client, account, telegram_update(21, photo="AgACphoto1")).status_code == 200
    photo = Attachment.objects.get(message__role="customer")
    assert photo.content_type == "image/png" and photo.file.read() == PNG  # fetched through getFile

    post(client, account, telegram_update(22, "this is ridiculous, I want a real person now"))
    conversation = Conversation.objects.get()
    ticket = Ticket.objects.get(conversation=conversation)
    label = SimpleUploadedFile("label.png", PNG, content_type="image/png")
    admin_reply(agent, ticket, "Alice here: your return label.", file=label)
    assert sent(bot)[-1] == "Alice here: your return label."
    photos = bot.to(r"/bot[^/]+/sendPhoto")
    assert len(photos) == 1 and photos[0].files["photo"][1] == PNG


def test_telegram_refusing_a_reply_is_final_and_its_outage_is_retried(client, account, bot, eager, agent, settings):
    post(client, account, telegram_update(30, "hi"))
    conversation = Conversation.objects.get()
    ticket = services.conversation_escalate(conversation=conversation, reason="test")
    bot.failures.append(
        (403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    )
    services.ticket_reply(ticket=ticket, author=agent, text="Are you still there?")
    record = MessagingRecord.objects.get(message__role="agent")
    assert record.status == DeliveryStatus.FAILED and "blocked" in record.reason


def test_long_replies_are_cut_at_words_and_chinese_at_full_stops():
    english = " ".join(["word"] * 3000)
    parts = text_split(english, 4096)
    assert all(len(p) <= 4096 for p in parts) and " ".join(parts) == english
    chinese = "我们会尽快处理您的退款。" * 100
    parts = text_split(chinese, 600)
    assert all(len(p) <= 600 and p.endswith("。") for p in parts) and "".join(parts) == chinese


def test_registering_the_webhook_tells_telegram_the_url_and_secret(account, bot, settings):
    telegram_webhook_register(account=account)
    request = bot.to(r"/bot[^/]+/setWebhook")[0]
    assert request.params["url"] == f"https://desk.acme.example{webhook_path(account)}"
    assert request.params["secret_token"] == SECRET
    settings.CONCIERGE_PUBLIC_URL = "http://127.0.0.1:8000"
    with pytest.raises(DomainError, match="https"):
        telegram_webhook_register(account=account)
