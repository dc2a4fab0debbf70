from django.contrib import admin
from django.http import HttpRequest

from monitoring.models import Heartbeat, TaskFailure


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "seen_at"]


@admin.register(TaskFailure)
class TaskFailureAdmin(admin.ModelAdmin):
    """Background jobs that gave up. Platform-wide, so only superusers see them."""

    list_display = ["failed_at", "task_name", "exception", "task_id"]
    list_filter = ["task_name"]
    search_fields = ["task_name", "task_id", "exception"]
    readonly_fields = ["task_name", "task_id", "args", "exception", "traceback", "failed_at"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
