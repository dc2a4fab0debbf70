"""Daily and weekly reports: exact figures on a known set of conversations and tickets, the
`report` command in its three formats, the beat task, and the admin pages with charts."""

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from tenancy.services import staff_role_set
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory
from tickets import services
from tickets.models import Conversation, Message, Report, Ticket, TicketEvent
from tickets.reports import report_build, report_csv, reports_refresh

pytestmark = pytest.mark.django_db
DAY = date(2026, 11, 10)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return datetime(2026, 11, 10, hour, minute, tzinfo=UTC) + timedelta(days=days)


def chat(customer, started, channel="web"):
    conversation = services.conversation_start(customer=customer, channel=channel)
    Conversation.objects.filter(pk=conversation.pk).update(started_at=started)
    return conversation


def say(conversation, role, text, when, *, author=None, intent=None, sentiment=None):
    metadata = {"intent": intent} if intent else {}
    message, _ = services.message_create(
        conversation=conversation, role=role, text=text, author=author, metadata=metadata
    )
    if sentiment is not None:
        services.message_sentiment_record(message=message, score=sentiment)
    Message.objects.filter(pk=message.pk).update(created_at=when)
    return message


def end(conversation, when):
    services.conversation_end(conversation=conversation)
    Conversation.objects.filter(pk=conversation.pk).update(ended_at=when)


@pytest.fixture
def known_day(org):
    """One day of Acme's support, with every outcome once."""
    ann = StaffFactory(organization=org, username="ann")
    bob = StaffFactory(organization=org, username="bob")
    a, b, c, d = (CustomerFactory(organization=org, name=n) for n in "ABCD")
    # 1: the bot answers and the customer never comes back; rated 5.
    c1 = chat(a, at(10))
    say(c1, "customer", "where is my order", at(10), sentiment=0.3)
    say(c1, "bot", "It ships today.", at(10, 1), intent="order_status")
    end(c1, at(10, 30))
    services.conversation_csat_record(conversation=Conversation.objects.get(pk=c1.pk), score=5)
    # 2: the bot answers, the chat ends, and the customer starts a new chat the next morning.
    c2 = chat(b, at(11))
    say(c2, "customer", "refund please", at(11), sentiment=-0.4)
    say(c2, "bot", "Refunds take 5 days.", at(11, 1), intent="refund")
    end(c2, at(11, 10))
    chat(b, at(9, days=1))
    # 3: escalated by email; Ann answers in 30 minutes and resolves in 2 hours; rated 4.
    c4 = chat(c, at(12), channel="email")
    say(c4, "customer", "this is unacceptable", at(12), sentiment=-0.8)
    say(c4, "bot", "Let me get a person.", at(12, 1), intent="human_request")
    t1 = services.ticket_create(organization=org, customer=c, subject="Angry", channel="email", conversation=c4)
    say(c4, "agent", "Sorry, fixing it now.", at(12, 30), author=ann)
    Ticket.objects.filter(pk=t1.pk).update(
        created_at=at(12), first_responded_at=at(12, 30), resolved_at=at(14), status="resolved", assignee=ann
    )
    services.ticket_csat_record(ticket=Ticket.objects.get(pk=t1.pk), score=4)
    # 4: a chat still open with nobody having answered.
    chat(d, at(13))
    # A ticket from the API, answered by Bob after an hour, still open, breached its SLA.
    t2 = services.ticket_create(organization=org, customer=d, subject="Invoice", channel="api")
    Ticket.objects.filter(pk=t2.pk).update(created_at=at(15), first_responded_at=at(16), assignee=bob)
    say(chat(d, at(16, days=-3)), "agent", "Here is your invoice.", at(16), author=bob)
    event = TicketEvent.objects.create(ticket=t2, kind="sla", field="sla_status", before="ok", after="breached")
    TicketEvent.objects.filter(pk=event.pk).update(created_at=at(16, 30))
    return org


def test_a_known_day_adds_up(known_day):
    data = report_build(organization=known_day, period="day", start=DAY, now=at(12, days=10))
    by_hour = data["conversations"].pop("by_hour")
    assert data["conversations"] == {"total": 4, "by_channel": {"web": 3, "email": 1}, "with_bot": 3, "escalated": 1}
    # Hours of the day in the organization's time zone, per channel.
    assert set(by_hour) == {"web", "email"} and len(by_hour["web"]) == 24
    assert by_hour["web"][10] == by_hour["web"][11] == 1 and sum(by_hour["web"]) == 3
    assert by_hour["email"][12] == 1 and sum(by_hour["email"]) == 1
    # Ann answered in 30 minutes, Bob in an hour; Ann resolved in two hours.
    assert data["distributions"]["first_response"]["15-30 min"] == 1
    assert data["distributions"]["first_response"]["30-60 min"] == 1
    assert sum(data["distributions"]["first_response"].values()) == 2
    assert data["distributions"]["resolution"]["1-4 h"] == 1
    assert data["bot_involvement_rate"] == 0.75
    assert data["resolution"] == {
        "bot_resolved_confirmed": 1,
        "bot_resolved_assumed": 0,
        "bot_reopened": 1,
        "bot_ongoing": 1,
        "human_resolved": 1,
        "human_open": 0,
        "resolution_rate": 0.5,
        "automation_rate": 0.25,
        "automation_rate_confirmed": 0.25,
    }
    assert data["intents"] == {"order_status": 1, "refund": 1, "human_request": 1}
    assert data["sentiment"] == {
        "very_negative": 1,
        "negative": 1,
        "neutral": 0,
        "positive": 1,
        "very_positive": 0,
    }
    assert data["tickets"] == {"created": 2, "by_channel": {"email": 1, "api": 1}, "resolved": 1, "sla_breaches": 1}
    assert data["first_response_minutes"] == {"count": 2, "mean": 45.0, "median": 45.0, "p90": 57.0}
    assert data["resolution_minutes"] == {"count": 1, "mean": 120.0, "median": 120.0, "p90": 120.0}
    assert data["csat"] == {"bot": {"count": 1, "mean": 5.0}, "human": {"count": 1, "mean": 4.0}}
    assert data["agents"] == [
        {
            "agent": "ann",
            "assigned": 1,
            "resolved": 1,
            "replies": 1,
            "first_response_median_minutes": 30.0,
            "resolution_median_minutes": 120.0,
            "csat": {"count": 1, "mean": 4.0},
        },
        {
            "agent": "bob",
            "assigned": 1,
            "resolved": 0,
            "replies": 1,
            "first_response_median_minutes": 60.0,
            "resolution_median_minutes": None,
            "csat": {"count": 0, "mean": None},
        },
    ]


def test_a_resolution_within_72_hours_is_only_assumed(known_day):
    data = report_build(organization=known_day, period="day", start=DAY, now=at(12, days=2))
    assert (data["resolution"]["bot_resolved_confirmed"], data["resolution"]["bot_resolved_assumed"]) == (0, 1)
    assert data["resolution"]["automation_rate"] == 0.25 and data["resolution"]["automation_rate_confirmed"] == 0.0


def test_other_days_and_other_tenants_do_not_leak_in(known_day, other_org):
    assert (
        report_build(organization=known_day, period="day", start=DAY + timedelta(days=1))["conversations"]["total"] == 1
    )  # only the customer who came back
    assert report_build(organization=other_org, period="day", start=DAY)["conversations"]["total"] == 0
    week = report_build(organization=known_day, period="week", start=DAY)
    assert (week["start"], week["end"], week["conversations"]["total"]) == ("2026-11-09", "2026-11-16", 5)


def test_days_are_the_organizations_local_days(known_day):
    known_day.timezone = "Asia/Tokyo"  # UTC+9: the API ticket of 15:00 UTC came in at midnight
    known_day.save()
    data = report_build(organization=known_day, period="day", start=DAY)
    assert data["conversations"]["total"] == 4 and data["timezone"] == "Asia/Tokyo"
    assert data["tickets"]["created"] == 1
    assert report_build(organization=known_day, period="day", start=DAY + timedelta(days=1))["tickets"]["created"] == 1


def test_report_command_prints_text_csv_and_json(known_day, capsys):
    call_command("report", "--period", "day", "--org", "acme", "--date", "2026-11-10")
    text = capsys.readouterr().out
    assert "acme: day 2026-11-10 to 2026-11-11" in text and "escalated 1" in text
    assert "agent ann" in text and "SLA breaches 1" in text
    call_command("report", "--org", "acme", "--date", "2026-11-10", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    values = {row["metric"]: row["value"] for row in rows}
    assert values["conversations.total"] == "4" and values["resolution.automation_rate"] == "0.25"
    assert values["agents.ann.csat.mean"] == "4.0"
    call_command("report", "--org", "acme", "--date", "2026-11-10", "--format", "json", "--store")
    [data] = json.loads(capsys.readouterr().out)
    assert data["tickets"]["sla_breaches"] == 1
    assert Report.objects.get(organization=known_day, period="day", start=DAY).data["tickets"]["created"] == 2


def test_report_command_rejects_bad_input(org):
    with pytest.raises(CommandError, match="No organization with slug"):
        call_command("report", "--org", "nobody")
    with pytest.raises(CommandError, match="--date must look like"):
        call_command("report", "--date", "10/11/2026")


def test_refresh_builds_the_last_periods_and_is_idempotent(known_day):
    now = at(1, days=1)  # 01:00 on the 11th: the 10th is the last complete day
    assert reports_refresh(period="day", now=now) == 4
    assert reports_refresh(period="day", now=now) == 4
    starts = sorted(Report.objects.filter(period="day").values_list("start", flat=True))
    assert starts == [DAY - timedelta(days=3), DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    assert reports_refresh(period="week", now=now) == 2
    assert set(Report.objects.filter(period="week").values_list("start", flat=True)) == {
        date(2026, 11, 2),
        date(2026, 10, 26),
    }


def test_csv_flattens_every_figure(known_day):
    data = report_build(organization=known_day, period="day", start=DAY)
    text = report_csv([data])
    assert text.splitlines()[0] == "organization,period,start,metric,value"
    assert "acme,day,2026-11-10,sentiment.very_negative,1" in text


def test_admin_shows_charts_scoped_to_the_organization(client, known_day, other_org, supervisor, agent):
    staff_role_set(user=supervisor, role="supervisor")
    call_command("report", "--org", "acme", "--date", "2026-11-10", "--store")
    mine = Report.objects.get(organization=known_day)
    theirs = Report.objects.create(organization=other_org, period="day", start=DAY, data={})
    client.force_login(supervisor)
    page = client.get(f"/admin/tickets/report/{mine.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Bot answers by intent" in html and "order_status" in html and "cc-bar" in html
    # Charts are drawn by the vendored Chart.js from the figures carried as JSON.
    assert "/static/concierge/vendor/chart-4.4.7.umd.js" in html and 'id="cc-chart-1"' in html
    assert "Conversations by hour of day and channel" in html and "First response time (tickets)" in html
    assert "CSAT: bot-resolved against human-resolved" in html and "Suggested replies: what agents did" in html
    assert "Automation rate, confirmed only" in html and "25.0%" in html
    assert "<td>ann</td>" in html
    listing = client.get("/admin/tickets/report/")
    assert listing.status_code == 200 and "Conversations per day" in listing.content.decode()
    assert client.get(f"/admin/tickets/report/{theirs.pk}/change/").status_code == 302  # not found → redirect
    client.force_login(agent)
    assert client.get("/admin/tickets/report/").status_code == 403
