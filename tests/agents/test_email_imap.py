"""The polled mailbox against a real Dovecot IMAP server on loopback: mail appended over IMAP is
taken once and flagged, two polls racing take each message once, the server going away mid-poll
loses nothing, a refused login is recorded for staff."""

import itertools
import shutil
import tempfile
import threading
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from imap_tools import AND, MailBoxUnencrypted

from agents.email.inbound import email_channel_set, email_receive
from agents.email.mailbox import TAKEN, email_mailbox_poll
from agents.models import EmailAssistantMode, EmailMailbox, EmailRecord, MailboxSecurity
from tests.support import Dovecot
from tickets.models import Message, MessageRole

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
SUPPORT = "support@acme.example"
_users = itertools.count()
USERS = 20


@pytest.fixture(scope="module")
def dovecot():
    # Not under pytest's own temporary folders: those are private to root, and Dovecot's auth
    # and mail processes run as its own users.
    state = Path(tempfile.mkdtemp(prefix="concierge-dovecot-"))
    state.chmod(0o755)
    server = Dovecot(state)
    for n in range(USERS):  # before it starts: Dovecot rereads its passwd file only when the file's time changes
        server.user_add(f"desk{n}@acme.example", "s3cret")
    server.start()
    yield server
    server.stop()
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def mailbox(org, dovecot, eager):
    # Escalate instead of answering: these tests are about taking mail, not the assistant.
    channel = email_channel_set(organization=org, address=SUPPORT, assistant=EmailAssistantMode.NEVER)
    user = f"desk{next(_users)}@acme.example"  # a mailbox of its own for each test
    return EmailMailbox.objects.create(
        channel=channel, host="127.0.0.1", port=dovecot.port, security=MailboxSecurity.NONE, username=user,
        password="s3cret",
    )  # fmt: skip


def deliver(mailbox, count, start=0):
    """Put ``count`` customer emails into the mailbox over IMAP, as an MTA would deliver them."""
    raws = []
    with MailBoxUnencrypted("127.0.0.1", port=mailbox.port).login(mailbox.username, "s3cret") as imap:
        for n in range(start, start + count):
            message = EmailMessage()
            message["From"], message["To"] = f"customer{n}@example.com", SUPPORT
            message["Subject"], message["Message-ID"] = f"Question {n}", make_msgid(domain="example.com")
            message.set_content(f"Hello, this is question number {n}.")
            raws.append(message.as_bytes())
            imap.append(raws[-1], "INBOX")
    return raws


def untaken(mailbox):
    with MailBoxUnencrypted("127.0.0.1", port=mailbox.port).login(mailbox.username, "s3cret") as imap:
        return imap.uids(AND(no_keyword=TAKEN))


def test_new_mail_is_taken_once_and_flagged(mailbox):
    deliver(mailbox, 3)
    result = email_mailbox_poll(mailbox=mailbox)
    assert (result.taken, result.duplicates, result.error) == (3, 0, "")
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 3
    assert untaken(mailbox) == []
    again = email_mailbox_poll(mailbox=mailbox)
    assert (again.taken, again.duplicates) == (0, 0)
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 3
    mailbox.refresh_from_db()
    assert mailbox.last_polled_at is not None and mailbox.last_error == ""


def test_two_polls_racing_take_each_message_once(mailbox):
    deliver(mailbox, 8)
    results = []

    def poll():
        try:
            results.append(email_mailbox_poll(mailbox=EmailMailbox.objects.get(pk=mailbox.pk)))
        finally:
            connection.close()

    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2 and all(r.error == "" for r in results)
    assert sum(r.taken for r in results) == 8
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 8
    assert EmailRecord.objects.count() == 8
    assert untaken(mailbox) == []


def test_the_server_going_away_mid_poll_loses_nothing(mailbox, dovecot):
    raws = deliver(mailbox, 4)
    # A worker that died after storing the first message, before flagging it.
    email_receive(raw=raws[0], organization=mailbox.channel.organization)

    def stop_after_two(result):
        if result.taken + result.duplicates == 2:
            dovecot.crash()

    try:
        cut = email_mailbox_poll(mailbox=mailbox, after_each=stop_after_two)
    finally:
        dovecot.start()
    assert cut.error and (cut.duplicates, cut.taken) == (1, 1)
    mailbox.refresh_from_db()
    assert mailbox.last_error == cut.error
    rest = email_mailbox_poll(mailbox=mailbox)
    assert (rest.taken, rest.error) == (2, "")
    assert Message.objects.filter(role=MessageRole.CUSTOMER).count() == 4
    assert untaken(mailbox) == []


def test_a_refused_login_is_recorded_and_the_command_says_so(mailbox, capsys):
    EmailMailbox.objects.filter(pk=mailbox.pk).update(password="wrong")
    mailbox.refresh_from_db()
    result = email_mailbox_poll(mailbox=mailbox)
    assert result.error and result.taken == 0
    mailbox.refresh_from_db()
    assert mailbox.last_error
    with pytest.raises(CommandError, match="could not be polled"):
        call_command("email_poll", "--org", mailbox.channel.organization.slug)
    assert "error:" in capsys.readouterr().out
