"""Staff members: accounts, roles (the Agent / Supervisor / Admin groups) and profiles, and which
organization a signed-in user works for."""

from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction

from tickets.errors import DomainError
from tickets.models import (
    Organization,
    StaffProfile,
    StaffRole,
)
from tickets.roles import ROLE_GROUP_NAMES


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


def staff_organization(user: Any) -> Organization | None:
    """The organization a staff user works for, or None (anonymous, or no profile)."""
    if not getattr(user, "is_authenticated", False):
        return None
    if not hasattr(user, "_staff_organization"):
        # One query per request, cached on the user object the request carries.
        profile = StaffProfile.objects.select_related("organization").filter(user_id=user.pk).first()
        user._staff_organization = profile.organization if profile else None
    return user._staff_organization


def staff_in_organization(user: Any, organization: Organization) -> bool:
    return StaffProfile.objects.filter(user=user, organization=organization).exists()
