"""Admin base class that keeps every staff member inside their own organization."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from tenancy.services import staff_organization


def _organization_id_of(obj: Any) -> int | None:
    from tenancy.models import Organization

    if isinstance(obj, Organization):
        return int(obj.pk)
    if getattr(obj, "organization_id", None):
        return int(obj.organization_id)
    profile = getattr(obj, "staff_profile", None)  # a staff user
    return int(profile.organization_id) if profile is not None else None


class AuditedAdminMixin:
    """Every add, change and delete made in admin is appended to the organization's audit trail
    (next to Django's own LogEntry), with the change message, never the field values."""

    def _audit(self, request: HttpRequest, obj: Any, action: str, detail: Any) -> None:
        from tenancy.audit import audit_record_on_commit

        organization_id = _organization_id_of(obj)
        if organization_id is None:
            staff = staff_organization(request.user)
            organization_id = staff.pk if staff is not None else None
        if organization_id is None:
            return
        audit_record_on_commit(
            organization_id=organization_id,
            action=f"admin.{action}",
            actor=request.user,
            object_type=obj._meta.label_lower,
            object_id=obj.pk,
            data={"change": str(detail)[:500]},
        )

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "add", message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        self._audit(request, obj, "change", message)
        return super().log_change(request, obj, message)  # type: ignore[misc]

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        for obj in queryset:
            self._audit(request, obj, "delete", str(obj))
        return super().log_deletions(request, queryset)  # type: ignore[misc]


class ReadOnlyAdminMixin:
    """Records nobody adds, edits or deletes in admin (timelines, the audit trail)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrganizationScopedAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Lists, forms and lookups show only rows of the signed-in user's organization.

    ``organization_path`` is the lookup from this model to its Organization. A superuser
    without a staff profile (the operator) sees every organization."""

    organization_path = "organization"

    def staff_org(self, request: HttpRequest) -> Any:
        return staff_organization(request.user)

    def _sees_everything(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser) and self.staff_org(request) is None

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if self._sees_everything(request):
            return queryset
        return queryset.filter(**{self.organization_path: self.staff_org(request)})

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        excluded = list(super().get_exclude(request, obj) or [])
        if not self._sees_everything(request) and self.organization_path == "organization":
            excluded.append("organization")
        return excluded

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change and self.organization_path == "organization" and not obj.organization_id:
            obj.organization = self.staff_org(request)
        super().save_model(request, obj, form, change)

    def _scope_related(self, request: HttpRequest, field: models.Field, kwargs: dict[str, Any]) -> None:
        if self._sees_everything(request):
            return
        organization = self.staff_org(request)
        related: Any = field.related_model
        names = {f.name for f in related._meta.get_fields()}
        queryset = kwargs.get("queryset", related._default_manager.all())
        if "organization" in names:
            kwargs["queryset"] = queryset.filter(organization=organization)
        elif "staff_profile" in names:
            kwargs["queryset"] = queryset.filter(staff_profile__organization=organization)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_related(request, db_field, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        self._scope_related(request, db_field, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)


def secret_field(help_text: str) -> forms.CharField:
    """A credential typed in admin: never shown again; blank on an edit keeps the stored one."""
    return forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        help_text=f"{help_text} Stored encrypted; leave blank to keep the current one.",
    )


class SecretsKeptForm(forms.ModelForm):
    secret_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for name in self.secret_fields:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned
