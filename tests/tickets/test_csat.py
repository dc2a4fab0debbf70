"""Asking for a rating after resolution: by email when the customer is not in the chat, the
survey page the email links to, and ratings of chats the assistant handled alone."""

import re

import pytest

from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Customer, Ticket
from tickets.transport import chat_presence_join, chat_presence_leave

pytestmark = pytest.mark.django_db


def resolve(ticket, capture):
    with capture(execute=True):
        return services.ticket_transition(ticket=ticket, to_status="resolved")


def test_offline_customer_gets_one_email_with_a_working_link(
    eager, ticket, mailoutbox, django_capture_on_commit_callbacks, client
):
    resolve(ticket, django_capture_on_commit_callbacks)
    [mail] = mailoutbox
    assert mail.to == ["maya@example.com"] and f"ticket #{ticket.pk}" in mail.subject
    ticket.refresh_from_db()
    assert ticket.csat_request_channel == "email" and ticket.csat_requested_at is not None
    assert ticket.events.filter(kind="csat", message="Rating requested by email").count() == 1
    # Reopened and resolved again: the customer is not asked twice.
    services.ticket_transition(ticket=ticket, to_status="open")
    resolve(Ticket.objects.get(pk=ticket.pk), django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 1

    path = re.search(r"https?://[^/]+(/csat/[^/\s]+/)", mail.body).group(1)
    page = client.get(path)
    assert page.status_code == 200 and ticket.subject in page.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).csat_score is None  # looking at the page records nothing
    bad = client.post(path, {"score": "9"})
    assert bad.status_code == 400 and "1 to 5" in bad.content.decode()
    rated = client.post(path, {"score": "4", "comment": "Quick and kind"})
    assert rated.status_code == 200 and "Thank you" in rated.content.decode()
    ticket.refresh_from_db()
    assert (ticket.csat_score, ticket.csat_comment) == (4, "Quick and kind")
    assert Customer.objects.get(pk=ticket.customer_id).satisfaction_score == 4


def test_forged_or_garbled_links_are_refused(client, ticket):
    token = services.csat_link_token(ticket_id=ticket.pk)
    for path in [f"/csat/{token}x/", "/csat/nothing/", f"/csat/{token[:-3]}abc/"]:
        response = client.post(path, {"score": "5"})
        assert response.status_code == 400 and "invalid or has expired" in response.content.decode()
    assert Ticket.objects.get(pk=ticket.pk).csat_score is None


def test_no_email_address_means_no_email_and_a_note(eager, org, mailoutbox, django_capture_on_commit_callbacks):
    ticket = TicketFactory(customer=CustomerFactory(organization=org, email=""))
    resolve(ticket, django_capture_on_commit_callbacks)
    assert mailoutbox == []
    assert ticket.events.filter(kind="csat", message__contains="No email address").exists()


def test_customer_in_the_chat_is_asked_there_not_by_email(
    eager, customer, mailoutbox, django_capture_on_commit_callbacks
):
    conversation = services.conversation_start(customer=customer)
    ticket = TicketFactory(customer=customer, conversation=conversation)
    chat_presence_join(conversation_id=conversation.pk)
    try:
        resolve(ticket, django_capture_on_commit_callbacks)
    finally:
        chat_presence_leave(conversation_id=conversation.pk)
    assert mailoutbox == []
    assert Ticket.objects.get(pk=ticket.pk).csat_request_channel == "widget"


def test_two_tabs_keep_a_customer_online_until_both_leave_and_the_count_expires_on_its_own(customer):
    from django.core.cache import cache

    from tickets.transport import PRESENCE_TTL_SECONDS, chat_is_online

    conversation = services.conversation_start(customer=customer)
    chat_presence_join(conversation_id=conversation.pk)
    chat_presence_join(conversation_id=conversation.pk)
    key = cache.make_and_validate_key(f"chat-presence:{conversation.pk}")
    assert 0 < cache._cache.get_client(key).ttl(key) <= PRESENCE_TTL_SECONDS  # a crashed process's count goes
    chat_presence_leave(conversation_id=conversation.pk)
    assert chat_is_online(conversation_id=conversation.pk)
    chat_presence_leave(conversation_id=conversation.pk)
    assert not chat_is_online(conversation_id=conversation.pk)


def test_a_chat_the_bot_handled_alone_can_be_rated_but_not_while_a_person_works_it(customer):
    conversation = services.conversation_start(customer=customer)
    rated = services.conversation_csat_record(conversation=conversation, score=5, comment="  Helpful bot ")
    assert (rated.csat_score, rated.csat_comment) == (5, "Helpful bot")
    TicketFactory(customer=customer, conversation=conversation)
    with pytest.raises(services.DomainError, match="still working"):
        services.conversation_csat_record(conversation=conversation, score=1)
    with pytest.raises(services.DomainError, match="1 to 5"):
        services.conversation_csat_record(conversation=conversation, score=True)


@pytest.mark.parametrize("score", [True, False, 0, 6, "5", 4.5, None])
def test_every_way_in_refuses_the_same_bad_ratings(customer, client, score):
    """One rule for the widget, the email link's form and the API: whole numbers 1-5, no booleans."""
    conversation = services.conversation_start(customer=customer)
    ticket = TicketFactory(customer=customer, conversation=conversation)
    ticket = services.ticket_transition(ticket=ticket, to_status="resolved")
    with pytest.raises(services.DomainError, match="1 to 5"):
        services.ticket_csat_record(ticket=ticket, score=score)
    with pytest.raises(services.DomainError, match="1 to 5"):
        services.conversation_csat_submit(conversation_id=conversation.pk, score=score)
    ticket.refresh_from_db()
    assert ticket.csat_score is None
    services.conversation_csat_submit(conversation_id=conversation.pk, score=4, comment=" fine ")
    ticket.refresh_from_db()
    assert (ticket.csat_score, ticket.csat_comment) == (4, "fine")  # the resolved ticket got the rating


def test_a_customer_writing_in_an_ended_chat_reopens_it(customer):
    conversation = services.conversation_start(customer=customer)
    services.conversation_end(conversation=conversation)
    services.message_create(conversation=conversation, role="customer", text="one more thing")
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.reopened_at is not None
