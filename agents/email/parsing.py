"""One raw email in, what the desk needs out: the sender, the threading headers, the text the
customer wrote this time (quoted history and signature stripped), the whole text and safe HTML
kept for staff, the attachments, and whether it is mail that must never be answered (an
auto-reply, a bounce, a mailing list).

MIME and character sets are the standard library's (``email`` with the default policy: GBK,
ISO-2022-JP, quoted-printable and encoded words decode there); HTML is made safe with nh3
(the Ammonia sanitiser) and turned into text with Beautiful Soup; quoted replies are cut with
email-reply-parser, plus the reply headers of Chinese and Japanese mail clients it does not know."""

import hashlib
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

import nh3
from bs4 import BeautifulSoup
from email_reply_parser import EmailReplyParser

from config.errors import DomainError

MAX_RAW_BYTES = 25 * 1024 * 1024

# Reply headers that email-reply-parser does not know: everything from them on is history.
_QUOTE_HEADERS = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:Original Message|Forwarded message|原始邮件|原始郵件)\s*-{2,}"
    r"|在\s*.{1,120}(?:写道|寫道)\s*[:\uff1a]"
    r"|.{1,120}(?:写道|寫道|wrote)\s*[:\uff1a]\s*$"
    r"|.{0,120}(?:のメッセージ|が書きました|さんは書きました)\s*[:\uff1a]?\s*$"
    r"|From:\s.+\n\s*(?:Sent|Date):\s"
    r"|发件人\s*[:\uff1a]"
    r")",
    re.MULTILINE,
)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|vs|回复|回覆|答复|转发|RE|FW)\s*(\[\d+\])?\s*[:\uff1a]\s*)+", re.I)
_TICKET_REFERENCE = re.compile(r"\[#(\d{1,12})\]")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass
class InboundEmail:
    message_id: str  # with its angle brackets; made from the content when the mail has none
    in_reply_to: list[str]
    references: list[str]
    subject: str
    sender_name: str
    sender: str  # the address, lower-cased
    recipients: list[str]  # To and Cc, lower-cased
    text: str  # the whole text part (or the HTML part as text), for staff
    html: str  # the HTML part made safe, for staff; "" when there is none
    reply: str  # what the customer wrote this time: quoted history and signature cut
    attachments: list[Attachment] = field(default_factory=list)
    automatic: str = ""  # why no one should answer it: "auto-reply", "bounce", "list"; "" for a person
    bounced_recipients: list[str] = field(default_factory=list)  # for a bounce: the addresses that failed

    @property
    def ticket_reference(self) -> int | None:
        found = _TICKET_REFERENCE.search(self.subject)
        return int(found.group(1)) if found else None

    @property
    def topic(self) -> str:
        """The subject without Re:/Fwd: prefixes and the ticket reference."""
        return _TICKET_REFERENCE.sub("", _SUBJECT_PREFIX.sub("", self.subject)).strip()


def _ids(value: Any) -> list[str]:
    return _MESSAGE_ID.findall(str(value or ""))


def html_to_text(html: str) -> str:
    """The text a person reads in an HTML mail: block elements on lines of their own, scripts
    and styles dropped."""
    soup = BeautifulSoup(html, "html.parser")
    for dropped in soup(["script", "style", "head", "title"]):
        dropped.decompose()
    for line_break in soup.find_all("br"):
        line_break.replace_with("\n")
    for quoted in soup.find_all("blockquote"):
        quoted.insert_before("\n")
        for line in quoted.find_all(string=True):
            line.replace_with("\n".join("> " + part if part.strip() else part for part in str(line).split("\n")))
    text = soup.get_text(separator="\n")
    lines = [" ".join(line.split()) if not line.startswith(">") else line.rstrip() for line in text.splitlines()]
    joined = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def html_make_safe(html: str) -> str:
    """HTML safe to show staff: no scripts, styles, event handlers or remote content loads
    other than plain links."""
    return nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")


def reply_part(text: str) -> str:
    """What the sender wrote above the quoted history, without their signature."""
    cut = _QUOTE_HEADERS.search(text)
    if cut and cut.start() > 0:
        text = text[: cut.start()]
    reply = EmailReplyParser.parse_reply(text).strip()
    return reply or text.strip()


def _automatic(message: EmailMessage, sender: str) -> str:
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    local = sender.split("@", 1)[0]
    if content_type == "multipart/report" and report_type == "delivery-status":
        return "bounce"
    if local in {"mailer-daemon", "postmaster"} or not sender:
        return "bounce"
    auto_submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return "auto-reply"
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in {"bulk", "auto_reply", "junk", "list"}:
        return "list" if precedence in {"bulk", "list"} else "auto-reply"
    if any(message.get(name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        if message.get("X-Auto-Response-Suppress") and not (message.get("X-Autoreply") or message.get("X-Autorespond")):
            # Outlook sets it on ordinary mail too when it only asks others not to auto-reply;
            # with "All" or "OOF" in it, it marks an automatic message itself.
            value = str(message.get("X-Auto-Response-Suppress")).lower()
            return "auto-reply" if "oof" in value or "all" in value else ""
        return "auto-reply"
    if message.get("List-Id") or message.get("List-Unsubscribe"):
        return "list"
    return ""


def _bounced(message: EmailMessage) -> list[str]:
    """The failed recipients a delivery status notification names (RFC 3464)."""
    failed = []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks: list[Any] = part.get_payload() if part.is_multipart() else []  # type: ignore[assignment]
        for block in blocks:
            action = str(block.get("Action", "")).strip().lower()
            recipient = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
            address = recipient.split(";", 1)[-1].strip().lower()
            if address and action in {"failed", ""}:
                failed.append(address)
    return failed


def _text_of(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):  # an unknown or lying charset: keep what decodes
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", errors="replace")


def email_parse(raw: bytes) -> InboundEmail:
    """The email in ``raw`` (its bytes as the MTA received them); DomainError for what is not
    an email at all."""
    if not raw or not raw.strip():
        raise DomainError("The email is empty.")
    if len(raw) > MAX_RAW_BYTES:
        raise DomainError(f"Emails are limited to {MAX_RAW_BYTES // 2**20} MB.")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage) or not (message.get("From") or message.get("Subject")):
        raise DomainError("This is not an email: it has neither a From nor a Subject header.")
    try:
        name, sender = parseaddr(str(message.get("From", "")))
    except (IndexError, ValueError):
        name, sender = "", ""
    sender = sender.strip().lower()
    if sender and "@" not in sender:
        raise DomainError(f"The sender {sender!r} is not an email address.")
    recipients = [
        address.strip().lower()
        for _, address in getaddresses([str(v) for v in message.get_all("To", []) + message.get_all("Cc", [])])
        if "@" in address
    ]
    body_plain = message.get_body(preferencelist=("plain",))
    body_html = message.get_body(preferencelist=("html",))
    html = _text_of(body_html) if body_html is not None else ""  # type: ignore[arg-type]
    text = _text_of(body_plain) if body_plain is not None else html_to_text(html) if html else ""  # type: ignore[arg-type]
    attachments = []
    for part in message.iter_attachments():
        if part.get_content_maintype() == "multipart" or part.get_content_type().startswith("message/"):
            continue
        payload = part.get_payload(decode=True)
        if payload:
            attachments.append(Attachment(part.get_filename() or "attachment", part.get_content_type(), bytes(payload)))
    message_id = (_ids(message.get("Message-ID")) or [f"<{hashlib.sha256(raw).hexdigest()[:40]}@concierge.invalid>"])[0]
    automatic = _automatic(message, sender)
    return InboundEmail(
        message_id=message_id,
        in_reply_to=_ids(message.get("In-Reply-To")),
        references=_ids(message.get("References")),
        subject=" ".join(str(message.get("Subject", "")).split()),
        sender_name=name.strip(),
        sender=sender,
        recipients=recipients,
        text=text.strip(),
        html=html_make_safe(html) if html else "",
        reply=reply_part(text),
        attachments=attachments,
        automatic=automatic,
        bounced_recipients=_bounced(message) if automatic == "bounce" else [],
    )


def address_domain(address: str) -> str:
    return Address(addr_spec=address).domain if "@" in address else "concierge.invalid"
