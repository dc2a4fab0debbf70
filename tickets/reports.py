"""Daily and weekly figures per organization, stored as Report rows and printed by
``manage.py report``.

Periods are calendar days (or ISO weeks from Monday) in the organization's time zone.
Conversations belong to the period they started in; tickets to the period they were created
in (first response) or resolved in (resolution time, CSAT, agent performance).

Resolution, honestly: a chat the assistant handled alone counts as resolved when it ended
with no ticket and the customer did not come back within 72 hours (a new conversation, or
writing again in the same one). When those 72 hours have passed it is *confirmed*; before
that it is *assumed*, and both numbers are shown. Rebuilding a report later turns assumed
into confirmed or reopened.
"""

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from tenancy.models import Organization
from tickets.models import (
    Channel,
    Conversation,
    Message,
    MessageRole,
    Report,
    ReportPeriod,
    SentimentLabel,
    SentimentRecord,
    Ticket,
    TicketEvent,
    TicketStatus,
)

REOPEN_WINDOW = timedelta(hours=72)
DONE = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def period_bounds(*, organization: Organization, period: str, start: date) -> tuple[datetime, datetime]:
    """The period's [start, end) as aware datetimes in the organization's time zone."""
    if period not in ReportPeriod.values:
        raise ValueError(f"Unknown period {period!r}; use day or week.")
    if period == ReportPeriod.WEEK:
        start = start - timedelta(days=start.weekday())
    zone = organization.zone
    days = 7 if period == ReportPeriod.WEEK else 1
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(start + timedelta(days=days), time.min, tzinfo=zone),
    )


def last_complete_start(*, organization: Organization, period: str, now: datetime | None = None) -> date:
    """First day of the newest period that has fully ended in the organization's time zone."""
    now = now or timezone.now()
    today = now.astimezone(organization.zone).date()
    if period == ReportPeriod.WEEK:
        return today - timedelta(days=today.weekday() + 7)
    return today - timedelta(days=1)


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60


def _spread(values: list[float]) -> dict[str, float | int | None]:
    """Count, mean, median and 90th percentile (inclusive method) of a list of minutes."""
    if not values:
        return {"count": 0, "mean": None, "median": None, "p90": None}
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {
        "count": len(values),
        "mean": round(statistics.fmean(values), 2),
        "median": round(statistics.median(values), 2),
        "p90": round(p90, 2),
    }


# Upper edges (minutes) of the response-time distributions' buckets; the last is open.
BUCKET_EDGES = (5, 15, 30, 60, 240, 1440)


BUCKET_LABELS = ("≤ 5 min", "5-15 min", "15-30 min", "30-60 min", "1-4 h", "4-24 h", "> 1 d")


def _buckets(minutes: list[float]) -> dict[str, int]:
    """How many times fell in each bucket, labelled by its range."""
    counts = dict.fromkeys(BUCKET_LABELS, 0)
    for value in minutes:
        index = next((i for i, edge in enumerate(BUCKET_EDGES) if value <= edge), len(BUCKET_EDGES))
        counts[BUCKET_LABELS[index]] += 1
    return counts


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _csat(scores: list[int]) -> dict[str, float | int | None]:
    return {"count": len(scores), "mean": round(statistics.fmean(scores), 2) if scores else None}


def report_build(
    *, organization: Organization, period: str, start: date, now: datetime | None = None
) -> dict[str, Any]:
    """Compute one period's figures. Pure read: nothing is stored."""
    now = now or timezone.now()
    begin, end = period_bounds(organization=organization, period=period, start=start)
    org = organization

    conversations = list(
        Conversation.objects.filter(organization=org, started_at__gte=begin, started_at__lt=end).annotate(
            has_bot=Exists(Message.objects.filter(conversation=OuterRef("pk"), role=MessageRole.BOT)),
            tickets_total=Count("tickets", distinct=True),
            tickets_done=Count("tickets", filter=Q(tickets__status__in=DONE), distinct=True),
        )
    )
    # Who came back after an ended chat: the start times of each customer's later conversations.
    later_starts: dict[int, list[datetime]] = defaultdict(list)
    ended_customers = {c.customer_id for c in conversations if c.status == Conversation.Status.ENDED}
    if ended_customers:
        for customer_id, started in Conversation.objects.filter(
            organization=org, customer_id__in=ended_customers, started_at__gte=begin
        ).values_list("customer_id", "started_at"):
            later_starts[customer_id].append(started)

    outcome: Counter[str] = Counter()
    bot_csat: list[int] = []
    by_channel: Counter[str] = Counter()
    by_hour: dict[str, list[int]] = defaultdict(lambda: [0] * 24)
    zone = org.zone
    for conversation in conversations:
        by_channel[conversation.channel] += 1
        by_hour[conversation.channel][conversation.started_at.astimezone(zone).hour] += 1
        if conversation.tickets_total:
            outcome["escalated"] += 1
            outcome["human_resolved" if conversation.tickets_done == conversation.tickets_total else "human_open"] += 1
            continue
        if conversation.status != Conversation.Status.ENDED or conversation.ended_at is None:
            outcome["bot_ongoing"] += 1
            continue
        window_end = conversation.ended_at + REOPEN_WINDOW
        # Writing again in the same chat (reopened_at) or starting a new one both count.
        came_back = conversation.reopened_at is not None or any(
            conversation.ended_at < started <= window_end for started in later_starts[conversation.customer_id]
        )
        if came_back:
            outcome["bot_reopened"] += 1
        elif now >= window_end:
            outcome["bot_resolved_confirmed"] += 1
        else:
            outcome["bot_resolved_assumed"] += 1
        if not came_back and conversation.csat_score is not None:
            bot_csat.append(conversation.csat_score)

    total = len(conversations)
    with_bot = sum(1 for c in conversations if c.has_bot)
    bot_resolved = outcome["bot_resolved_confirmed"] + outcome["bot_resolved_assumed"]

    intents = Counter(
        (metadata or {}).get("intent") or "unknown"
        for metadata in Message.objects.filter(
            conversation__organization=org, role=MessageRole.BOT, created_at__gte=begin, created_at__lt=end
        ).values_list("metadata", flat=True)
    )
    sentiment = Counter(
        SentimentRecord.objects.filter(
            message__conversation__organization=org,
            message__role=MessageRole.CUSTOMER,
            message__created_at__gte=begin,
            message__created_at__lt=end,
        ).values_list("label", flat=True)
    )

    created: list[dict[str, Any]] = [
        dict(row)
        for row in Ticket.objects.filter(organization=org, created_at__gte=begin, created_at__lt=end).values(
            "channel", "created_at", "first_responded_at", "assignee_id"
        )
    ]
    resolved = list(
        Ticket.objects.filter(organization=org, resolved_at__gte=begin, resolved_at__lt=end)
        .select_related("assignee")
        .only("created_at", "resolved_at", "csat_score", "assignee__username")
    )
    breaches = TicketEvent.objects.filter(
        ticket__organization=org, kind=TicketEvent.Kind.SLA, after="breached", created_at__gte=begin, created_at__lt=end
    ).count()

    first_response = [
        _minutes(t["first_responded_at"] - t["created_at"]) for t in created if t["first_responded_at"] is not None
    ]
    resolution = [_minutes(t.resolved_at - t.created_at) for t in resolved if t.resolved_at]

    return {
        "organization": org.slug,
        "period": period,
        "start": begin.date().isoformat(),
        "end": end.date().isoformat(),
        "timezone": org.timezone,
        "built_at": now.isoformat(timespec="seconds"),
        "conversations": {
            "total": total,
            "by_channel": {channel: by_channel[channel] for channel in Channel.values if by_channel[channel]},
            "with_bot": with_bot,
            "escalated": outcome["escalated"],
            "by_hour": {channel: by_hour[channel] for channel in Channel.values if channel in by_hour},
        },
        "bot_involvement_rate": _rate(with_bot, total),
        "resolution": {
            "bot_resolved_confirmed": outcome["bot_resolved_confirmed"],
            "bot_resolved_assumed": outcome["bot_resolved_assumed"],
            "bot_reopened": outcome["bot_reopened"],
            "bot_ongoing": outcome["bot_ongoing"],
            "human_resolved": outcome["human_resolved"],
            "human_open": outcome["human_open"],
            "resolution_rate": _rate(bot_resolved + outcome["human_resolved"], total),
            "automation_rate": _rate(bot_resolved, total),
            "automation_rate_confirmed": _rate(outcome["bot_resolved_confirmed"], total),
        },
        "intents": dict(intents.most_common()),
        "sentiment": {label: sentiment[label] for label in SentimentLabel.values},
        "tickets": {
            "created": len(created),
            "by_channel": dict(Counter(t["channel"] for t in created).most_common()),
            "resolved": len(resolved),
            "sla_breaches": breaches,
        },
        "first_response_minutes": _spread(first_response),
        "resolution_minutes": _spread(resolution),
        "distributions": {"first_response": _buckets(first_response), "resolution": _buckets(resolution)},
        "csat": {"bot": _csat(bot_csat), "human": _csat([t.csat_score for t in resolved if t.csat_score])},
        "agents": _agent_rows(org, begin, end, created, resolved),
        "suggestions": _suggestions(org, begin, end),
    }


def _suggestions(org: Organization, begin: datetime, end: datetime) -> dict[str, Any]:
    """The assistant's suggested replies offered to agents in the period, and what became of them."""
    from tickets.selectors import suggestion_outcomes
    from tickets.services.workspace import suggestion_rates

    return suggestion_rates(suggestion_outcomes(since=begin, until=end, organization=org))


def _agent_rows(
    org: Organization, begin: datetime, end: datetime, created: list[dict[str, Any]], resolved: list[Ticket]
) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model

    replies = Counter(
        Message.objects.filter(
            conversation__organization=org, role=MessageRole.AGENT, created_at__gte=begin, created_at__lt=end
        ).values_list("author_id", flat=True)
    )
    assigned = Counter(t["assignee_id"] for t in created if t["assignee_id"])
    first_by: dict[int, list[float]] = defaultdict(list)
    for t in created:
        if t["assignee_id"] and t["first_responded_at"]:
            first_by[t["assignee_id"]].append(_minutes(t["first_responded_at"] - t["created_at"]))
    resolved_by: dict[int, list[Ticket]] = defaultdict(list)
    for ticket in resolved:
        if ticket.assignee_id:
            resolved_by[ticket.assignee_id].append(ticket)
    people = set(replies) | set(assigned) | set(resolved_by)
    people.discard(None)
    names = dict(get_user_model().objects.filter(pk__in=people).values_list("pk", "username"))
    rows = []
    for user_id in sorted(people, key=lambda pk: names.get(pk, "")):
        done = resolved_by[user_id]
        scores = [t.csat_score for t in done if t.csat_score]
        rows.append(
            {
                "agent": names.get(user_id, str(user_id)),
                "assigned": assigned[user_id],
                "resolved": len(done),
                "replies": replies[user_id],
                "first_response_median_minutes": _spread(first_by[user_id])["median"],
                "resolution_median_minutes": _spread(
                    [_minutes(t.resolved_at - t.created_at) for t in done if t.resolved_at]
                )["median"],
                "csat": _csat(scores),
            }
        )
    return rows


@transaction.atomic
def report_store(*, organization: Organization, period: str, start: date, now: datetime | None = None) -> Report:
    """Build and save (or rebuild) one period's report."""
    data = report_build(organization=organization, period=period, start=start, now=now)
    begin = date.fromisoformat(data["start"])
    report, _ = Report.objects.update_or_create(
        organization=organization, period=period, start=begin, defaults={"data": data}
    )
    return report


def reports_refresh(*, period: str, now: datetime | None = None, back: int | None = None) -> int:
    """Build the last complete period for every organization, and rebuild the few before it
    whose 72-hour reopen window was still open. Returns how many reports were written."""
    step = timedelta(days=7 if period == ReportPeriod.WEEK else 1)
    back = back if back is not None else (1 if period == ReportPeriod.WEEK else 3)
    written = 0
    for organization in Organization.objects.all():
        newest = last_complete_start(organization=organization, period=period, now=now)
        for i in range(back + 1):
            report_store(organization=organization, period=period, start=newest - step * i, now=now)
            written += 1
    return written


# --- rendering ---------------------------------------------------------------------------


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        elif isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            rows.extend((f"{name}.{n}", item) for n, item in enumerate(value))  # by hour: 0..23
        elif isinstance(value, list):
            for item in value:
                rows.extend(_flatten({k: v for k, v in item.items() if k != "agent"}, f"{name}.{item['agent']}."))
        else:
            rows.append((name, value))
    return rows


HEADER_KEYS = ("organization", "period", "start", "end", "timezone", "built_at")


def report_csv(reports: list[dict[str, Any]]) -> str:
    """One row per figure: organization, period, start, metric, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["organization", "period", "start", "metric", "value"])
    for data in reports:
        body = {k: v for k, v in data.items() if k not in HEADER_KEYS}
        for metric, value in _flatten(body):
            cell = "" if value is None else value
            writer.writerow([data["organization"], data["period"], data["start"], metric, cell])
    return out.getvalue()


def report_json(reports: list[dict[str, Any]]) -> str:
    return json.dumps(reports, indent=2, sort_keys=False)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def _num(value: Any) -> str:
    return "n/a" if value is None else str(value)


def report_text(data: dict[str, Any]) -> str:
    conv, res, tix = data["conversations"], data["resolution"], data["tickets"]
    fr, rt, csat = data["first_response_minutes"], data["resolution_minutes"], data["csat"]
    lines = [
        f"{data['organization']}: {data['period']} {data['start']} to {data['end']} ({data['timezone']})",
        f"  conversations     {conv['total']}  by channel {conv['by_channel'] or '{}'}  with bot {conv['with_bot']}"
        f"  escalated {conv['escalated']}",
        f"  bot involvement   {_pct(data['bot_involvement_rate'])}",
        f"  resolution rate   {_pct(res['resolution_rate'])}  automation {_pct(res['automation_rate'])}"
        f" (confirmed {_pct(res['automation_rate_confirmed'])})",
        f"  bot resolved      confirmed {res['bot_resolved_confirmed']}  assumed {res['bot_resolved_assumed']}"
        f"  reopened {res['bot_reopened']}  ongoing {res['bot_ongoing']}",
        f"  human             resolved {res['human_resolved']}  open {res['human_open']}",
        f"  intents           {', '.join(f'{k} {v}' for k, v in data['intents'].items()) or 'none'}",
        f"  sentiment         {', '.join(f'{k} {v}' for k, v in data['sentiment'].items())}",
        f"  tickets           created {tix['created']}  resolved {tix['resolved']}  SLA breaches {tix['sla_breaches']}",
        f"  first response    median {_num(fr['median'])} min  p90 {_num(fr['p90'])} min  (n={fr['count']})",
        f"  resolution time   median {_num(rt['median'])} min  p90 {_num(rt['p90'])} min  (n={rt['count']})",
        f"  CSAT              bot {_num(csat['bot']['mean'])} (n={csat['bot']['count']})"
        f"  human {_num(csat['human']['mean'])} (n={csat['human']['count']})",
    ]
    if "suggestions" in data:  # reports stored before suggestions existed lack it
        sug = data["suggestions"]
        lines.append(
            f"  suggested replies offered {sug['offered']}  sent as drafted {sug['sent']}  edited {sug['edited']}"
            f"  discarded {sug['discarded']}  acceptance {_pct(sug['acceptance_rate'])}"
        )
    for row in data["agents"]:
        lines.append(
            f"  agent {row['agent']:<12} assigned {row['assigned']}  resolved {row['resolved']}"
            f"  replies {row['replies']}"
            f"  first response median {_num(row['first_response_median_minutes'])} min"
            f"  CSAT {_num(row['csat']['mean'])}"
        )
    return "\n".join(lines)
