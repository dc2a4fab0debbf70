"""Email as a channel: real MIME in (charsets, HTML, quoted history, automatic mail), threading,
the assistant's answer and agents' replies mailed out through a real SMTP server on loopback
(aiosmtpd), delivery state, the MTA pipe endpoint and the email_ingest command."""

import base64
import email
import email.policy
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from aiosmtpd.controller import Controller
from django.core.management import CommandError, call_command
from django.test import Client

from agents.email.inbound import email_channel_set, email_receive
from agents.email.outbound import EmailSendDeferred, email_record_send
from agents.email.parsing import email_parse
from agents.models import EmailAssistantMode, EmailDirection, EmailRecord, EmailStatus
from config.errors import DomainError
from tests.support import free_port
from tickets import services
from tickets.models import Channel, Conversation, Customer, Message, MessageRole, Ticket, TicketNote

pytestmark = pytest.mark.django_db(transaction=True)
SUPPORT = "support@acme.example"


class Mailbox:
    """What the SMTP server on loopback received: (envelope recipients, parsed message)."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd's hook name
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield mailbox
    controller.stop()


@pytest.fixture
def channel(org):
    return email_channel_set(organization=org, address=SUPPORT, display_name="Acme support")


def mail(text="", subject="A question", sender="Kim Lee <kim@example.com>", html=None, **headers) -> bytes:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, f"Acme <{SUPPORT}>", subject
    message["Message-ID"] = headers.pop("message_id", make_msgid(domain="example.com"))
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


# --- parsing -------------------------------------------------------------------------------


def test_gbk_and_iso_2022_jp_mail_decode():
    gbk = (
        b"From: =?gbk?b?" + base64.b64encode("王芳".encode("gbk")) + b"?= <wang@example.cn>\r\n"
        b"To: support@acme.example\r\nSubject: =?gbk?b?" + base64.b64encode("退款".encode("gbk")) + b"?=\r\n"
        b"Message-ID: <gbk-1@example.cn>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=gbk\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + "我的订单什么时候到？".encode("gbk") + b"\r\n"
    )
    parsed = email_parse(gbk)
    assert (parsed.sender_name, parsed.sender, parsed.subject) == ("王芳", "wang@example.cn", "退款")
    assert parsed.reply == "我的订单什么时候到？"

    jis = (
        b"From: taro@example.jp\r\nTo: support@acme.example\r\nSubject: =?ISO-2022-JP?B?"
        + base64.b64encode("注文について".encode("iso-2022-jp"))
        + b"?=\r\nMessage-ID: <jis-1@example.jp>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
        + "荷物がまだ届きません。".encode("iso-2022-jp")
        + b"\r\n"
    )
    parsed = email_parse(jis)
    assert parsed.subject == "注文について"
    assert parsed.reply == "荷物がまだ届きません。"


def test_html_mail_is_made_safe_and_read_as_text_without_the_quoted_history():
    html = (
        "<html><head><style>p{color:red}</style><script>alert(1)</script></head><body>"
        "<p>Where is my <b>order</b>?</p><p onclick='steal()'>Thanks, Kim</p>"
        "<div>On Mon, 1 Dec 2026 at 10:00, Acme &lt;support@acme.example&gt; wrote:</div>"
        "<blockquote><p>Your order shipped.</p></blockquote></body></html>"
    )
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "kim@example.com", SUPPORT, "Re: order"
    message.set_content(html, subtype="html")
    parsed = email_parse(message.as_bytes())
    assert "Where is my\norder\n?" in parsed.text or "Where is my order?" in " ".join(parsed.text.split())
    assert "shipped" in parsed.text  # kept for staff
    assert "shipped" not in parsed.reply and "order" in parsed.reply
    assert "<script" not in parsed.html and "onclick" not in parsed.html and "<b>order</b>" in parsed.html


@pytest.mark.parametrize(
    "quoted",
    [
        "On Mon, Dec 1, 2026 at 10:00 AM Acme <support@acme.example> wrote:\n> Your order shipped.",
        "在 2026年12月1日 10:00，Acme <support@acme.example> 写道：\n> 您的订单已发货。",
        "-----Original Message-----\nFrom: Acme\nSent: Monday\n\nYour order shipped.",
    ],
)
def test_quoted_history_and_signature_are_cut_for_the_assistant(quoted):
    raw = mail(f"It still has not arrived.\n\n--\nKim Lee\nSent from my phone\n\n{quoted}\n")
    parsed = email_parse(raw)
    assert parsed.reply == "It still has not arrived."
    assert "shipped" in parsed.text or "发货" in parsed.text  # the whole mail stays for staff


def test_automatic_mail_is_recognised():
    assert email_parse(mail("Out of office", Auto_Submitted="auto-replied")).automatic == "auto-reply"
    assert email_parse(mail("Away", Precedence="auto_reply")).automatic == "auto-reply"
    assert email_parse(mail("Away", X_Autoreply="yes")).automatic == "auto-reply"
    assert email_parse(mail("News", List_Id="<news.example.com>")).automatic == "list"
    assert email_parse(mail("Hello, a person writing")).automatic == ""


def test_what_is_not_an_email_is_refused():
    with pytest.raises(DomainError):
        email_parse(b"")
    with pytest.raises(DomainError):
        email_parse(b"just some bytes, no headers at all")


# --- in and out, through the real SMTP server ------------------------------------------


def bounce_for(address: str) -> bytes:
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\nTo: support@acme.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <bounce-1@mx.example.com>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; " + address.encode() + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--B--\r\n"
    )


def test_a_new_email_is_answered_in_its_thread_and_the_reply_continues_it(trained_org, channel, smtp, eager):
    first_id = make_msgid(domain="example.com")
    received = email_receive(raw=mail("How long does delivery take?", subject="Delivery times", message_id=first_id))
    assert received.outcome == "received" and received.assistant_answers
    conversation = Conversation.objects.get(pk=received.conversation_id)
    assert conversation.channel == Channel.EMAIL
    assert conversation.customer.email == "kim@example.com" and conversation.customer.name == "Kim Lee"
    customer_message = conversation.messages.get(role=MessageRole.CUSTOMER)
    assert "delivery take" in customer_message.text and "Delivery times" in customer_message.text

    assert len(smtp.received) == 1
    recipients, answer = smtp.received[0]
    assert recipients == ["kim@example.com"]
    assert answer["From"].addresses[0].addr_spec == SUPPORT and answer["Reply-To"] == SUPPORT
    assert answer["In-Reply-To"] == first_id and first_id in answer["References"]
    assert answer["Subject"].startswith("Re: Delivery times")
    assert answer["Auto-Submitted"] == "auto-replied"
    assert answer.get_body(("plain",)) is not None and answer.get_body(("html",)) is not None
    bot = conversation.messages.get(role=MessageRole.BOT)
    assert bot.text.split()[0] in answer.get_body(("plain",)).get_content()
    record = EmailRecord.objects.get(message=bot)
    assert record.status == EmailStatus.SENT and record.mail_id == answer["Message-ID"] and record.attempts == 1

    # The customer answers our mail: same conversation, answered in the same thread again.
    follow_up = email_receive(
        raw=mail(
            "And do you ship to Canada?\n\nOn Tue, Acme wrote:\n> old text",
            subject="Re: Delivery times",
            In_Reply_To=answer["Message-ID"],
            References=f"{first_id} {answer['Message-ID']}",
        )
    )
    assert follow_up.conversation_id == conversation.pk
    assert conversation.messages.filter(role=MessageRole.CUSTOMER).count() == 2
    assert conversation.messages.filter(role=MessageRole.CUSTOMER).last().text == "And do you ship to Canada?"
    assert len(smtp.received) == 2
    second = smtp.received[1][1]
    assert answer["Message-ID"] in second["References"] and first_id in second["References"]


def test_the_same_email_twice_is_taken_once(trained_org, channel, smtp, eager):
    raw = mail("Where is my order?", subject="Order")
    assert email_receive(raw=raw).outcome == "received"
    again = email_receive(raw=raw)
    assert again.outcome == "duplicate"
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 1
    assert len(smtp.received) == 1


def test_auto_replies_bounces_and_our_own_mail_get_no_answer(trained_org, channel, smtp, eager):
    for raw in (
        mail("I am out of the office until Monday.", Auto_Submitted="auto-replied"),
        mail("Loop?", sender=f"Acme <{SUPPORT}>"),
        mail("Weekly news", Precedence="bulk"),
    ):
        assert email_receive(raw=raw).outcome == "ignored"
    assert not Message.objects.exists() and smtp.received == []
    assert EmailRecord.objects.filter(status=EmailStatus.IGNORED).count() == 3  # kept for staff

    # A bounce marks the address; nothing more is mailed to it, and staff see why.
    received = email_receive(raw=mail("Where is my order?", subject="Order", sender="lost@example.com"))
    assert len(smtp.received) == 1
    assert email_receive(raw=bounce_for("lost@example.com")).outcome == "ignored"
    customer = Customer.objects.get(pk=Conversation.objects.get(pk=received.conversation_id).customer_id)
    assert customer.email_bounced_at is not None
    email_receive(raw=mail("Hello again?", subject="Re: Order", sender="lost@example.com"))
    assert len(smtp.received) == 1
    failed = EmailRecord.objects.filter(direction=EmailDirection.OUTBOUND, status=EmailStatus.FAILED).get()
    assert "bounced" in failed.reason
    # A new address is worth trying again.
    services.customer_update(customer=customer, email="found@example.com")
    customer.refresh_from_db()
    assert customer.email_bounced_at is None


def test_a_mail_storm_from_one_sender_is_held_back(trained_org, channel, smtp, eager, settings):
    settings.CONCIERGE_RATE_LIMITS = {**settings.CONCIERGE_RATE_LIMITS, "email_sender": "3/h"}
    outcomes = [email_receive(raw=mail(f"Message number {n}", subject=f"Storm {n}")).outcome for n in range(5)]
    assert outcomes == ["received"] * 3 + ["ignored"] * 2
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 3


def test_an_agent_reply_goes_out_by_email_with_the_ticket_reference(trained_org, channel, smtp, eager, agent):
    first_id = make_msgid(domain="example.com")
    received = email_receive(raw=mail("I need to speak to a human please", subject="Help", message_id=first_id))
    conversation = Conversation.objects.get(pk=received.conversation_id)
    ticket = Ticket.objects.get(conversation=conversation)  # the assistant handed off
    before = len(smtp.received)
    services.ticket_reply(ticket=ticket, author=agent, text="Hello Kim, **Alice** here. How can I help?")
    assert len(smtp.received) == before + 1
    _, reply = smtp.received[-1]
    assert f"[#{ticket.pk}]" in reply["Subject"] and reply["In-Reply-To"] == first_id
    assert "<strong>Alice</strong>" in reply.get_body(("html",)).get_content()
    assert reply["Auto-Submitted"] is None  # a person wrote it

    # Staff see each message's mail and its delivery state in the transcript.
    client = Client()
    client.force_login(agent)
    page = client.get(f"/admin/tickets/ticket/{ticket.pk}/change/").content.decode()
    assert page.count("email sent") >= 1 and "email received" in page

    # Subject reference threads a reply that lost its headers, but only from the ticket's customer.
    back = email_receive(raw=mail("Thanks, it is order 4411", subject=f"Re: Help [#{ticket.pk}]"))
    assert back.conversation_id == conversation.pk
    stranger = email_receive(raw=mail("Me too", subject=f"Re: Help [#{ticket.pk}]", sender="eve@example.net"))
    assert stranger.conversation_id != conversation.pk


def test_smtp_down_is_retried_then_failed_with_the_reason_and_a_later_send_goes_once(
    trained_org, channel, smtp, eager, settings
):
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = free_port()  # nothing listens there
    # Eager tasks run their retries back to back: every attempt is made, then the record fails.
    received = email_receive(raw=mail("How long does delivery take?", subject="Delivery"))
    record = EmailRecord.objects.get(conversation_id=received.conversation_id, direction=EmailDirection.OUTBOUND)
    assert record.status == EmailStatus.FAILED and "ConnectionRefused" in record.reason
    assert record.attempts == settings.CONCIERGE_EMAIL_SEND_ATTEMPTS

    settings.CONCIERGE_EMAIL_SEND_ATTEMPTS = 100  # more than the task's retries: still queued after them
    received = email_receive(raw=mail("How long does delivery take?", subject="Delivery", sender="sam@example.com"))
    record = EmailRecord.objects.get(conversation_id=received.conversation_id, direction=EmailDirection.OUTBOUND)
    assert record.status == EmailStatus.QUEUED and record.attempts > 1
    with pytest.raises(EmailSendDeferred):
        email_record_send(record_id=record.pk)
    settings.EMAIL_PORT = port
    assert email_record_send(record_id=record.pk) == EmailStatus.SENT
    assert email_record_send(record_id=record.pk) == EmailStatus.SENT  # a rerun sends nothing more
    assert [recipients for recipients, _ in smtp.received] == [["sam@example.com"]]
    record.refresh_from_db()
    assert record.reason == "" and record.sent_at is not None


def test_draft_and_never_modes_leave_the_answer_to_agents(trained_org, channel, smtp, eager):
    email_channel_set(organization=trained_org, address=SUPPORT, assistant=EmailAssistantMode.DRAFT)
    received = email_receive(raw=mail("Can I get my money back?", subject="Refund"))
    ticket = Ticket.objects.get(conversation_id=received.conversation_id)
    note = TicketNote.objects.get(ticket=ticket)
    assert note.body.startswith("The assistant's draft answer:") and len(note.body) > 40
    assert smtp.received == [] and not Message.objects.filter(role=MessageRole.BOT).exists()

    email_channel_set(organization=trained_org, address=SUPPORT, assistant=EmailAssistantMode.NEVER)
    received = email_receive(raw=mail("Another question", subject="Other", sender="sam@example.com"))
    assert Ticket.objects.filter(conversation_id=received.conversation_id).exists()
    assert smtp.received == []


# --- the MTA pipe and the command ------------------------------------------------------


def test_mta_pipe_endpoint_checks_the_secret_and_reports(trained_org, channel, smtp, eager):
    client = Client()
    url = f"/api/v1/email/inbound/{trained_org.slug}"
    raw = mail("Where is my order?", subject="Order")
    assert client.post(url, raw, content_type="message/rfc822").status_code == 401
    wrong = client.post(url, raw, content_type="message/rfc822", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and not Message.objects.exists()
    auth = {"authorization": f"Bearer {channel.inbound_secret}"}
    nobody = client.post("/api/v1/email/inbound/nobody", raw, content_type="message/rfc822", headers=auth)
    assert nobody.status_code == 404
    bad = client.post(url, b"garbage", content_type="message/rfc822", headers=auth)
    assert bad.status_code == 400 and "not an email" in bad.json()["message"]
    ok = client.post(url, raw, content_type="message/rfc822", headers=auth)
    assert ok.status_code == 202 and ok.json()["status"] == "received"
    again = client.post(url, raw, content_type="message/rfc822", headers=auth)
    assert again.json()["status"] == "duplicate"
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 1
    assert len(smtp.received) == 1


def test_email_ingest_command(trained_org, channel, tmp_path, capsys):
    path = tmp_path / "question.eml"
    path.write_bytes(mail("Do you ship to Canada?", subject="Shipping"))
    call_command("email_ingest", str(path))
    out = capsys.readouterr().out
    assert out.startswith("received <") and "into conversation" in out
    call_command("email_ingest", str(path))
    assert capsys.readouterr().out.startswith("already taken")
    with pytest.raises(CommandError, match="no such file"):
        call_command("email_ingest", str(tmp_path / "missing.eml"))
    other = tmp_path / "elsewhere.eml"
    other.write_bytes(mail("Hi").replace(SUPPORT.encode(), b"someone@else.example"))
    with pytest.raises(CommandError, match="support address"):
        call_command("email_ingest", str(other))
