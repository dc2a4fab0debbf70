import pytest

from agents.messaging.accounts import messaging_account_save
from agents.messaging.models import MessagingAccount
from tickets.models import Message, MessageRole


@pytest.fixture(autouse=True)
def _public_url(settings):
    # The URL providers call us at, which Twilio signs and our TwiML names.
    settings.CONCIERGE_PUBLIC_URL = "https://desk.acme.example"


def account_make(organization, provider, sender_id="", name="", **credentials) -> MessagingAccount:
    account = MessagingAccount(organization=organization, provider=provider, name=name or provider, sender_id=sender_id)
    return messaging_account_save(account=account, typed=credentials)


def webhook_path(account) -> str:
    return f"/api/v1/messaging/{account.webhook_key}"


def texts(conversation_id, role=None) -> list[str]:
    messages = Message.objects.filter(conversation_id=conversation_id).order_by("seq")
    if role is not None:
        messages = messages.filter(role=role)
    return [m.text for m in messages]


BOT, AGENT, CUSTOMER = MessageRole.BOT, MessageRole.AGENT, MessageRole.CUSTOMER


def admin_reply(agent, ticket, text: str, file=None) -> None:
    """An agent's reply typed on the ticket page in admin (the workspace's reply form)."""
    from django.test import Client

    desk = Client()
    desk.force_login(agent)
    data = {"text": text, **({"file": file} if file is not None else {})}
    response = desk.post(f"/admin/tickets/ticket/{ticket.pk}/reply/", data)
    assert response.status_code in (200, 302), response.content[:500]
    assert Message.objects.filter(conversation_id=ticket.conversation_id, role=MessageRole.AGENT).exists()
