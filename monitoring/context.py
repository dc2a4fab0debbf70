"""What the current line of work is about: the HTTP request, the chat conversation or the
Celery task. Kept in context variables, which asgiref copies into the threads that run sync
code, so every log line written on behalf of a request or a chat turn carries its id."""

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
conversation_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("conversation_id", default=None)
task_id: contextvars.ContextVar[str] = contextvars.ContextVar("task_id", default="")

_MAX_INCOMING_ID = 64


def request_id_new(incoming: str = "") -> str:
    """The caller's X-Request-ID when it is short and printable, else a fresh one."""
    incoming = (incoming or "").strip()
    if incoming and len(incoming) <= _MAX_INCOMING_ID and incoming.isprintable() and '"' not in incoming:
        return incoming
    return uuid.uuid4().hex


@contextmanager
def conversation_context(conversation: int | None) -> Iterator[None]:
    token = conversation_id.set(conversation)
    try:
        yield
    finally:
        conversation_id.reset(token)
