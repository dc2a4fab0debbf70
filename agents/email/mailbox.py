"""Polling an organization's mailbox over IMAP (imap-tools): every message not yet taken is
fetched one at a time, stored through ``email_receive``, and only then flagged as taken (the
keyword ``Concierge`` and \\Seen). A poll that dies or loses the server mid-batch leaves the rest
untaken for the next poll; a message stored but not yet flagged is recognised by its Message-ID
and only flagged; two polls racing store each message once (the Message-ID is unique per
organization). The beat schedule polls every enabled mailbox each minute."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from imap_tools import AND, MailBox, MailBoxStartTls, MailBoxUnencrypted

from agents.email.inbound import email_receive
from agents.models import EmailMailbox, MailboxSecurity
from config.errors import DomainError

logger = logging.getLogger(__name__)

TAKEN = "Concierge"  # the IMAP keyword set on every message Concierge has stored
BATCH = 50  # messages a poll takes at most; the next poll takes the rest
TIMEOUT_SECONDS = 30


@dataclass
class PollResult:
    taken: int = 0  # newly stored (received or ignored as automatic mail)
    duplicates: int = 0  # stored before (a poll that died before flagging, or a racing poll)
    refused: int = 0  # not emails at all; flagged so they are not read again
    error: str = ""


def _connect(mailbox: EmailMailbox) -> Any:
    kind: Any = {
        MailboxSecurity.SSL: MailBox,
        MailboxSecurity.STARTTLS: MailBoxStartTls,
        MailboxSecurity.NONE: MailBoxUnencrypted,
    }[MailboxSecurity(mailbox.security)]
    return kind(mailbox.host, port=mailbox.port, timeout=TIMEOUT_SECONDS).login(
        mailbox.username, mailbox.password, initial_folder=mailbox.folder
    )


def email_mailbox_poll(*, mailbox: EmailMailbox, after_each: Callable[[PollResult], None] | None = None) -> PollResult:
    """Take what is new in one mailbox. Connection and server errors end the poll and are
    recorded on the mailbox (staff see them in admin); what was taken before stays taken."""
    result = PollResult()
    organization = mailbox.channel.organization
    try:
        with _connect(mailbox) as client:
            uids = client.uids(AND(no_keyword=TAKEN))[:BATCH]
            for uid in uids:
                fetched = list(client.fetch(AND(uid=uid), mark_seen=False, bulk=False))
                if not fetched:
                    continue  # deleted meanwhile
                try:
                    received = email_receive(raw=fetched[0].obj.as_bytes(), organization=organization)
                except DomainError as exc:
                    logger.warning("mailbox %s: message %s is not an email: %s", mailbox.pk, uid, exc)
                    result.refused += 1
                else:
                    if received.outcome == "duplicate":
                        result.duplicates += 1
                    else:
                        result.taken += 1
                client.flag(uid, [TAKEN, "\\Seen"], True)
                if after_each is not None:
                    after_each(result)
    except (OSError, EOFError) as exc:  # refused, timed out, the connection dropped
        result.error = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the server said no: login refused, no such folder
        if type(exc).__module__.split(".")[0] not in ("imaplib", "imap_tools"):
            raise
        result.error = f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        EmailMailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=timezone.now(), last_error=result.error[:300])
    if result.error:
        logger.warning("mailbox %s: %s", mailbox.pk, result.error)
    return result


def email_mailboxes_due() -> list[int]:
    return list(EmailMailbox.objects.filter(enabled=True).values_list("pk", flat=True))
