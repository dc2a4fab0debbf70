from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from monitoring.models import Heartbeat, RequestProfile, TaskFailure


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "seen_at"]


class OperatorOnlyAdmin(admin.ModelAdmin):
    """Platform-wide records: only superusers see them, and nobody edits them."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return bool(request.user.is_superuser)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(TaskFailure)
class TaskFailureAdmin(OperatorOnlyAdmin):
    """Background jobs that gave up. Platform-wide, so only superusers see them."""

    list_display = ["failed_at", "task_name", "exception", "task_id"]
    list_filter = ["task_name"]
    search_fields = ["task_name", "task_id", "exception"]
    readonly_fields = ["task_name", "task_id", "args", "exception", "traceback", "failed_at"]


@admin.register(RequestProfile)
class RequestProfileAdmin(OperatorOnlyAdmin):
    """Profiled requests: the call tree pyinstrument recorded, the slowest functions, SQL."""

    list_display = ["created_at", "method", "path", "status", "duration_ms", "sql_count", "sql_ms", "reason"]
    list_filter = ["reason", "method", "status"]
    search_fields = ["path", "view", "request_id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = (
        "method",
        "path",
        "view",
        "status",
        "duration_ms",
        "sql_count",
        "sql_ms",
        "reason",
        "request_id",
        "created_at",
        "slowest_table",
        "call_tree_view",
    )
    fields = readonly_fields

    @admin.display(description="slowest functions (self time)")
    def slowest_table(self, obj: RequestProfile) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            ((row["self_ms"], row["total_ms"], row["function"]) for row in obj.slowest),
        )
        return format_html("<table><tr><th>self ms</th><th>total ms</th><th>function</th></tr>{}</table>", rows)

    @admin.display(description="call tree")
    def call_tree_view(self, obj: RequestProfile) -> str:
        return format_html('<pre style="font-size:12px;line-height:1.3;overflow:auto">{}</pre>', obj.call_tree)
