"""Reports in admin: the list with a volume trend, and each report with its charts.

Charts are plain HTML bars drawn on the server: no chart library, nothing fetched."""

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from tenancy.admin_scoping import OrganizationScopedAdmin
from tickets.models import Report
from tickets.reports import report_store


def chart_bars(values: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a horizontal bar chart: label, value, and width in percent of the largest."""
    numbers = {label: value or 0 for label, value in values.items()}
    top = max(numbers.values(), default=0) or 1
    return [{"label": label, "value": value, "width": round(100 * value / top, 1)} for label, value in numbers.items()]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _chart(title: str, values: dict[str, Any], *, horizontal: bool = True) -> dict[str, Any]:
    """One chart: Chart.js draws it from ``labels`` and ``datasets``; ``bars`` is the same data as
    rows for the table under it (read by screen readers and without scripts)."""
    return {
        "title": title,
        "horizontal": horizontal,
        "labels": list(values),
        "datasets": [{"label": title, "data": [v or 0 for v in values.values()]}],
        "bars": chart_bars(values),
    }


def report_charts(data: dict[str, Any]) -> list[dict[str, Any]]:
    resolution = data.get("resolution", {})
    conversations = data.get("conversations", {})
    distributions = data.get("distributions", {})
    csat = data.get("csat", {})
    by_hour = conversations.get("by_hour", {})
    hourly = {
        "title": "Conversations by hour of day and channel",
        "horizontal": False,
        "stacked": True,
        "labels": [f"{hour:02d}" for hour in range(24)],
        "datasets": [{"label": channel, "data": counts} for channel, counts in by_hour.items()],
        "bars": chart_bars({f"{hour:02d}:00": sum(c[hour] for c in by_hour.values()) for hour in range(24)}),
    }
    suggestions = data.get("suggestions", {})
    return [
        _chart("Conversations by channel", conversations.get("by_channel", {})),
        hourly,
        _chart("First response time (tickets)", distributions.get("first_response", {}), horizontal=False),
        _chart("Resolution time (tickets)", distributions.get("resolution", {}), horizontal=False),
        _chart(
            "CSAT: bot-resolved against human-resolved (mean of 1-5)",
            {
                f"bot (n={csat.get('bot', {}).get('count', 0)})": csat.get("bot", {}).get("mean"),
                f"human (n={csat.get('human', {}).get('count', 0)})": csat.get("human", {}).get("mean"),
            },
        ),
        _chart(
            "Suggested replies: what agents did",
            {key: suggestions.get(key, 0) for key in ("sent", "edited", "discarded")},
        ),
        _chart("Bot answers by intent", data.get("intents", {})),
        _chart(
            "How conversations ended",
            {
                "bot resolved, confirmed (72 h passed)": resolution.get("bot_resolved_confirmed", 0),
                "bot resolved, assumed (window open)": resolution.get("bot_resolved_assumed", 0),
                "customer came back": resolution.get("bot_reopened", 0),
                "bot chat still open": resolution.get("bot_ongoing", 0),
                "resolved by a person": resolution.get("human_resolved", 0),
                "with a person, open": resolution.get("human_open", 0),
            },
        ),
        _chart("Customer sentiment (messages)", data.get("sentiment", {})),
        _chart("Tickets by channel", data.get("tickets", {}).get("by_channel", {})),
    ]


def report_figures(data: dict[str, Any]) -> list[tuple[str, str]]:
    resolution, tickets, csat = data.get("resolution", {}), data.get("tickets", {}), data.get("csat", {})
    first, done = data.get("first_response_minutes", {}), data.get("resolution_minutes", {})
    suggestions = data.get("suggestions", {})
    return [
        ("Conversations", str(data.get("conversations", {}).get("total", 0))),
        ("Bot involvement", _percent(data.get("bot_involvement_rate"))),
        ("Resolution rate", _percent(resolution.get("resolution_rate"))),
        ("Automation rate (confirmed + assumed)", _percent(resolution.get("automation_rate"))),
        ("Automation rate, confirmed only", _percent(resolution.get("automation_rate_confirmed"))),
        ("Tickets created / resolved", f"{tickets.get('created', 0)} / {tickets.get('resolved', 0)}"),
        ("SLA breaches", str(tickets.get("sla_breaches", 0))),
        ("First response, median / p90 (min)", f"{first.get('median')} / {first.get('p90')}"),
        ("Resolution time, median / p90 (min)", f"{done.get('median')} / {done.get('p90')}"),
        ("CSAT, bot-resolved", f"{csat.get('bot', {}).get('mean')} (n={csat.get('bot', {}).get('count', 0)})"),
        ("CSAT, human-resolved", f"{csat.get('human', {}).get('mean')} (n={csat.get('human', {}).get('count', 0)})"),
        (
            "Suggested replies sent as drafted",
            f"{_percent(suggestions.get('acceptance_rate'))} (n={suggestions.get('decided', 0)}; "
            f"used at all {_percent(suggestions.get('use_rate'))})",
        ),
    ]


@admin.register(Report)
class ReportAdmin(OrganizationScopedAdmin):
    list_display = ["start", "period", "organization", "conversations", "automation", "breaches", "built_at"]
    list_filter = ["period"]
    date_hierarchy = "start"
    readonly_fields = ["organization", "period", "start", "built_at"]
    exclude = ["data"]
    actions = ["rebuild"]
    change_form_template = "admin/tickets/report/change_form.html"
    change_list_template = "admin/tickets/report/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="conversations")
    def conversations(self, obj: Report) -> int:
        return int(obj.data.get("conversations", {}).get("total", 0))

    @admin.display(description="automation")
    def automation(self, obj: Report) -> str:
        return _percent(obj.data.get("resolution", {}).get("automation_rate"))

    @admin.display(description="SLA breaches")
    def breaches(self, obj: Report) -> int:
        return int(obj.data.get("tickets", {}).get("sla_breaches", 0))

    @admin.action(description="Rebuild the selected reports now")
    def rebuild(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        for report in queryset.select_related("organization"):
            report_store(organization=report.organization, period=report.period, start=report.start)
        self.message_user(request, f"Rebuilt {queryset.count()} report(s).", messages.SUCCESS)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        report = self.get_queryset(request).filter(pk=object_id).first()
        extra = dict(extra_context or {})
        if report is not None:
            extra.update(
                charts=report_charts(report.data),
                chart_specs=[{k: v for k, v in chart.items() if k != "bars"} for chart in report_charts(report.data)],
                figures=report_figures(report.data),
                agents=report.data.get("agents", []),
            )
        return super().change_view(request, object_id, form_url, extra)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        recent = list(self.get_queryset(request).filter(period="day").order_by("-start")[:30])
        trend = chart_bars(
            {
                f"{r.start:%m-%d} {r.organization.slug if self._sees_everything(request) else ''}".strip(): int(
                    r.data.get("conversations", {}).get("total", 0)
                )
                for r in reversed(recent)
            }
        )
        return super().changelist_view(request, {**(extra_context or {}), "trend": trend})

    def get_queryset(self, request: HttpRequest) -> QuerySet[Report]:
        return super().get_queryset(request).select_related("organization")
