"""The staff API's caller: token, user and organization in one query; permissions from a
per-process copy that follows changes made here at once and elsewhere within seconds."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tenancy import authentication

pytestmark = pytest.mark.django_db


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_token_request_reads_token_user_and_organization_in_one_query(agent):
    client = token_client(agent)
    assert client.get("/api/v1/tickets/").status_code == 200  # the permission copy is made
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/api/v1/tickets/").status_code == 200
    reads = [q["sql"] for q in queries.captured_queries]
    assert sum("authtoken_token" in sql for sql in reads) == 1
    assert not [sql for sql in reads if "staffprofile" in sql and "authtoken_token" not in sql]
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
