"""``--org SLUG`` for every app's management commands: one lookup (tenancy.services), one
one-line reason when it fails."""

from django.core.management.base import CommandError
from django.db.models import QuerySet

from config.errors import DomainError
from tenancy.models import Organization
from tenancy.services import organization_get, organizations_for_option


def organization_option(slug: str | None) -> Organization:
    """The named organization, or the first one when no slug is given."""
    try:
        return organization_get(slug=slug)
    except DomainError as exc:
        raise CommandError(str(exc)) from exc


def organizations_option(slug: str | None) -> QuerySet[Organization]:
    """The named organization, or every organization when no slug is given."""
    try:
        return organizations_for_option(slug=slug)
    except DomainError as exc:
        raise CommandError(str(exc)) from exc
