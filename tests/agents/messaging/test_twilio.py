"""Twilio: SMS and the phone line. Every webhook is signed as Twilio signs it (the twilio SDK's own
RequestValidator computes the X-Twilio-Signature over the public URL and the form), replies go
through the twilio SDK to a loopback REST API that checks the account's credentials and fields,
and a call walks through the TwiML Twilio would follow: greeting, voicemail, transcription,
missed call."""

import xml.etree.ElementTree as ElementTree

import pytest
from twilio.request_validator import RequestValidator

from agents.messaging.models import CallStatus, DeliveryStatus, Direction, MessagingRecord, VoiceCall
from tests.agents.messaging.conftest import BOT, CUSTOMER, account_make, admin_reply, texts, webhook_path
from tests.agents.messaging.providers import PNG, twilio_api
from tickets import services
from tickets.models import Attachment, Channel, Conversation, Customer, Message, Ticket, TicketNote

pytestmark = pytest.mark.django_db(transaction=True)
SID, TOKEN, NUMBER, KIM = "AC" + "1" * 32, "twilio-auth-token", "+15005550006", "+447700900123"


@pytest.fixture
def rest(settings):
    server = twilio_api(SID, TOKEN)
    settings.CONCIERGE_TWILIO_API_URL = server.url
    yield server
    server.close()


@pytest.fixture
def sms(org):
    return account_make(org, "sms", NUMBER, name="Acme SMS", account_sid=SID, auth_token=TOKEN)


@pytest.fixture
def phone(org):
    return account_make(org, "voice", NUMBER, name="Acme line", account_sid=SID, auth_token=TOKEN)


def post(client, account, form: dict, event: str = "", token: str = TOKEN, signed: bool = True):
    path = webhook_path(account) + (f"?event={event}" if event else "")
    headers = {}
    if signed:
        url = f"https://desk.acme.example{path}"
        headers["HTTP_X_TWILIO_SIGNATURE"] = RequestValidator(token).compute_signature(url, form)
    return client.post(path, data=form, **headers)


def inbound_sms(sid: str, body: str, sender: str = KIM, **extra) -> dict:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": SID, "From": sender, "To": NUMBER, "Body": body,
            "NumMedia": "0", **extra}  # fmt: skip


def sent(rest) -> list[dict]:
    return [{k: v[0] for k, v in r.form.items()} for r in rest.to(r"/2010-04-01/Accounts/\w+/Messages.json")]


def test_forged_unsigned_replayed_elsewhere_and_malformed_sms_store_nothing(client, sms):
    form = inbound_sms("SM1", "hello")
    assert post(client, sms, form, token="not-the-token").status_code == 403
    assert post(client, sms, form, signed=False).status_code == 401
    # A genuine signature for another URL (another account's webhook) does not carry over.
    url = "https://desk.acme.example/api/v1/messaging/another-key"
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    assert client.post(webhook_path(sms), data=form, HTTP_X_TWILIO_SIGNATURE=signature).status_code == 403
    assert post(client, sms, {"From": KIM, "Body": "no sid"}).status_code == 400
    assert post(client, sms, {**inbound_sms("SM2", "x"), "NumMedia": "lots"}).status_code == 400
    assert not Message.objects.exists() and not Customer.objects.exists()


def test_the_whole_sms_path_answer_status_handoff_reply_and_one_customer_across_channels(
    client, trained_org, sms, rest, eager, agent
):
    response = post(client, sms, inbound_sms("SM10", "How long do refunds take?"))
    assert response.status_code == 200 and b"<Response" in response.content  # empty TwiML: the reply goes by REST
    post(client, sms, inbound_sms("SM10", "How long do refunds take?"))  # Twilio's retry
    conversation = Conversation.objects.get()
    assert conversation.channel == Channel.SMS and texts(conversation.pk, CUSTOMER) == ["How long do refunds take?"]
    answer = sent(rest)
    assert len(answer) == 1 and answer[0]["To"] == KIM and answer[0]["From"] == NUMBER
    assert "Returns and refunds" in answer[0]["Body"]
    record = MessagingRecord.objects.get(direction=Direction.OUTBOUND)
    assert answer[0]["StatusCallback"] == f"https://desk.acme.example{webhook_path(sms)}"
    post(client, sms, {"MessageSid": record.provider_message_id, "MessageStatus": "delivered", "To": KIM})
    record.refresh_from_db()
    assert record.status == DeliveryStatus.DELIVERED

    post(client, sms, inbound_sms("SM11", "I want to talk to a human"))
    ticket = Ticket.objects.get(conversation=conversation)
    admin_reply(agent, ticket, "Alice here, calling you in 5 minutes.")
    assert sent(rest)[-1]["Body"] == "Alice here, calling you in 5 minutes."
    agent_record = MessagingRecord.objects.get(message__role="agent")
    post(client, sms, {"MessageSid": agent_record.provider_message_id, "MessageStatus": "undelivered",
                       "ErrorCode": "30003", "To": KIM})  # fmt: skip
    agent_record.refresh_from_db()
    assert agent_record.status == DeliveryStatus.FAILED and agent_record.reason == "Twilio error 30003"

    # The same number on WhatsApp is the same person (both providers proved it).
    from agents.messaging.adapters import Inbound
    from agents.messaging.inbound import messaging_receive
    from tests.agents.messaging.conftest import account_make as make

    whatsapp = make(trained_org, "whatsapp", "1", access_token="t", app_secret="s")
    hello = Inbound("wamid.X", KIM, "hi on whatsapp", display_name="Kim Lee", verified_phone=True)
    messaging_receive(account=whatsapp, inbound=hello)
    assert Customer.objects.count() == 1
    assert Customer.objects.get().name == "Kim Lee"  # SMS gave no name; WhatsApp's profile fills it
    assert sorted(Customer.objects.get().channel_identities.values_list("provider", flat=True)) == ["sms", "whatsapp"]


def test_mms_pictures_in_and_out(client, sms, rest, eager, agent, settings):
    form = inbound_sms("MM1", "", NumMedia="1", MediaUrl0=f"{rest.url}/media/pole.png", MediaContentType0="image/png")
    post(client, sms, form)
    stored = Attachment.objects.get(message__role="customer")
    assert stored.file.read() == PNG
    assert (
        rest.to(r"/media/pole.png")[0].headers["authorization"].startswith("Basic ")
    )  # with the account's credentials

    ticket = services.conversation_escalate(conversation=Conversation.objects.get(), reason="test")
    from django.core.files.uploadedfile import SimpleUploadedFile

    services.ticket_reply(
        ticket=ticket, author=agent, text="Label attached.", attachment=SimpleUploadedFile("label.png", PNG)
    )
    media_url = sent(rest)[-1]["MediaUrl"]
    assert media_url.startswith("https://desk.acme.example/") and "/attachments/" in media_url  # a signed link


def twiml(response) -> ElementTree.Element:
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    return ElementTree.fromstring(response.content)  # noqa: S314 (our own TwiML)


def call_form(sid: str, status: str = "ringing", **extra) -> dict:
    return {"CallSid": sid, "AccountSid": SID, "From": KIM, "To": NUMBER, "CallStatus": status, **extra}


def test_a_call_greets_records_a_voicemail_and_becomes_a_ticket_with_the_recording(
    client, phone, rest, eager, agent, supervisor
):
    root = twiml(post(client, phone, call_form("CA1")))
    say, record = root.find("Say"), root.find("Record")
    assert "Thank you for calling Acme" in say.text and say.get("language") == "en-US"
    path = webhook_path(phone)
    assert record.get("action") == f"https://desk.acme.example{path}?event=recorded"
    assert record.get("transcribeCallback") == f"https://desk.acme.example{path}?event=transcribed"

    recording = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE1"
    done = call_form("CA1", "in-progress", RecordingSid="RE1", RecordingUrl=recording, RecordingDuration="14")
    root = twiml(post(client, phone, done, event="recorded"))
    assert root.find("Hangup") is not None
    post(client, phone, done, event="recorded")  # a retry changes nothing
    call = VoiceCall.objects.get()
    assert call.status == CallStatus.VOICEMAIL and call.recording_seconds == 14
    ticket = Ticket.objects.get()
    assert ticket.channel == Channel.VOICE and ticket.subject.startswith(f"Voicemail from {KIM}, 14 s")
    note = TicketNote.objects.get(ticket=ticket)
    assert f"/admin/agents/voicecall/{call.pk}/change/" in note.body

    transcribed = call_form("CA1", "completed", TranscriptionStatus="completed",
                            TranscriptionText="Hi, my tent pole snapped, please call me back.")  # fmt: skip
    post(client, phone, transcribed, event="transcribed")
    call.refresh_from_db()
    assert call.transcription.startswith("Hi, my tent pole")
    assert (
        texts(ticket.conversation_id, CUSTOMER)[-1]
        == "Voicemail transcription: Hi, my tent pole snapped, please call me back."
    )
    assert not texts(ticket.conversation_id, BOT)  # a voicemail goes to people, never the assistant

    # Staff play the recording on the call's page, fetched from Twilio with the account's credentials.
    client.force_login(agent)
    page = client.get(f"/admin/agents/voicecall/{call.pk}/change/").content.decode()
    assert "<audio controls" in page and "tent pole snapped" in page
    audio = client.get(f"/admin/agents/voicecall/{call.pk}/recording/")
    assert audio.status_code == 200 and audio.content == b"ID3-fake-mp3-RE1"

    # The agent's answer goes back as a text message from the same number.
    admin_reply(agent, ticket, "Sorry about the pole! A new one is on its way.")
    reply = sent(rest)[-1]
    assert (reply["To"], reply["From"]) == (KIM, NUMBER) and "new one" in reply["Body"]
    assert reply["StatusCallback"].endswith(f"{path}?event=message-status")


def test_a_call_without_a_voicemail_is_a_missed_call_staff_can_see(client, phone, agent):
    post(client, phone, call_form("CA2"))
    post(client, phone, call_form("CA2", "completed", CallDuration="4"), event="status")
    post(client, phone, call_form("CA3"))
    post(client, phone, call_form("CA3", "no-answer"), event="status")
    missed = VoiceCall.objects.filter(status=CallStatus.MISSED).order_by("call_sid")
    assert [c.call_sid for c in missed] == ["CA2", "CA3"] and missed[0].duration == 4 and missed[0].ended_at
    assert not Ticket.objects.exists()
    client.force_login(agent)
    listed = client.get("/admin/agents/voicecall/", {"status__exact": "missed"}).content.decode()
    assert listed.count(KIM) == 2 and "Missed" in listed
    assert post(client, phone, call_form("CA4"), token="forged").status_code == 403
    assert post(client, phone, {"From": KIM}).status_code == 400


def test_a_chinese_line_greets_in_chinese_and_keeps_the_recording_alone(client, phone):
    phone.language = "zh"
    phone.save()
    root = twiml(post(client, phone, call_form("CA5")))
    assert root.find("Say").get("language") == "zh-CN" and "感谢致电" in root.find("Say").text
    assert root.find("Record").get("transcribe") == "false"  # Twilio transcribes English only
