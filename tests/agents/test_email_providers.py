"""Inbound mail from providers' webhooks (through django-anymail): each provider's documented
payload, signed or authenticated as the provider does it, is taken once; a forged one and a
replayed one store nothing new."""

import base64
import hashlib
import hmac
import json
import time
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from django.test import Client

from agents.admin import EmailProviderForm
from agents.email.inbound import email_channel_set
from agents.models import EmailAssistantMode, EmailProvider, EmailProviderKind, EmailRecord
from tickets.models import Channel, Conversation, Message, MessageRole

pytestmark = pytest.mark.django_db(transaction=True)
SUPPORT = "support@acme.example"
BASIC = "anymail:s3cret-Pass"
SIGNING_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture
def channel(org):
    # The assistant stays out of it: these tests are about what comes in.
    return email_channel_set(organization=org, address=SUPPORT, assistant=EmailAssistantMode.NEVER)


def raw_mail(text: str) -> tuple[bytes, str]:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "Kim Lee <kim@example.com>", SUPPORT, "Skis"
    message["Message-ID"] = mail_id = make_msgid(domain="example.com")
    message.set_content(text)
    return message.as_bytes(), mail_id


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# Each provider's post as its documentation describes it: (body, content type, headers).


def mailgun_post(raw: bytes, mail_id: str, key: str, signed_at: int | None = None) -> tuple:
    timestamp, token = str(signed_at or int(time.time())), uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    headers = [["From", "Kim Lee <kim@example.com>"], ["To", SUPPORT], ["Subject", "Skis"], ["Message-Id", mail_id]]
    fields = {
        "recipient": SUPPORT,
        "sender": "kim@example.com",
        "from": "Kim Lee <kim@example.com>",
        "subject": "Skis",
        "body-plain": raw.split(b"\n\n", 1)[1].decode(),
        "stripped-text": raw.split(b"\n\n", 1)[1].decode(),
        "message-headers": json.dumps(headers),
        "timestamp": timestamp,
        "token": token,
        "signature": signature,
    }
    return fields, None, {}


def postmark_post(raw: bytes, mail_id: str, credentials: str) -> tuple:
    body = raw.split(b"\n\n", 1)[1].decode()
    payload = {
        "FromName": "Kim Lee",
        "From": "kim@example.com",
        "FromFull": {"Email": "kim@example.com", "Name": "Kim Lee", "MailboxHash": ""},
        "To": SUPPORT,
        "ToFull": [{"Email": SUPPORT, "Name": "", "MailboxHash": ""}],
        "Cc": "",
        "CcFull": [],
        "OriginalRecipient": SUPPORT,
        "Subject": "Skis",
        "MessageID": str(uuid.uuid4()),
        "Date": "Thu, 3 Dec 2026 10:00:00 +0000",
        "TextBody": body,
        "HtmlBody": "",
        "StrippedTextReply": "",
        "Headers": [{"Name": "Return-Path", "Value": "<kim@example.com>"}, {"Name": "Message-ID", "Value": mail_id}],
        "Attachments": [],
    }
    return json.dumps(payload), "application/json", {"HTTP_AUTHORIZATION": basic(credentials)}


def sendgrid_post(raw: bytes, mail_id: str, credentials: str) -> tuple:
    # Inbound Parse with "POST the raw, full MIME message" on.
    fields = {
        "email": raw.decode(),
        "envelope": json.dumps({"to": [SUPPORT], "from": "kim@example.com"}),
        "charsets": json.dumps({"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8"}),
        "spam_score": "0.1",
    }
    return fields, None, {"HTTP_AUTHORIZATION": basic(credentials)}


def ses_post(raw: bytes, mail_id: str, credentials: str) -> tuple:
    sns_id = str(uuid.uuid4())
    notification = {
        "notificationType": "Received",
        "mail": {"timestamp": "2026-12-03T10:00:00.000Z", "source": "kim@example.com", "messageId": "ses-1"},
        "receipt": {
            "recipients": [SUPPORT],
            "spamVerdict": {"status": "PASS"},
            "action": {"type": "SNS", "topicArn": "arn:aws:sns:us-east-1:123456789012:inbound", "encoding": "BASE64"},
        },
        "content": base64.b64encode(raw).decode(),
    }
    envelope = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
        "Subject": "Amazon SES Email Receipt Notification",
        "Message": json.dumps(notification),
        "Timestamp": "2026-12-03T10:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-example.pem",
    }
    headers = {
        "HTTP_AUTHORIZATION": basic(credentials),
        "HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification",
        "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_id,
    }
    return json.dumps(envelope), "text/plain; charset=UTF-8", headers


def mailersend_post(raw: bytes, mail_id: str, key: str) -> tuple:
    payload = {
        "type": "inbound.message",
        "created_at": "2026-12-03T10:00:00.000000Z",
        "data": {
            "object": "message",
            "id": uuid.uuid4().hex[:24],
            "raw": raw.decode(),
            "created_at": "2026-12-03T10:00:00.000000Z",
            "sender": {"email": "kim@example.com"},
            "recipients": {"rcptTo": [{"email": SUPPORT}]},
        },
    }
    body = json.dumps(payload)
    signature = hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
    return body, "application/json", {"HTTP_SIGNATURE": signature}


PROVIDERS = {
    # provider: (builder, right credential, forged credential, stored as)
    EmailProviderKind.MAILGUN: (mailgun_post, SIGNING_KEY, "key-forged", "signing_key"),
    EmailProviderKind.POSTMARK: (postmark_post, BASIC, "anymail:guess", "webhook_secret"),
    EmailProviderKind.SENDGRID: (sendgrid_post, BASIC, "anymail:guess", "webhook_secret"),
    EmailProviderKind.AMAZON_SES: (ses_post, BASIC, "anymail:guess", "webhook_secret"),
    EmailProviderKind.MAILERSEND: (mailersend_post, SIGNING_KEY, "forged", "signing_key"),
}


def post(client: Client, provider: str, built: tuple, slug: str = "acme"):
    body, content_type, headers = built
    path = f"/api/v1/email/inbound/{slug}/{provider}"
    if content_type is None:  # a form post, multipart as the provider sends it
        return client.post(path, body, **headers)
    return client.post(path, body, content_type=content_type, **headers)


def customer_texts(org) -> list[str]:
    return list(
        Message.objects.filter(conversation__organization=org, role=MessageRole.CUSTOMER).values_list("text", flat=True)
    )


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_a_provider_post_is_taken_once_and_a_forged_one_not_at_all(org, channel, provider):
    build, credential, forged, stored_as = PROVIDERS[provider]
    EmailProvider.objects.create(channel=channel, provider=provider, **{stored_as: credential})
    client = Client()

    raw, mail_id = raw_mail("Can I rent skis for a week?")
    refused = post(client, provider, build(raw, mail_id, forged))
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"] == "bad_signature"
    assert customer_texts(org) == [] and not EmailRecord.objects.exists()

    built = build(raw, mail_id, credential)
    taken = post(client, provider, built)
    assert taken.status_code == 200, taken.content
    [outcome] = taken.json()["received"]
    assert outcome["status"] == "received"
    conversation = Conversation.objects.get(pk=outcome["conversation_id"])
    assert conversation.channel == Channel.EMAIL and conversation.organization == org
    assert customer_texts(org) == ["Can I rent skis for a week?"]
    record = EmailRecord.objects.get()
    assert (record.mail_id, record.sender) == (mail_id, "kim@example.com")
    assert EmailProvider.objects.get().last_received_at is not None

    replayed = post(client, provider, built)  # the same post again, as an attacker or a retry sends it
    assert replayed.status_code == 200
    assert replayed.json()["received"][0]["status"] == "duplicate"
    assert customer_texts(org) == ["Can I rent skis for a week?"] and EmailRecord.objects.count() == 1


def test_a_mailgun_post_signed_long_ago_is_refused_as_a_replay(org, channel):
    EmailProvider.objects.create(channel=channel, provider=EmailProviderKind.MAILGUN, signing_key=SIGNING_KEY)
    raw, mail_id = raw_mail("Hello")
    old = mailgun_post(raw, mail_id, SIGNING_KEY, signed_at=int(time.time()) - 3600)
    answer = post(Client(), EmailProviderKind.MAILGUN, old)
    assert answer.status_code == 403 and answer.json()["error"] == "stale_signature"
    assert customer_texts(org) == []


def test_basic_auth_is_challenged_and_unknown_or_unset_providers_are_not_found(org, channel):
    EmailProvider.objects.create(channel=channel, provider=EmailProviderKind.AMAZON_SES, webhook_secret=BASIC)
    raw, mail_id = raw_mail("Hello")
    body, content_type, headers = ses_post(raw, mail_id, BASIC)
    del headers["HTTP_AUTHORIZATION"]
    challenged = post(Client(), EmailProviderKind.AMAZON_SES, (body, content_type, headers))
    assert challenged.status_code == 401 and challenged["WWW-Authenticate"].startswith("Basic ")
    # An SNS header that does not match its body is refused by anymail's check.
    body, content_type, headers = ses_post(raw, mail_id, BASIC)
    headers["HTTP_X_AMZ_SNS_MESSAGE_ID"] = "someone-else"
    assert post(Client(), EmailProviderKind.AMAZON_SES, (body, content_type, headers)).status_code == 403

    assert post(Client(), "postmark", postmark_post(raw, mail_id, BASIC)).status_code == 404  # not set up
    assert post(Client(), "pigeon", postmark_post(raw, mail_id, BASIC)).status_code == 404
    assert post(Client(), "amazon_ses", ses_post(raw, mail_id, BASIC), slug="nobody").status_code == 404
    not_mail = Client().post(
        "/api/v1/email/inbound/acme/amazon_ses",
        "not json",
        content_type="text/plain",
        HTTP_AUTHORIZATION=basic(BASIC),
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
    )
    assert not_mail.status_code == 400 and not_mail.json()["message"]
    assert customer_texts(org) == []


def test_the_admin_form_needs_the_provider_s_own_kind_of_credential(channel):
    def errors(**data):
        form = EmailProviderForm(data={"enabled": "on", **data}, instance=EmailProvider(channel=channel))
        return form.errors.get("__all__", [])

    assert "signing key" in errors(provider="mailgun", webhook_secret=BASIC)[0]
    assert "user:password" in errors(provider="postmark", webhook_secret="no-colon")[0]
    assert errors(provider="postmark", webhook_secret=BASIC) == []
    form = EmailProviderForm(data={"provider": "mailgun", "signing_key": SIGNING_KEY, "enabled": "on"})
    form.instance.channel = channel
    saved = form.save()
    # Blank on a later edit keeps the stored key; it is stored encrypted.
    edit = EmailProviderForm(data={"provider": "mailgun", "signing_key": "", "enabled": "on"}, instance=saved)
    assert edit.is_valid(), edit.errors
    assert edit.save().signing_key == SIGNING_KEY
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_key FROM agents_emailprovider WHERE id = %s", [saved.pk])
        assert SIGNING_KEY not in cursor.fetchone()[0]


def test_an_sns_subscription_is_left_for_a_person_to_confirm_and_its_link_logged(org, channel, caplog):
    EmailProvider.objects.create(channel=channel, provider=EmailProviderKind.AMAZON_SES, webhook_secret=BASIC)
    sns_id = str(uuid.uuid4())
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": sns_id,
        "Token": "2336412f37",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:inbound",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336412f37",
        "Message": "You have chosen to subscribe to the topic.",
    }
    answer = Client().post(
        "/api/v1/email/inbound/acme/amazon_ses",
        json.dumps(confirmation),
        content_type="text/plain; charset=UTF-8",
        HTTP_AUTHORIZATION=basic(BASIC),
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="SubscriptionConfirmation",
        HTTP_X_AMZ_SNS_MESSAGE_ID=sns_id,
    )
    assert answer.status_code == 200 and answer.json() == {"received": []}
    assert confirmation["SubscribeURL"] in caplog.text
    assert customer_texts(org) == []


@pytest.mark.django_db
def test_an_admin_connects_a_provider_and_staff_see_the_mail_as_it_came(org, client):
    from tests.tenancy.factories import StaffFactory

    client.force_login(StaffFactory(organization=org, role="admin"))
    form = {
        "address": "Help@Acme.example",
        "display_name": "Acme help",
        "assistant": "draft",
        "mailboxes-TOTAL_FORMS": "0",
        "mailboxes-INITIAL_FORMS": "0",
        "providers-TOTAL_FORMS": "1",
        "providers-INITIAL_FORMS": "0",
        "providers-0-provider": "mailgun",
        "providers-0-webhook_secret": "",
        "providers-0-signing_key": "",
        "providers-0-enabled": "on",
    }
    refused = client.post("/admin/agents/emailchannel/add/", form)
    assert refused.status_code == 200 and "signing key is needed" in refused.content.decode()
    form["providers-0-signing_key"] = SIGNING_KEY
    mailbox = {"host": "127.0.0.1", "port": "993", "security": "ssl", "username": "help", "folder": "INBOX"}
    form.update({f"mailboxes-0-{name}": value for name, value in mailbox.items()}, **{"mailboxes-TOTAL_FORMS": "1"})
    refused = client.post("/admin/agents/emailchannel/add/", form)
    assert refused.status_code == 200 and "password is needed" in refused.content.decode()
    form["mailboxes-0-password"] = "imap-pass"
    saved = client.post("/admin/agents/emailchannel/add/", form)
    assert saved.status_code == 302, saved.content.decode()[:3000]
    provider = EmailProvider.objects.get(channel__organization=org)
    assert (provider.provider, provider.signing_key, provider.channel.address) == (
        "mailgun",
        SIGNING_KEY,
        "help@acme.example",
    )
    page = client.get(f"/admin/agents/emailchannel/{provider.channel.pk}/change/").content.decode()
    assert "/api/v1/email/inbound/acme/mailgun" in page and SIGNING_KEY not in page  # never shown again
    assert provider.channel.mailboxes.get().password == "imap-pass" and "imap-pass" not in page

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "kim@example.com", "help@acme.example", "Skis"
    message.set_content("Skis?")
    message.add_alternative("<p>Skis? <script>alert(1)</script><b>Thanks</b></p>", subtype="html")
    from agents.email.inbound import email_receive

    record = email_receive(raw=message.as_bytes(), organization=org).record
    page = client.get(f"/admin/agents/emailrecord/{record.pk}/change/").content.decode()
    assert '<iframe sandbox=""' in page and "&lt;b&gt;Thanks&lt;/b&gt;" in page and "alert(1)" not in page
