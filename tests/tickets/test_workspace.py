"""The ticket page as the agent's workspace and the admin list as the inbox: summary, customer
panel, macros, mentions, suggested replies and what became of them, claiming, views and counts."""

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import reports, services
from tickets.models import Macro, Message, ReplySuggestion, StaffNotification, Ticket, TicketStatus

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def chat(customer, *turns):
    conversation = services.conversation_start(customer=customer)
    for role, text, metadata in turns:
        message, _ = services.message_create(conversation=conversation, role=role, text=text, metadata=metadata)
        if role == "customer":
            services.message_sentiment_record(message=message, score=-0.1 * conversation.last_seq)
    return conversation


def make_ticket(customer, *, assignee=None, status=None, **fields):
    ticket = TicketFactory(customer=customer, **fields)
    if assignee is not None:
        services.ticket_assign(ticket=ticket, assignee=assignee)
    if status is not None:
        services.ticket_transition(ticket=ticket, to_status=status)
    ticket.refresh_from_db()
    return ticket


@pytest.fixture
def handed_off(customer, agent):
    conversation = chat(
        customer,
        ("customer", "When will I get my refund for the tent?", {}),
        ("bot", "Refunds reach your card within 5 business days.", {
            "sources": [{"title": "Returns and refunds", "url": "https://acme.test/returns"}],
            "intent": "refund_status", "answered": True, "in_reply_to": 1}),
        ("customer", "It has been two weeks, I want a human", {}),
        ("bot", "I'm bringing in a colleague.", {"escalation_reasons": ["asked_for_human"], "answered": True}),
    )  # fmt: skip
    return make_ticket(customer, conversation=conversation, subject="Refund", assignee=agent)


def test_ticket_page_shows_summary_customer_panel_macros_and_shortcuts(agent, handed_off, customer):
    Macro.objects.create(
        organization=customer.organization, name="Refund delay", reply="Hi {customer_name}, I'm on it.",
        set_status=TicketStatus.PENDING,
    )  # fmt: skip
    earlier = make_ticket(customer, subject="Broken zip", status=TicketStatus.RESOLVED)
    emailed = services.conversation_start(customer=customer, channel="email")
    Ticket.objects.filter(pk=earlier.pk).update(csat_score=4)
    page = login(agent).get(f"/admin/tickets/ticket/{handed_off.pk}/change/").content.decode()
    # The summary: what the customer wants, what the assistant said and from where, why it handed off.
    summary = page[page.index('class="cc-summary"') : page.index('id="transcript"')]
    assert "When will I get my refund for the tent?" in summary and "two weeks" in summary
    assert "Returns and refunds" in summary and "asked_for_human" in summary and "refund_status" in summary
    assert "worsening" in summary  # the scores went -0.1, then -0.3
    # The customer beside it: VIP tier, language, identities, earlier tickets with their rating, the trend.
    side = page[page.index('class="cc-panel cc-customer"') :]
    assert "maya@example.com" in side and "Broken zip" in side and "CSAT 4" in side
    conversations = side[side.index("Earlier conversations") : side.index("Earlier tickets")]
    assert f"#{emailed.pk} Email" in conversations and f"#{handed_off.conversation_id} " not in conversations
    assert "<polyline points=" in side
    # The macro is rendered for this customer as a preview, with the changes it makes.
    assert 'data-text="Hi Maya, I&#x27;m on it."' in page and "status → Pending" in page
    assert "Ctrl+Enter" in page and 'id="cc-suggest"' in page
    # Columns: the conversation in the main column, the form in the side column.
    assert page.index('class="cc-main"') < page.index('id="transcript"') < page.index('class="cc-side"')
    assert page.index('class="cc-side"') < page.index('id="ticket_form"')


def test_ticket_page_queries_do_not_grow_with_the_transcript(agent, customer, django_assert_num_queries):
    def ticket_with(n):
        conversation = services.conversation_start(customer=customer)
        Message.objects.bulk_create(
            [Message(conversation=conversation, role="customer" if i % 2 else "bot", text=f"line {i}", seq=i)
             for i in range(1, n + 1)]
        )  # fmt: skip
        conversation.last_seq = n
        conversation.save()
        return make_ticket(customer, conversation=conversation, assignee=agent)

    desk = login(agent)
    small, large = ticket_with(5), ticket_with(500)
    desk.get(f"/admin/tickets/ticket/{small.pk}/change/")  # the session's first read
    with CaptureQueriesContext(connection) as few:
        assert desk.get(f"/admin/tickets/ticket/{small.pk}/change/").status_code == 200
    pinned = len(few)
    desk.get(f"/admin/tickets/ticket/{large.pk}/change/")  # marks it seen (one update, once)
    with django_assert_num_queries(pinned):
        response = desk.get(f"/admin/tickets/ticket/{large.pk}/change/")
    assert response.content.decode().count('class="cc-msg ') == 500
    assert pinned <= 40


def test_a_mention_notifies_the_colleague_and_nobody_else(
    agent, handed_off, org, eager, django_capture_on_commit_callbacks
):
    colleague = StaffFactory(organization=org, username="sam.lee", email="sam@acme.test")
    StaffFactory(organization=org, username="bystander", email="by@acme.test")
    outsider = StaffFactory(username="sam", email="outsider@globex.test")  # another organization
    with django_capture_on_commit_callbacks(execute=True):
        response = login(agent).post(
            f"/admin/tickets/ticket/{handed_off.pk}/note/",
            {"body": "@Sam.Lee can you check the refund? @sam, @alice and refunds@acme.test are not meant."},
        )
    assert response.status_code == 302
    notification = StaffNotification.objects.get()
    assert notification.recipient == colleague and notification.ticket == handed_off and notification.actor == agent
    assert [m.to for m in mail.outbox] == [["sam@acme.test"]]
    assert f"[#{handed_off.pk}]" in mail.outbox[0].subject and "check the refund" in mail.outbox[0].body
    assert not StaffNotification.objects.filter(recipient=outsider).exists()
    # A retried task mails nobody twice.
    assert services.mention_email_send(notification_id=notification.pk) is False and len(mail.outbox) == 1
    # Opening the ticket reads the notification.
    login(colleague).get(f"/admin/tickets/ticket/{handed_off.pk}/change/")
    notification.refresh_from_db()
    assert notification.read_at is not None


def test_claiming_views_counts_and_the_unread_marker(agent, org, customer):
    desk = login(agent)
    colleague = StaffFactory(organization=org, username="bob")
    unassigned = make_ticket(customer, subject="Nobody has me")
    vip = make_ticket(CustomerFactory(organization=org, vip_tier="gold"), subject="VIP one",
                        assignee=colleague)  # fmt: skip
    waiting = make_ticket(customer, subject="Waiting one", status=TicketStatus.PENDING, assignee=agent)
    counts = desk.get("/admin/tickets/ticket/inbox/counts/").json()
    assert counts == {"mine": 1, "unassigned": 1, "open": 2, "waiting": 1, "at_risk": 0, "breached": 0, "vip": 1}
    page = desk.get("/admin/tickets/ticket/?view=unassigned").content.decode()
    assert "Nobody has me" in page and "VIP one" not in page and "Waiting one" not in page
    assert 'class="cc-claim button"' in page
    response = desk.post(f"/admin/tickets/ticket/{unassigned.pk}/claim/", {"next": "/admin/tickets/ticket/?view=mine"})
    assert response.status_code == 302 and response["Location"] == "/admin/tickets/ticket/?view=mine"
    unassigned.refresh_from_db()
    assert unassigned.assignee == agent
    assert desk.get("/admin/tickets/ticket/inbox/counts/").json()["mine"] == 2
    assert desk.get(f"/admin/tickets/ticket/{vip.pk}/claim/").status_code == 403  # a GET changes nothing
    # A new customer message on an assigned ticket is unread until its assignee opens it.
    conversation = chat(customer, ("customer", "Any news?", {}))
    Ticket.objects.filter(pk=waiting.pk).update(conversation=conversation)
    assert "cc-unread" in desk.get("/admin/tickets/ticket/?view=mine").content.decode()
    desk.get(f"/admin/tickets/ticket/{waiting.pk}/change/")
    assert "cc-unread" not in desk.get("/admin/tickets/ticket/?view=mine").content.decode()


def test_inbox_sorts_by_the_sla_deadline(agent, customer):
    now = timezone.now()
    later = make_ticket(customer, subject="Due later")
    sooner = make_ticket(customer, subject="Due sooner")
    Ticket.objects.filter(pk=later.pk).update(first_response_due=now + timezone.timedelta(hours=5))
    Ticket.objects.filter(pk=sooner.pk).update(first_response_due=now + timezone.timedelta(minutes=5))
    page = login(agent).get("/admin/tickets/ticket/").content.decode()
    assert page.index("Due sooner") < page.index("Due later")


def test_suggested_reply_cites_articles_and_its_fate_is_recorded(trained_org, agent, customer):
    conversation = chat(customer, ("customer", "when will I get my refund?", {}))
    ticket = make_ticket(customer, conversation=conversation, assignee=agent)
    desk = login(agent)
    url = f"/admin/tickets/ticket/{ticket.pk}/suggestion/"
    assert desk.get(url).status_code == 403  # drafting stores a row: POST only
    first = desk.post(url).json()
    assert first["text"].startswith("Hi Maya,") and "business days" in first["text"]
    assert first["citations"][0]["title"] == "Returns and refunds" and first["generated"] is False
    assert first["citations"][0]["url"] in first["text"]
    # Sent as drafted.
    desk.post(f"/admin/tickets/ticket/{ticket.pk}/reply/", {"text": first["text"], "suggestion": first["id"]})
    assert ReplySuggestion.objects.get(pk=first["id"]).outcome == "sent"
    assert [m.text for m in Message.objects.filter(conversation=conversation, role="agent")] == [first["text"]]
    # Edited, then sent.
    second = desk.post(url).json()
    desk.post(
        f"/admin/tickets/ticket/{ticket.pk}/reply/", {"text": "Sorry! " + second["text"], "suggestion": second["id"]}
    )
    assert ReplySuggestion.objects.get(pk=second["id"]).outcome == "edited"
    # Discarded; deciding twice is refused.
    third = desk.post(url).json()
    discard = f"{url}{third['id']}/discard/"
    assert desk.post(discard).json()["outcome"] == "discarded"
    assert desk.post(discard).status_code == 409
    # Reports and /metrics count them.
    data = reports.report_build(organization=trained_org, period="day", start=timezone.localdate())
    assert data["suggestions"]["sent"] == 1 and data["suggestions"]["edited"] == 1
    assert data["suggestions"]["acceptance_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert "suggested replies offered 3" in reports.report_text(data)
    metrics = Client().get("/metrics").content.decode()
    assert 'concierge_reply_suggestions{outcome="discarded"} 1.0' in metrics
    assert "concierge_reply_suggestion_acceptance 0.333" in metrics


def test_no_suggestion_without_a_question_or_an_answering_article(trained_org, agent, customer):
    desk = login(agent)
    empty = make_ticket(customer, conversation=services.conversation_start(customer=customer))
    response = desk.post(f"/admin/tickets/ticket/{empty.pk}/suggestion/")
    assert response.status_code == 422 and "not asked" in response.json()["error"]
    odd = make_ticket(
        customer=customer, conversation=chat(customer, ("customer", "quantum chromodynamics lattice", {}))
    )
    response = desk.post(f"/admin/tickets/ticket/{odd.pk}/suggestion/")
    assert response.status_code == 422 and "write your own reply" in response.json()["error"]
    assert not ReplySuggestion.objects.exists()


def test_staff_pages_in_chinese_by_choice_with_the_organizations_clock(agent, handed_off, org):
    from tenancy.models import Organization

    Organization.objects.filter(pk=org.pk).update(timezone="Asia/Shanghai")
    first = Message.objects.get(conversation=handed_off.conversation, seq=1)
    shanghai = first.created_at.astimezone(timezone.zoneinfo.ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    desk = login(agent)
    english = desk.get(f"/admin/tickets/ticket/{handed_off.pk}/change/").content.decode()
    assert "Reply to the customer" in english and "回复客户" not in english
    assert f"#1 · Customer · {shanghai}" in english  # the transcript in the organization's time zone
    # The switch in the header saves the choice on the staff member's profile.
    assert desk.post("/staff/language/", {"language": "klingon"}).status_code == 400
    response = desk.post("/staff/language/", {"language": "zh-hans", "next": "/admin/tickets/ticket/"})
    assert response.status_code == 302 and response["Location"] == "/admin/tickets/ticket/"
    agent.staff_profile.refresh_from_db()
    assert agent.staff_profile.language == "zh-hans"
    chinese = desk.get(f"/admin/tickets/ticket/{handed_off.pk}/change/").content.decode()
    assert "回复客户" in chinese and "发送回复" in chinese and "内部备注" in chinese  # our own strings
    assert "保存" in chinese  # Django admin's own catalogue
    assert '"viewing": "{name} \\u4e5f\\u5728\\u67e5\\u770b\\u6b64\\u5de5\\u5355"' in chinese  # the script's words
    inbox = desk.get("/admin/tickets/ticket/").content.decode()
    assert "等待客户" in inbox and "我的" in inbox and "最新消息" in inbox and "分配给我" in inbox
    # Another staff member keeps their own language.
    colleague = StaffFactory(organization=org, username="bob")
    assert (
        "Reply to the customer"
        in login(colleague).get(f"/admin/tickets/ticket/{handed_off.pk}/change/").content.decode()
    )
