"""The audit trail, read-only."""

from django.contrib import admin

from tenancy.admin_scoping import OrganizationScopedAdmin, ReadOnlyAdminMixin
from tenancy.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, OrganizationScopedAdmin):
    """The hash-chained audit trail: read-only for everyone. `manage.py audit_verify` checks it."""

    list_display = ["seq", "created_at", "actor_label", "action", "object_type", "object_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "action", "object_id"]
    readonly_fields = ["organization", "seq", "created_at", "actor_label", "actor_user_id", "action",
                       "object_type", "object_id", "data", "prev_hash", "hash"]  # fmt: skip
    ordering = ["-seq"]
