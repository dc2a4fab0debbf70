"""Canned responses (macros): their rules. Applying one to a ticket is tickets.ticket_macro_apply."""

from typing import Any

from django.db import transaction

from config.errors import DomainError
from tenancy.models import Organization
from tickets.models import Macro

MACRO_FIELDS = ("name", "reply", "set_status", "set_priority", "add_tags")


def _macro_validate(macro: Macro) -> None:
    if not macro.name.strip():
        raise DomainError("A macro needs a name.")
    clash = Macro.objects.filter(organization_id=macro.organization_id, name=macro.name).exclude(pk=macro.pk)
    if clash.exists():
        raise DomainError(f"A macro named {macro.name!r} already exists.")
    if not (macro.reply.strip() or macro.set_status or macro.set_priority or macro.add_tags.strip()):
        raise DomainError("A macro must reply, or change status, priority or tags.")


@transaction.atomic
def macro_create(*, organization: Organization, **fields: Any) -> Macro:
    macro = Macro(organization=organization, **{k: v for k, v in fields.items() if k in MACRO_FIELDS})
    _macro_validate(macro)
    macro.save()
    return macro


@transaction.atomic
def macro_update(*, macro: Macro, **fields: Any) -> Macro:
    for name, value in fields.items():
        if name in MACRO_FIELDS:
            setattr(macro, name, value)
    _macro_validate(macro)
    macro.save()
    return macro


@transaction.atomic
def macro_delete(*, macro: Macro) -> None:
    macro.delete()
