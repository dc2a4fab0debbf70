"""Images and PDFs sent with a message, both ways. A file is checked by its content (filetype
reads the bytes; Pillow opens every image), limited in size, stored through Django's storage
API under a random name, and served only by signed links that expire."""

import os
from typing import Any

import filetype
from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils.text import get_valid_filename

from config.errors import DomainError
from tickets.models import Attachment, Message

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
ALLOWED_TYPES = IMAGE_TYPES | {"application/pdf"}
LINK_SALT = "concierge.attachment"


def attachment_inspect(upload: Any) -> str:
    """The file's real type, or DomainError saying what is wrong with it (size, type, damage)."""
    limit = settings.CONCIERGE_ATTACHMENT_MAX_BYTES
    size = int(getattr(upload, "size", 0) or 0)
    if size <= 0:
        raise DomainError("The file is empty.")
    if size > limit:
        raise DomainError(f"Files are limited to {limit / 2**20:.0f} MB; this one is {size / 2**20:.1f} MB.")
    upload.seek(0)
    head = upload.read(8192)
    upload.seek(0)
    kind = filetype.guess(head)
    mime = kind.mime if kind is not None else ""
    if mime not in ALLOWED_TYPES:
        found = f"its content is {mime}" if mime else "its content is not a known file type"
        raise DomainError(f"Only images (PNG, JPEG, GIF, WebP) and PDF documents can be sent; {found}.")
    if mime in IMAGE_TYPES:
        from PIL import Image

        try:
            with Image.open(upload) as image:
                image.verify()
        except Exception as exc:  # Pillow raises many types for a broken image
            raise DomainError("This image is damaged and cannot be sent.") from exc
        finally:
            upload.seek(0)
    elif b"%%EOF" not in _tail(upload):
        raise DomainError("This PDF is incomplete and cannot be sent.")
    return mime


def _tail(upload: Any, size: int = 2048) -> bytes:
    upload.seek(max(0, int(upload.size) - size))
    data = upload.read()
    upload.seek(0)
    return bytes(data)


def attachment_store(*, message: Message, upload: Any, content_type: str) -> Attachment:
    """Save the checked file and its row. The caller holds the transaction; when saving the row
    fails, the file is removed again, so nothing is left half-stored."""
    name = get_valid_filename(os.path.basename(str(getattr(upload, "name", "") or "file")))[:150] or "file"
    attachment = Attachment(
        organization_id=message.conversation.organization_id,
        message=message,
        name=name,
        content_type=content_type,
        size=int(upload.size),
    )
    attachment.file.save(name, upload, save=False)
    try:
        attachment.save()
    except Exception:
        default_storage.delete(attachment.file.name)
        raise
    return attachment


def attachment_link(attachment: Attachment) -> str:
    """A path (relative: the widget resolves it against its own server) that serves the file
    for CONCIERGE_ATTACHMENT_URL_MAX_AGE seconds."""
    return reverse("attachment", args=[signing.dumps(attachment.pk, salt=LINK_SALT)])


def attachment_open(token: str) -> Attachment:
    try:
        attachment_id = signing.loads(token, salt=LINK_SALT, max_age=settings.CONCIERGE_ATTACHMENT_URL_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise DomainError("This link has expired; open the chat again for a fresh one.") from exc
    except signing.BadSignature as exc:
        raise DomainError("This link is not valid.") from exc
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if attachment is None:
        raise DomainError("This file no longer exists.")
    return attachment


def attachments_none_known(message: Message) -> None:
    """Mark a message known to have no files, so its broadcast frame (built once per message,
    on the chat's hot path) needs no query to learn so. The relation is left as Django's
    prefetch_related leaves one, already evaluated: a fresh ``none()`` still built its SQL when
    first read (~0.4 ms of CPU a message, twice a chat turn) before finding it empty."""
    none = Attachment.objects.none()
    none._result_cache = []
    none._prefetch_done = True  # type: ignore[attr-defined]  # as prefetch_related sets it
    setattr(message, "_prefetched_objects_cache", {"attachments": none})  # noqa: B010


def attachments_frame(message: Message) -> list[dict[str, Any]]:
    return [
        {"name": a.name, "type": a.content_type, "size": a.size, "url": attachment_link(a)}
        for a in message.attachments.all()
    ]


def attachment_file_delete(sender: Any, instance: Attachment, **kwargs: Any) -> None:
    """post_delete: the stored file goes once the deletion commits (a purge, an erasure)."""
    from django.db import transaction

    name = instance.file.name
    if name:
        transaction.on_commit(lambda: default_storage.delete(name))
