from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def aged(ticket, minutes):
    Ticket.objects.filter(pk=ticket.pk).update(created_at=timezone.now() - timedelta(minutes=minutes))
    return services.ticket_sla_recompute(ticket=ticket)


def test_sla_pass_records_risk_then_breach_and_raises_priority_once(org):
    ticket = aged(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), 50)  # 1 h target
    changes = services.sla_check()
    assert [(c.ticket_id, c.before, c.after) for c in changes] == [(ticket.pk, "ok", "at_risk")]
    assert services.sla_check() == []  # nothing new: nothing recorded twice
    later = timezone.now() + timedelta(minutes=15)
    [breach] = services.sla_check(now=later)
    assert (breach.after, breach.priority_raised_to) == ("breached", "urgent")
    ticket.refresh_from_db()
    assert ticket.priority == "urgent" and ticket.sla_status == "breached"
    assert services.sla_check(now=later) == []
    kinds = list(ticket.events.filter(kind__in=["sla", "priority"]).values_list("kind", "after"))
    assert kinds == [("sla", "at_risk"), ("sla", "breached"), ("priority", "urgent")]


def test_first_reply_clears_the_risk_and_pending_keeps_its_state(org, agent):
    risky = aged(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), 50)
    paused = aged(TicketFactory(customer=CustomerFactory(organization=org), priority="high"), 10)
    services.ticket_transition(ticket=paused, to_status="pending")
    services.sla_check()
    services.ticket_reply(ticket=risky, author=agent, text="Looking into it")
    changes = {c.ticket_id: c.after for c in services.sla_check()}
    assert changes == {risky.pk: "ok"}  # resolution is still far off; the paused one stays put
    assert Ticket.objects.get(pk=paused.pk).sla_status == "ok"
    assert services.sla_check(now=timezone.now() + timedelta(hours=5)) == []  # paused: no breach


def test_sla_check_command_prints_changes(org, capsys):
    ticket = aged(TicketFactory(customer=CustomerFactory(organization=org), priority="urgent"), 30)
    call_command("sla_check")
    out = capsys.readouterr().out
    assert f"ticket #{ticket.pk}: ok -> breached" in out and "1 ticket(s) changed." in out
