"""SLA clocks on business hours: the calendar arithmetic, and tickets whose deadlines,
pauses and breaches follow the organization's opening hours, time zone and holidays."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from tenancy.business_hours import BusinessCalendar, business_calendar
from tenancy.models import BusinessHours, Holiday
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Ticket

NINE_TO_FIVE = {day: ((time(9), time(17)),) for day in range(5)}  # Monday to Friday
BERLIN = ZoneInfo("Europe/Berlin")


def created_at(ticket, moment):
    Ticket.objects.filter(pk=ticket.pk).update(created_at=moment)
    return services.ticket_sla_recompute(ticket=Ticket.objects.get(pk=ticket.pk))


def at(day: int, hour: int, minute: int = 0, zone=UTC) -> datetime:
    """A moment in the week of Monday 2026-11-16."""
    return datetime(2026, 11, 16 + day, hour, minute, tzinfo=zone)


def test_adding_business_time_skips_nights_and_weekends():
    calendar = BusinessCalendar(hours=NINE_TO_FIVE)
    assert calendar.add(at(0, 10), 3600) == at(0, 11)  # inside the day
    assert calendar.add(at(0, 16), 2 * 3600) == at(1, 10)  # 1 h today, 1 h tomorrow
    assert calendar.add(at(0, 20), 1800) == at(1, 9, 30)  # after hours: starts at opening
    assert calendar.add(at(4, 16), 2 * 3600) == at(7, 10)  # Friday 16:00 + 2 h = Monday 10:00
    assert calendar.add(at(5, 12), 60) == at(7, 9, 1)  # Saturday counts nothing
    assert calendar.seconds_between(at(4, 16), at(7, 10)) == 2 * 3600
    assert calendar.seconds_between(at(0, 8), at(0, 18)) == 8 * 3600
    assert calendar.seconds_between(at(1, 10), at(0, 10)) == 0
    assert calendar.is_open(at(0, 9)) and not calendar.is_open(at(0, 17)) and not calendar.is_open(at(5, 12))


def test_holidays_and_split_shifts_and_a_24_7_desk():
    split = {0: ((time(9), time(12)), (time(13), time(17)))}
    calendar = BusinessCalendar(hours=split, holidays=frozenset({date(2026, 11, 23)}))
    assert calendar.add(at(0, 11), 2 * 3600) == at(0, 14)  # the lunch hour does not count
    assert calendar.add(at(0, 16), 2 * 3600) == at(14, 10)  # next Monday is a holiday
    always = BusinessCalendar()
    assert always.always_open and always.add(at(5, 23), 3600) == at(6, 0)


def test_opening_hours_are_local_time_across_a_daylight_saving_change():
    calendar = BusinessCalendar(zone=BERLIN, hours=NINE_TO_FIVE)
    # Friday 2026-03-27 16:00 Berlin (UTC+1); clocks go forward on Sunday the 29th.
    friday = datetime(2026, 3, 27, 16, tzinfo=BERLIN)
    due = calendar.add(friday, 2 * 3600)
    assert due == datetime(2026, 3, 30, 10, tzinfo=BERLIN)
    assert due.astimezone(UTC).hour == 8  # Monday is UTC+2
    assert calendar.seconds_between(friday, due) == 2 * 3600


@pytest.mark.django_db
def test_ticket_deadlines_follow_the_organizations_hours(org, monkeypatch):
    org.timezone = "Europe/Berlin"
    org.save()
    for day in range(5):
        BusinessHours.objects.create(organization=org, weekday=day, opens=time(9), closes=time(17))
    Holiday.objects.create(organization=org, date=date(2026, 11, 23), name="Closed for inventory")
    friday_evening = datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    monkeypatch.setattr(timezone, "now", lambda: friday_evening)
    ticket = created_at(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), friday_evening)
    # High priority: 1 h to first response, 8 h to resolution, at risk after 75 %. Half an hour
    # counts on Friday; the weekend and Monday's holiday count nothing; the rest runs on Tuesday.
    assert ticket.first_response_due == datetime(2026, 11, 24, 9, 30, tzinfo=BERLIN)
    assert ticket.first_response_at_risk_at == datetime(2026, 11, 24, 9, 15, tzinfo=BERLIN)
    assert ticket.resolution_due == datetime(2026, 11, 24, 16, 30, tzinfo=BERLIN)
    # Saturday noon is 19.5 wall-clock hours after the ticket came in, and no business time.
    assert services.sla_check(now=datetime(2026, 11, 21, 12, tzinfo=BERLIN)) == []
    [risk] = services.sla_check(now=datetime(2026, 11, 24, 9, 16, tzinfo=BERLIN))
    assert risk.after == "at_risk"
    [breach] = services.sla_check(now=datetime(2026, 11, 24, 9, 31, tzinfo=BERLIN))
    assert breach.after == "breached"


@pytest.mark.django_db
def test_pending_pauses_only_business_time(org, monkeypatch):
    for day in range(5):
        BusinessHours.objects.create(organization=org, weekday=day, opens=time(9), closes=time(17))
    clock = {"now": at(4, 15)}  # Friday 15:00 UTC
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    ticket = created_at(TicketFactory(customer=CustomerFactory(organization=org), priority="medium"), at(4, 15))
    assert ticket.first_response_due == at(7, 11)  # 2 h Friday + 2 h Monday
    services.ticket_transition(ticket=ticket, to_status="pending")
    clock["now"] = at(7, 10)  # back on Monday 10:00: paused for Fri 15-17 and Mon 9-10 = 3 h
    ticket = services.ticket_transition(ticket=Ticket.objects.get(pk=ticket.pk), to_status="in_progress")
    assert ticket.sla_paused_seconds == 3 * 3600
    assert ticket.first_response_due == at(7, 14)  # three working hours later than before


@pytest.mark.django_db
def test_unknown_time_zone_is_a_form_error(org):
    org.timezone = "Mars/Olympus"
    with pytest.raises(ValidationError, match="Unknown time zone"):
        org.full_clean()
    assert business_calendar(org).zone == ZoneInfo("UTC")


@pytest.mark.django_db
def test_breach_policy_reassigns_to_someone_with_room(org):
    org.sla_breach_action = "reassign"
    org.save()
    first = StaffFactory(organization=org, username="first")
    second = StaffFactory(organization=org, username="second")
    ticket = TicketFactory(customer=CustomerFactory(organization=org), priority="urgent")
    services.ticket_assign(ticket=ticket, assignee=first)
    [change] = services.sla_check(now=timezone.now() + timedelta(hours=2))
    assert (change.after, change.priority_raised_to, change.reassigned_to) == ("breached", "", "second")
    ticket.refresh_from_db()
    assert ticket.assignee == second and ticket.priority == "urgent"
    event = ticket.events.filter(kind="assigned").last()
    assert "SLA breached; reassigned from first to second" in event.message


@pytest.mark.django_db
def test_breach_policy_keeps_the_assignee_when_nobody_else_has_room(org):
    org.sla_breach_action = "raise_and_reassign"
    org.save()
    only = StaffFactory(organization=org, username="only")
    ticket = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    services.ticket_assign(ticket=ticket, assignee=only)
    [change] = services.sla_check(now=timezone.now() + timedelta(hours=9))
    assert (change.priority_raised_to, change.reassigned_to) == ("urgent", "")
    ticket.refresh_from_db()
    assert ticket.assignee == only and ticket.priority == "urgent"
    assert ticket.events.filter(kind="assigned", message__contains="nobody else has room").exists()


@pytest.mark.django_db
def test_changing_hours_or_policies_in_admin_moves_open_tickets_deadlines(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    import re

    from django.test import Client

    from config.celery import app as celery_app
    from tenancy.models import StaffRole
    from tickets.models import SlaPolicy

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)  # the recompute task runs here
    friday_evening = datetime(2026, 11, 20, 16, 30, tzinfo=BERLIN)
    monkeypatch.setattr(timezone, "now", lambda: friday_evening)
    ticket = created_at(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), friday_evening)
    resolved = created_at(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), friday_evening)
    Ticket.objects.filter(pk=resolved.pk).update(status="resolved")
    assert ticket.first_response_due == friday_evening + timedelta(hours=1)  # 24/7 until hours exist
    client = Client()
    client.force_login(StaffFactory(organization=org, username="olga", role=StaffRole.ADMIN))

    # Business hours added on the organization's page: the open ticket now counts office time only.
    page = client.get(f"/admin/tenancy/organization/{org.pk}/change/").content.decode()
    prefixes = re.findall(r'name="([\w-]+)-TOTAL_FORMS"', page)
    form = {
        "name": org.name,
        "slug": org.slug,
        "timezone": "Europe/Berlin",
        "sla_breach_action": org.sla_breach_action,
        "transcript_retention_days": org.transcript_retention_days,
        "stale_conversation_minutes": org.stale_conversation_minutes,
    }
    for prefix in prefixes:
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    hours = next(p for p in prefixes if "hours" in p)
    form[f"{hours}-TOTAL_FORMS"] = "5"
    for day in range(5):
        form.update(
            {f"{hours}-{day}-weekday": str(day), f"{hours}-{day}-opens": "09:00", f"{hours}-{day}-closes": "17:00"}
        )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/tenancy/organization/{org.pk}/change/", form)
    assert response.status_code == 302, re.findall(r'class="errorlist[^"]*"[^>]*>(.*?)</ul>', response.content.decode())
    assert BusinessHours.objects.filter(organization=org).count() == 5
    ticket.refresh_from_db()
    assert ticket.first_response_due == datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN)  # Monday morning
    before_resolved = Ticket.objects.get(pk=resolved.pk).first_response_due
    assert before_resolved == friday_evening + timedelta(hours=1)  # closed work keeps its history

    # A tighter policy for high priority: 30 minutes, counted in office hours.
    policy = {"priority": "high", "vip_tier": "", "first_response_minutes": "30", "resolution_minutes": "240"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/tickets/slapolicy/add/", policy)
    assert response.status_code == 302, response.content.decode()[:3000]
    ticket.refresh_from_db()
    assert ticket.first_response_due == datetime(2026, 11, 20, 17, 0, tzinfo=BERLIN)  # fits before Friday's close
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/tickets/slapolicy/{SlaPolicy.objects.get().pk}/delete/", {"post": "yes"})
    ticket.refresh_from_db()
    assert ticket.first_response_due == datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN)
