"""The audit trail: append and verify. Every staff action (ticket changes, admin edits,
exports and erasures) and every AI decision (intent, model version, sources, escalation
reasons) is appended here by the services that perform them."""

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy.models import AuditEntry, Organization

GENESIS = "0" * 64


def _digest(*, organization_id: int, seq: int, actor_label: str, action: str, object_type: str, object_id: str,
            data: dict[str, Any], created_at: datetime, prev_hash: str) -> str:  # fmt: skip
    head = _head(organization_id=organization_id, actor_label=actor_label, action=action, object_type=object_type,
                 object_id=object_id, data=data, created_at=created_at)  # fmt: skip
    return _chained(head, prev_hash=prev_hash, seq=seq)


def _head(*, organization_id: int, actor_label: str, action: str, object_type: str, object_id: str,
          data: dict[str, Any], created_at: datetime) -> str:  # fmt: skip
    """An entry's canonical JSON (sorted keys, ASCII) up to its last two keys, "prev" and "seq",
    which sort after every other: what concierge_audit_append completes and hashes in the
    database (tenancy/migrations/0005_audit_append_function.py)."""
    body = json.dumps(
        {
            "organization": organization_id,
            "actor": actor_label,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "data": data,
            "created_at": created_at.isoformat(timespec="microseconds"),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return body[:-1]


def _chained(head: str, *, prev_hash: str, seq: int) -> str:
    return hashlib.sha256(f'{head},"prev":{json.dumps(prev_hash)},"seq":{int(seq)}}}'.encode()).hexdigest()


def _label(actor: Any) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return str(actor.get_username())


def audit_record(
    *,
    organization_id: int,
    action: str,
    actor: Any = None,
    object_type: str = "",
    object_id: Any = "",
    data: dict[str, Any] | None = None,
    savepoint: bool = True,
) -> AuditEntry:
    """Append one entry to the organization's chain. The organization row is locked, so
    concurrent writers take turns and the chain never forks. ``savepoint=False``: the caller's
    transaction holds the entry, with no savepoint of its own (an error ends that transaction)."""
    record = _record(action=action, actor=actor, object_type=object_type, object_id=object_id, data=data)
    with transaction.atomic(savepoint=savepoint):
        return _append(organization_id, [record])[0]


def _record(
    *, action: str, actor: Any = None, object_type: str = "", object_id: Any = "", data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"action": action, "actor": actor, "object_type": object_type, "object_id": object_id, "data": data}


def _append(organization_id: int, records: list[dict[str, Any]]) -> list[AuditEntry]:
    """Chain ``records`` (audit_record's arguments) after the organization's last entry, in
    the current transaction. The lock is FOR NO KEY UPDATE: appenders take turns, while rows
    that only refer to the organization (a message, a ticket) are still written beside them."""
    entries = []
    for record in records:
        actor = record["actor"]
        # JSON round trip: what is hashed is exactly what the database gives back later.
        entry = AuditEntry(
            organization_id=organization_id,
            actor_user_id=getattr(actor, "pk", None) if not isinstance(actor, str) else None,
            actor_label=_label(actor),
            action=record["action"],
            object_type=record["object_type"],
            object_id=str(record["object_id"]),
            data=json.loads(json.dumps(record["data"] or {}, default=str)),
            created_at=timezone.now(),
        )
        entries.append(entry)
    heads = [
        _head(organization_id=organization_id, actor_label=e.actor_label, action=e.action, object_type=e.object_type,
              object_id=e.object_id, data=e.data, created_at=e.created_at)
        for e in entries
    ]  # fmt: skip
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        return _append_in_database(connection, organization_id, entries, heads)
    Organization.objects.select_for_update(no_key=True).only("pk").get(pk=organization_id)
    last = AuditEntry.objects.filter(organization_id=organization_id).order_by("-seq").values("seq", "hash").first()
    seq = last["seq"] if last else 0
    prev_hash = last["hash"] if last else GENESIS
    for entry, head in zip(entries, heads, strict=True):
        seq += 1
        entry.seq, entry.prev_hash = seq, prev_hash
        entry.hash = prev_hash = _chained(head, prev_hash=prev_hash, seq=seq)
    return AuditEntry.objects.bulk_create(entries)


def _append_in_database(
    connection: Any, organization_id: int, entries: list[AuditEntry], heads: list[str]
) -> list[AuditEntry]:
    """PostgreSQL: lock, read the last entry, hash and insert in one round trip
    (concierge_audit_append). The lock is held until the transaction commits, so every round
    trip after taking it (three before: lock, read, insert) is time the organization's other
    appenders, every chat turn and audited change, wait (bench/README.md, issue 14)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT entry_id, entry_seq, entry_prev, entry_hash FROM concierge_audit_append("
            "%s::bigint, %s::text[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], "
            "%s::timestamptz[])",
            [organization_id, *(_array_literal(values) for values in (
                heads, [e.actor_user_id for e in entries], [e.actor_label for e in entries],
                [e.action for e in entries], [e.object_type for e in entries], [e.object_id for e in entries],
                [json.dumps(e.data) for e in entries], [e.created_at.isoformat() for e in entries],
            ))],
        )  # fmt: skip
        rows = cursor.fetchall()
    for entry, (pk, seq, prev_hash, entry_hash) in zip(entries, rows, strict=True):
        entry.pk, entry.seq, entry.prev_hash, entry.hash = pk, seq, prev_hash, entry_hash
        entry._state.adding, entry._state.db = False, connection.alias
    return entries


def _array_literal(values: list[Any] | list[str]) -> str:
    """A PostgreSQL array's text form (``{"a","b \\"c\\"",NULL}``), cast by the statement to
    its array type. psycopg's list dumper escapes each element with a regular expression that
    calls back into Python at every quote, and an entry's data is JSON, all quotes: in a cProfile
    of 123 chat turns, dumping each turn's eight arrays took 0.16 s (issue 14)."""
    items = (
        "NULL" if value is None else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values
    )
    return "{" + ",".join(items) + "}"


# The ``audit_in_transaction`` block holding this context's entries (None: no block is open).
_holding: ContextVar[object | None] = ContextVar("audit_holding", default=None)


def audit_record_on_commit(**kwargs: Any) -> None:
    """Append after the surrounding transaction commits (keeps the chain lock out of hot paths);
    inside ``audit_in_transaction``, at the end of that block instead."""
    block = _holding.get()
    if block is not None:
        organization_id = kwargs.pop("organization_id")
        transaction.on_commit(_Held(block, organization_id, _record(**kwargs)))
        return
    transaction.on_commit(lambda: audit_record(**kwargs), robust=True)


class _Held:
    """An entry waiting for the end of its ``audit_in_transaction`` block, as a commit hook that
    does nothing: Django drops the hooks of a savepoint rolled back, and the entry goes with it."""

    def __init__(self, block: object, organization_id: int, record: dict[str, Any]) -> None:
        self.block = block
        self.organization_id = organization_id
        self.record = record

    def __call__(self) -> None:
        pass


@contextmanager
def audit_in_transaction() -> Iterator[None]:
    """The block is a short transaction that records its own audit entries: those asked for
    inside it (``audit_record_on_commit``) are appended when it ends without an error, still
    in its transaction, with the chain lock taken last. One commit (and one disk flush) for the
    change and its entries instead of two, and the entries commit or roll back with the change.

    Only the outermost transaction holds entries: a block inside another one (a ticket edit
    within a longer transaction) leaves them to be appended after that one commits, as before,
    so the organization's chain never waits for a long transaction; a block inside a holding
    block leaves them to it."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("audit_in_transaction needs a transaction around it.")
    # A test's own transaction (Django's TestCase) does not count as the caller's.
    depth = sum(1 for block in connection.atomic_blocks if not getattr(block, "_from_testcase", False))
    if _holding.get() is not None or depth != 1:
        yield
        return
    block = object()
    token = _holding.set(block)
    try:
        yield
    finally:
        _holding.reset(token)
    held = [hook for _, hook, _ in connection.run_on_commit if isinstance(hook, _Held) and hook.block is block]
    for organization_id in dict.fromkeys(hook.organization_id for hook in held):
        _append(organization_id, [hook.record for hook in held if hook.organization_id == organization_id])


@dataclass(frozen=True)
class ChainReport:
    organization: str
    entries: int
    problems: list[str]


def audit_verify(*, organization: Organization) -> ChainReport:
    """Recompute the chain: every hash, every link, and no missing positions."""
    problems: list[str] = []
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for entry in AuditEntry.objects.filter(organization=organization).order_by("seq").iterator(chunk_size=2000):
        count += 1
        if entry.seq != expected_seq:
            problems.append(f"entry {entry.pk}: position {entry.seq}, expected {expected_seq} (entries missing)")
        if entry.prev_hash != expected_prev:
            problems.append(f"entry {entry.pk} (#{entry.seq}): does not link to the entry before it")
        recomputed = _digest(organization_id=organization.pk, seq=entry.seq, actor_label=entry.actor_label,
                             action=entry.action, object_type=entry.object_type, object_id=entry.object_id,
                             data=entry.data, created_at=entry.created_at, prev_hash=entry.prev_hash)  # fmt: skip
        if recomputed != entry.hash:
            problems.append(f"entry {entry.pk} (#{entry.seq}): content does not match its hash (edited)")
        expected_prev, expected_seq = entry.hash, entry.seq + 1
    return ChainReport(organization=organization.slug, entries=count, problems=problems)
