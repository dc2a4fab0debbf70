"""The staff API's caller: token, user and organization in one query, then kept per process;
permissions from a per-process copy. Both follow changes made here at once and elsewhere within
seconds (the kept token within a notification's delay where the change listener runs)."""

import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from config import changes
from tenancy import authentication
from tenancy.models import StaffProfile
from tests.support import committed_elsewhere, until
from tests.tickets.factories import CustomerFactory, TicketFactory

pytestmark = pytest.mark.django_db


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_token_request_reads_token_user_and_organization_in_one_query_then_keeps_them(agent):
    client = token_client(agent)
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/tickets/").status_code == 200  # the permission copy is made
    reads = [q["sql"] for q in queries.captured_queries]
    assert sum("authtoken_token" in sql for sql in reads) == 1
    assert not [sql for sql in reads if "staffprofile" in sql and "authtoken_token" not in sql]
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/tickets/").json()["count"] == 0
    reads = [q["sql"] for q in queries.captured_queries]
    assert not [sql for sql in reads if "authtoken_token" in sql or "staffprofile" in sql]
    assert not [sql for sql in reads if "auth_permission" in sql]
    bad = APIClient(HTTP_AUTHORIZATION="Token not-a-token").get("/api/v1/tickets/")
    assert bad.status_code == 403 and bad.json()["detail"] == "Invalid token."  # 403: session auth comes first


def test_permission_changes_apply_here_at_once_and_from_elsewhere_within_seconds(agent, monkeypatch):
    client = token_client(agent)
    assert client.get("/api/v1/tickets/").status_code == 200
    groups = list(agent.groups.all())
    agent.groups.clear()  # a role taken away in this process: the very next request is refused
    assert client.get("/api/v1/tickets/").status_code == 403
    agent.groups.set(groups)
    assert client.get("/api/v1/tickets/").status_code == 200
    # Another process takes the role away (rows deleted there; no signal here).
    agent.groups.through.objects.filter(user_id=agent.pk).delete()
    assert client.get("/api/v1/tickets/").status_code == 200  # this process's copy, for now
    later = authentication.time.monotonic() + authentication.PERMISSIONS_SECONDS + 0.1
    monkeypatch.setattr(authentication.time, "monotonic", lambda: later)
    assert client.get("/api/v1/tickets/").status_code == 403
    assert Group.objects.filter(pk__in=[g.pk for g in groups]).count() == len(groups)


def test_a_token_deleted_or_a_user_deactivated_here_is_refused_at_once(agent):
    client = token_client(agent)
    assert client.get("/api/v1/tickets/").status_code == 200
    Token.objects.filter(user=agent).delete()
    refused = client.get("/api/v1/tickets/")
    assert refused.status_code == 403 and refused.json()["detail"] == "Invalid token."
    client = token_client(agent)
    assert client.get("/api/v1/tickets/").status_code == 200
    agent.is_active = False
    agent.save(update_fields=["is_active"])
    assert client.get("/api/v1/tickets/").json()["detail"] == "User inactive or deleted."


def test_another_process_deleting_a_token_is_refused_within_seconds(agent, monkeypatch):
    client = token_client(agent)
    assert client.get("/api/v1/tickets/").status_code == 200
    with connection.cursor() as cursor:  # as another process would: no signal here
        cursor.execute("DELETE FROM authtoken_token WHERE user_id = %s", [agent.pk])
    assert client.get("/api/v1/tickets/").status_code == 200  # this process's copy, for now
    later = authentication.time.monotonic() + authentication.TOKEN_SECONDS + 0.1
    monkeypatch.setattr(authentication.time, "monotonic", lambda: later)
    assert client.get("/api/v1/tickets/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_listening_process_keeps_a_token_until_a_change_is_announced(agent, org, other_org, monkeypatch):
    """Real triggers (tenancy migration 0006) and the listener's own connection: the kept token
    outlives TOKEN_SECONDS while nothing changes, and is read again once another connection
    deletes it or moves its user to another organization."""
    monkeypatch.setattr(authentication, "TOKEN_SECONDS", 0.05)
    assert changes.changes_listen(wait=5)
    try:
        TicketFactory(customer=CustomerFactory(organization=org))
        client = token_client(agent)
        assert client.get("/api/v1/tickets/").json()["count"] == 1
        time.sleep(0.3)  # the setup's own writes are heard (each drops what was kept): read again
        assert client.get("/api/v1/tickets/").status_code == 200
        time.sleep(0.1)  # past TOKEN_SECONDS
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/tickets/").status_code == 200
        assert not [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]

        committed_elsewhere(lambda: StaffProfile.objects.filter(user=agent).update(organization=other_org))
        assert until(
            lambda: client.get("/api/v1/tickets/").json()["count"] == 0, timeout=3, every=0.02
        )  # now other_org's desk
        committed_elsewhere(lambda: Token.objects.filter(user=agent).delete())
        assert until(lambda: client.get("/api/v1/tickets/").status_code == 403, timeout=3, every=0.02)
    finally:
        changes.changes_stop()
