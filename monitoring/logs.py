"""Structured logs: one JSON object per line, with the request, conversation or task id of
the work that wrote it (see monitoring.context). LOG_FORMAT=text gives a readable line."""

import json
import logging
import re
from datetime import UTC, datetime

from monitoring import context

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "ids",
    "request_id",
    "conversation_id",
    "task_id",
}


_EMAIL = re.compile(r"\b([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
# Card-like runs of 13-19 digits and phone-like runs of 7+ digits (spaces, dots, dashes allowed).
# ISO dates (2026-11-24) are left alone.
_DIGITS = re.compile(r"(?<![\w])(?!\d{4}-\d{2}-\d{2}\b)\+?\d(?:[ .\-]?\d){6,18}(?![\w])")


def mask_personal_data(text: str) -> str:
    """Emails become ``m***@example.com``; long digit runs (phones, cards) become ``[number]``."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _DIGITS.sub("[number]", text)


def install_record_factory() -> None:
    """Stamp the ids of the work in progress on every record when it is made, so handlers
    of any kind (pytest's too) see them. Ids the context does not have are left off, so a
    caller may still pass them in ``extra``."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "concierge_ids", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        for key, var in (
            ("request_id", context.request_id),
            ("conversation_id", context.conversation_id),
            ("task_id", context.task_id),
        ):
            value = var.get()
            if value:
                record.__dict__[key] = value
        return record

    factory.concierge_ids = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class ContextFilter(logging.Filter):
    """Stamps every record with the ids of the work in progress."""

    def filter(self, record: logging.LogRecord) -> bool:
        stamp = record.__dict__
        stamp["request_id"] = stamp.get("request_id") or context.request_id.get()
        stamp["conversation_id"] = stamp.get("conversation_id") or context.conversation_id.get()
        stamp["task_id"] = stamp.get("task_id") or context.task_id.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask_personal_data(record.getMessage()),
            "pid": record.process,  # which worker process wrote it, when several serve
        }
        for key in ("request_id", "conversation_id", "task_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, str | int | float | bool | type(None)) else repr(value)
        if record.exc_info:
            entry["exception"] = mask_personal_data(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


_ID_KEYS = (("request_id", "req"), ("conversation_id", "conv"), ("task_id", "task"))


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(ids)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        stamp = record.__dict__
        ids = [f"{short}={stamp[key]}" for key, short in _ID_KEYS if stamp.get(key)]
        stamp["ids"] = " ".join(ids) or "-"
        # Mask the message, not the whole line: the timestamp is not personal data.
        record.message = mask_personal_data(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        if record.exc_info:
            line += "\n" + mask_personal_data(self.formatException(record.exc_info))
        return line
