"""The audit trail: append and verify. Every staff action (ticket changes, admin edits,
exports and erasures) and every AI decision (intent, model version, sources, escalation
reasons) is appended here by the services that perform them."""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from tenancy.models import AuditEntry, Organization

GENESIS = "0" * 64


def _digest(*, organization_id: int, seq: int, actor_label: str, action: str, object_type: str, object_id: str,
            data: dict[str, Any], created_at: datetime, prev_hash: str) -> str:  # fmt: skip
    body = json.dumps(
        {
            "organization": organization_id,
            "seq": seq,
            "actor": actor_label,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "data": data,
            "created_at": created_at.isoformat(timespec="microseconds"),
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


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
    with transaction.atomic(savepoint=savepoint):
        Organization.objects.select_for_update().only("pk").get(pk=organization_id)
        last = AuditEntry.objects.filter(organization_id=organization_id).order_by("-seq").values("seq", "hash").first()
        seq = (last["seq"] if last else 0) + 1
        prev_hash = last["hash"] if last else GENESIS
        # JSON round trip: what is hashed is exactly what the database gives back later.
        payload = json.loads(json.dumps(data or {}, default=str))
        created_at = timezone.now()
        label = _label(actor)
        entry_hash = _digest(organization_id=organization_id, seq=seq, actor_label=label, action=action,
                             object_type=object_type, object_id=str(object_id), data=payload, created_at=created_at,
                             prev_hash=prev_hash)  # fmt: skip
        return AuditEntry.objects.create(
            organization_id=organization_id,
            seq=seq,
            actor_user_id=getattr(actor, "pk", None) if not isinstance(actor, str) else None,
            actor_label=label,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            data=payload,
            created_at=created_at,
            prev_hash=prev_hash,
            hash=entry_hash,
        )


def audit_record_on_commit(**kwargs: Any) -> None:
    """Append after the surrounding transaction commits (keeps the chain lock out of hot paths)."""
    transaction.on_commit(lambda: audit_record(**kwargs), robust=True)


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
