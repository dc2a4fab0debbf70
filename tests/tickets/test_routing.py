import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tenancy.models import StaffProfile
from tests.support import run_database_url
from tests.tenancy.factories import StaffFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Ticket

ROOT = Path(__file__).resolve().parents[2]


def staff(org, name, capacity=10, available=True):
    user = StaffFactory(organization=org, username=name, email=f"{name}@example.com")
    StaffProfile.objects.filter(user=user).update(capacity=capacity, is_available=available)
    return user


@pytest.mark.django_db
def test_round_robin_by_load_capacity_and_availability(org):
    ann, bob = staff(org, "ann", capacity=2), staff(org, "bob", capacity=2)
    staff(org, "away", available=False)
    customer = CustomerFactory(organization=org)
    tickets = [TicketFactory(customer=customer) for _ in range(5)]
    assignees = [services.ticket_route(ticket=t) for t in tickets]
    assert assignees[:4] == [ann, bob, ann, bob]  # fewest open tickets, then least recently assigned
    assert assignees[4] is None  # both are at capacity; the unavailable one gets nothing
    assert Ticket.objects.get(pk=tickets[4].pk).events.filter(message__contains="capacity").exists()
    # Routing again changes nothing.
    assert services.ticket_route(ticket=tickets[0]) == ann
    assert Ticket.objects.filter(assignee=ann).count() == 2


@pytest.mark.django_db
def test_backlog_routes_urgent_and_vip_first(org):
    staff(org, "solo", capacity=2)
    plain = TicketFactory(customer=CustomerFactory(organization=org), priority="high")
    vip = TicketFactory(customer=CustomerFactory(organization=org, vip_tier="platinum"), priority="high")
    urgent = TicketFactory(customer=CustomerFactory(organization=org), priority="urgent")
    assert services.tickets_route_backlog(organization=org) == 2
    assigned = set(Ticket.objects.filter(assignee__isnull=False).values_list("pk", flat=True))
    assert assigned == {urgent.pk, vip.pk} and plain.pk not in assigned


@pytest.mark.django_db(transaction=True)
def test_concurrent_routing_never_overruns_capacity(org):
    staff(org, "ann", capacity=3)
    staff(org, "bob", capacity=3)
    customer = CustomerFactory(organization=org)
    tickets = [TicketFactory(customer=customer) for _ in range(8)]
    errors = []

    def route(batch):
        try:
            for ticket in batch:
                services.ticket_route(ticket=ticket)
        except Exception as exc:  # asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=route, args=(tickets[n::4],)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    loads = [Ticket.objects.filter(assignee__username=name).count() for name in ("ann", "bob")]
    assert loads == [3, 3] and Ticket.objects.filter(assignee__isnull=True).count() == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_escalation_is_routed_and_notified_by_a_real_worker(org, tmp_path):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.skip("the worker shares PostgreSQL and Redis with the test")
    ann = staff(org, "ann")
    mail_dir = tmp_path / "mail"
    env = {
        **os.environ,
        "DATABASE_URL": run_database_url(),
        "EMAIL_URL": f"filemail://{mail_dir}",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "WARNING"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        customer = CustomerFactory(organization=org, name="Maya", vip_tier="gold")
        conversation = services.conversation_start(customer=customer)
        services.message_create(conversation=conversation, role="customer", text="I need a person, now!")
        ticket = services.conversation_escalate(conversation=conversation, reason="asked", intent="human_request")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not Ticket.objects.get(pk=ticket.pk).assignee_id:
            time.sleep(0.3)
        assert Ticket.objects.get(pk=ticket.pk).assignee == ann
        while time.monotonic() < deadline and not (mail_dir.exists() and any(mail_dir.iterdir())):
            time.sleep(0.3)
        mail = "".join(path.read_text() for path in mail_dir.iterdir())
        assert "ann@example.com" in mail and f"Ticket #{ticket.pk}" in mail
        # Resolved while the customer is offline: the worker emails them a rating link.
        services.ticket_transition(ticket=Ticket.objects.get(pk=ticket.pk), to_status="resolved", actor=ann)
        while time.monotonic() < deadline and not Ticket.objects.get(pk=ticket.pk).csat_requested_at:
            time.sleep(0.3)
        mail = "".join(path.read_text() for path in mail_dir.iterdir())
        assert Ticket.objects.get(pk=ticket.pk).csat_request_channel == "email"
        assert customer.email in mail and "/csat/" in mail
    finally:
        worker.terminate()
        worker.wait(timeout=20)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "intent,sentiment,vip,expected",
    [
        ("human_request", 0.2, "none", "medium"),
        ("complaint", 0.2, "none", "high"),
        ("human_request", -0.7, "none", "high"),  # very negative: one step up
        ("human_request", -0.5, "none", "medium"),  # negative, not very: no bump
        ("human_request", 0.0, "gold", "high"),  # high-value VIP: one step up
        ("human_request", 0.0, "silver", "medium"),  # silver is not high value
        ("complaint", -0.9, "platinum", "urgent"),  # both bumps
        ("complaint", -0.9, "gold", "urgent"),  # capped at urgent
    ],
)
def test_escalation_priority_bumps_and_the_queued_routing_task(
    org, intent, sentiment, vip, expected, django_capture_on_commit_callbacks, monkeypatch
):
    from config.celery import app as celery_app

    monkeypatch.setattr(celery_app.conf, "task_always_eager", True)  # queued tasks run when committed
    ann = staff(org, "ann")
    customer = CustomerFactory(organization=org, vip_tier=vip)
    conversation = services.conversation_start(customer=customer)
    services.message_create(conversation=conversation, role="customer", text="Where is my order?")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ticket = services.conversation_escalate(
            conversation=conversation, reason="test", intent=intent, sentiment=sentiment
        )
    assert ticket.priority == expected
    assert Ticket.objects.get(pk=ticket.pk).assignee is None  # routing waits for the commit
    assert "conversation_escalate" in [c.__qualname__.split(".")[0] for c in callbacks]
    for callback in callbacks:  # the commit: the queued routing task runs and assigns the ticket
        callback()
    assert Ticket.objects.get(pk=ticket.pk).assignee == ann
    conversation.refresh_from_db()
    assert conversation.status == "handed_off"
    # A second escalation of the same chat raises the open ticket's priority, never lowers it.
    again = services.conversation_escalate(conversation=conversation, reason="again", intent="human_request")
    assert again.pk == ticket.pk and again.priority == expected
