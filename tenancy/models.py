"""Tenancy: organizations (the tenants), their business hours and holidays, the staff who work
for them (profiles, roles, teams) and the append-only audit trail of what was done in them.

Every other app's rows point at an Organization; this app imports no other app."""

import secrets
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def widget_key_new() -> str:
    return secrets.token_urlsafe(18)


class BreachAction(models.TextChoices):
    RAISE_PRIORITY = "raise_priority", "Raise priority one step"
    REASSIGN = "reassign", "Reassign to another available agent"
    RAISE_AND_REASSIGN = "raise_and_reassign", "Raise priority and reassign"


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(unique=True)
    widget_key = models.CharField(max_length=64, unique=True, default=widget_key_new)
    transcript_retention_days = models.PositiveIntegerField(
        default=365, help_text="Messages of conversations ended longer ago than this are deleted."
    )
    stale_conversation_minutes = models.PositiveIntegerField(
        default=24 * 60, help_text="A chat with no message for this long is ended."
    )
    timezone = models.CharField(
        max_length=64, default="UTC", help_text="IANA time zone of the business hours, e.g. Europe/Berlin."
    )
    sla_breach_action = models.CharField(
        max_length=20,
        choices=BreachAction.choices,
        default=BreachAction.RAISE_PRIORITY,
        help_text="What the SLA check does when a ticket newly breaches.",
    )
    # The profile the assistant answers from ("how can I contact you?", "where are you?").
    contact_email = models.EmailField(
        blank=True, help_text="Shown to customers who ask how to reach you; blank uses the email channel's address."
    )
    contact_phone = models.CharField(max_length=40, blank=True, help_text="Shown to customers who ask for a phone.")
    address = models.TextField(blank=True, help_text="Shown to customers who ask where you are.")
    created_at = models.DateTimeField(auto_now_add=True)
    # One more each time the SLA policies, business hours or holidays change (signals, see
    # tickets.services.sla.sla_settings): a process keeps its copy of them until it moves.
    sla_version = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        db_table = "tickets_organization"

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A whole-row save of an organization read earlier leaves ``sla_version`` as the
        database has it: writing back the number read would undo a change counted since."""
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "sla_version"
            ]
        super().save(*args, **kwargs)

    @property
    def zone(self) -> ZoneInfo:
        """The organization's time zone; UTC when the stored name is empty or unknown."""
        try:
            return ZoneInfo(self.timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def clean(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError({"timezone": f"Unknown time zone {self.timezone!r}."}) from exc


class BusinessHours(models.Model):
    """One opening interval on one weekday, in the organization's time zone. An organization
    with no rows is open around the clock; SLA clocks only run while it is open."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="business_hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens = models.TimeField()
    closes = models.TimeField()

    class Meta:
        db_table = "tickets_businesshours"
        verbose_name_plural = "business hours"
        ordering = ["weekday", "opens"]
        constraints = [models.CheckConstraint(condition=Q(closes__gt=models.F("opens")), name="business_hours_order")]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def clean(self) -> None:
        if self.opens is not None and self.closes is not None and self.closes <= self.opens:
            raise ValidationError("Closing time must come after opening time.")


class Holiday(models.Model):
    """A day the organization is closed: SLA clocks do not run on it."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        db_table = "tickets_holiday"
        ordering = ["date"]
        constraints = [models.UniqueConstraint(fields=["organization", "date"], name="holiday_unique_per_org")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}".strip()


class StaffRole(models.TextChoices):
    AGENT = "agent", "Agent"
    SUPERVISOR = "supervisor", "Supervisor"
    ADMIN = "admin", "Admin"


class StaffProfile(models.Model):
    """Ties a Django user to one organization with a role."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="staff")
    role = models.CharField(max_length=20, choices=StaffRole.choices, default=StaffRole.AGENT)
    capacity = models.PositiveIntegerField(default=10, help_text="Open tickets this person can hold at once.")
    is_available = models.BooleanField(default=True)
    last_assigned_at = models.DateTimeField(null=True, blank=True, help_text="For round-robin routing.")
    language = models.CharField(
        max_length=10,
        blank=True,
        choices=settings.LANGUAGES,
        help_text="The staff pages' language; blank follows the browser.",
    )

    class Meta:
        db_table = "tickets_staffprofile"

    def __str__(self) -> str:
        return f"{self.user} ({self.get_role_display()}, {self.organization})"


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="support_teams")

    class Meta:
        db_table = "tickets_team"
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name_per_org")]

    def __str__(self) -> str:
        return self.name


class AuditEntry(models.Model):
    """One staff action or AI decision, in an append-only, hash-chained log per organization.

    Each entry's hash covers its content and the previous entry's hash, so an edited,
    deleted or inserted row breaks the chain (``manage.py audit_verify``). Entries hold ids
    and decisions, never customers' personal data, so erasing a customer leaves the chain whole."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="audit_entries")
    seq = models.PositiveBigIntegerField(help_text="Position in the organization's chain, from 1.")
    # A plain id, not a foreign key: deleting a user must not rewrite (or be blocked by) the trail.
    actor_user_id = models.PositiveIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=150, help_text="Who acted: a username, 'assistant' or 'system'.")
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        db_table = "tickets_auditentry"
        ordering = ["organization", "seq"]
        verbose_name_plural = "audit entries"
        constraints = [models.UniqueConstraint(fields=["organization", "seq"], name="audit_unique_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.actor_label}: {self.action}"
