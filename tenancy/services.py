"""Writes and lookups of tenancy: staff accounts, roles (the Agent / Supervisor / Admin groups) and
profiles, which organization a signed-in user works for, and the organization a command names."""

from collections.abc import Iterable
from datetime import time
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from config.errors import DomainError
from tenancy.models import BreachAction, BusinessHours, Organization, StaffProfile, StaffRole
from tenancy.roles import ROLE_GROUP_NAMES
from tenancy.signals import organization_calendar_changed as calendar_changed


@transaction.atomic
def staff_member_create(
    *,
    organization: Organization,
    username: str,
    password: str,
    role: str = StaffRole.AGENT,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> Any:
    from django.contrib.auth import get_user_model

    if role not in StaffRole.values:
        raise DomainError(f"Unknown role {role!r}; expected one of {', '.join(StaffRole.values)}.")
    user_model = get_user_model()
    if user_model.objects.filter(username=username).exists():
        raise DomainError(f"A user named {username!r} already exists.")
    user = user_model.objects.create_user(
        username=username, password=password, email=email, first_name=first_name, last_name=last_name
    )
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    StaffProfile.objects.create(user=user, organization=organization, role=role)
    staff_role_set(user=user, role=role)
    return user


@transaction.atomic
def staff_role_set(*, user: Any, role: str) -> None:
    """Put the user in exactly the group of their role."""
    profile = user.staff_profile
    if profile.role != role:
        profile.role = role
        profile.save(update_fields=["role"])
    role_groups = Group.objects.filter(name__in=ROLE_GROUP_NAMES.values())
    user.groups.remove(*role_groups)
    group, _ = Group.objects.get_or_create(name=ROLE_GROUP_NAMES[StaffRole(role)])
    user.groups.add(group)


@transaction.atomic
def staff_profile_ensure(*, user: Any, organization: Organization, role: str = StaffRole.AGENT) -> StaffProfile:
    """Give a user a staff profile (once) and the group of its role."""
    profile, _ = StaffProfile.objects.get_or_create(user=user, defaults={"organization": organization, "role": role})
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    staff_role_set(user=user, role=profile.role)
    return profile


def staff_profile(user: Any) -> StaffProfile | None:
    """A signed-in user's staff profile with its organization, or None. One query per request,
    cached on the user object the request carries."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_profile"):
        user._staff_profile = StaffProfile.objects.select_related("organization").filter(user_id=user.pk).first()
    return user._staff_profile


def staff_organization(user: Any) -> Organization | None:
    """The organization a staff user works for, or None (anonymous, or no profile)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_organization"):  # the API's authentication fills it in its own query
        profile = staff_profile(user)
        user._staff_organization = profile.organization if profile else None
    return user._staff_organization


def staff_in_organization(user: Any, organization: Organization) -> bool:
    return StaffProfile.objects.filter(user=user, organization=organization).exists()


def organization_get(*, slug: str | None) -> Organization:
    """The organization with this slug, or the first one when no slug is given (one-company
    installs); DomainError with a clear reason otherwise. Every command's ``--org`` uses it."""
    if slug:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise DomainError(f"No organization with slug {slug!r}.")
        return organization
    organization = Organization.objects.order_by("pk").first()
    if organization is None:
        raise DomainError("No organization exists yet; run bootstrap_demo or create one in admin.")
    return organization


def organizations_for_option(*, slug: str | None) -> QuerySet[Organization]:
    """``--org SLUG`` for commands that default to every organization."""
    if slug:
        return Organization.objects.filter(pk=organization_get(slug=slug).pk)
    return Organization.objects.order_by("slug")


def organization_calendar_changed(*, organization_id: int) -> None:
    """Announce that an organization's time zone, business hours or holidays changed. The desk
    (tickets) listens and moves the deadlines of open tickets; tenancy itself knows no tickets."""
    calendar_changed.send(sender=Organization, organization_id=organization_id)


@transaction.atomic
def organization_create(
    *,
    name: str,
    slug: str,
    timezone: str = "UTC",
    sla_breach_action: str = BreachAction.RAISE_PRIORITY,
    business_hours: Iterable[tuple[int, time, time]] = (),
) -> Organization:
    """A new tenant, with its opening hours as (weekday 0-6, opens, closes); none means open
    around the clock. The slug must be free and the time zone known."""
    name, slug = (name or "").strip(), (slug or "").strip()
    if not name or not slug:
        raise DomainError("An organization needs a name and a slug.")
    if Organization.objects.filter(slug=slug).exists():
        raise DomainError(f"An organization with slug {slug!r} already exists.")
    if sla_breach_action not in BreachAction.values:
        raise DomainError(f"Unknown breach action {sla_breach_action!r}.")
    organization = Organization(name=name, slug=slug, timezone=timezone, sla_breach_action=sla_breach_action)
    try:
        organization.full_clean()
    except ValidationError as exc:
        raise DomainError("; ".join(exc.messages)) from exc
    organization.save()
    for weekday, opens, closes in business_hours:
        if not 0 <= weekday <= 6 or closes <= opens:
            raise DomainError(f"Bad opening interval {weekday} {opens}-{closes}.")
        BusinessHours.objects.create(organization=organization, weekday=weekday, opens=opens, closes=closes)
    return organization


def staff_password_set(*, user: Any, password: str, superuser: bool | None = None) -> None:
    """Set a staff member's password (and, for the operator, superuser rights)."""
    user.set_password(password)
    fields = ["password"]
    if superuser is not None and user.is_superuser != superuser:
        user.is_superuser = superuser
        fields.append("is_superuser")
    user.save(update_fields=fields)


def staff_language_set(*, user: Any, language: str) -> None:
    """A staff member's own choice of language for the staff pages ("" follows the browser)."""
    offered = [code for code, _ in settings.LANGUAGES]
    if language and language not in offered:
        raise DomainError(f"Unknown language {language!r}; choose {' or '.join(offered)}, or leave it blank.")
    updated = StaffProfile.objects.filter(user_id=user.pk).update(language=language)
    if not updated:
        raise DomainError("Only staff of an organization choose a language here.")
