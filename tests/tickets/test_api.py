import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.test import APIClient

from tests.support import exhausted_pool, unreachable_pool
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Message, Ticket
from tickets.serializers import TicketSerializer

pytestmark = pytest.mark.django_db


def test_anonymous_and_non_staff_are_refused(ticket, django_user_model):
    assert APIClient().get("/api/v1/tickets/").status_code in (401, 403)
    outsider = django_user_model.objects.create_user("outsider", password="pw-outsider-1")
    client = APIClient()
    client.force_authenticate(outsider)
    assert client.get("/api/v1/tickets/").status_code == 403


def test_token_auth_lists_own_organization_only(agent, ticket, other_org):
    foreign = TicketFactory(customer=CustomerFactory(organization=other_org), subject="Globex secret")
    token = Token.objects.create(user=agent)
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token.key}")
    response = client.get("/api/v1/tickets/")
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [ticket.pk] and foreign.pk not in ids


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("get", "/api/v1/tickets/{t}/", None),
        ("patch", "/api/v1/tickets/{t}/", {"subject": "hijacked"}),
        ("post", "/api/v1/tickets/{t}/transition/", {"status": "closed"}),
        ("post", "/api/v1/tickets/{t}/reply/", {"text": "hello"}),
        ("post", "/api/v1/tickets/{t}/notes/", {"body": "x"}),
        ("get", "/api/v1/tickets/{t}/events/", None),
        ("get", "/api/v1/customers/{c}/", None),
        ("patch", "/api/v1/customers/{c}/", {"name": "x"}),
        ("get", "/api/v1/conversations/{v}/messages/", None),
        ("post", "/api/v1/conversations/{v}/messages/", {"text": "x"}),
    ],
)
def test_other_tenants_objects_answer_404_and_stay_untouched(supervisor, other_org, method, path, body):
    api = APIClient()
    api.force_authenticate(supervisor)  # a supervisor holds every permission these calls need
    foreign_customer = CustomerFactory(organization=other_org, name="Grace")
    conversation = services.conversation_start(customer=foreign_customer)
    foreign = TicketFactory(customer=foreign_customer, subject="Theirs", conversation=conversation)
    url = path.format(t=foreign.pk, c=foreign_customer.pk, v=conversation.pk)
    response = getattr(api, method)(url, body, format="json")
    assert response.status_code == 404
    foreign.refresh_from_db()
    foreign_customer.refresh_from_db()
    assert (foreign.subject, foreign.status, foreign_customer.name) == ("Theirs", "open", "Grace")
    assert not Message.objects.filter(conversation=conversation).exists()


def test_create_ticket_validates_fields_and_tenant_references(api, customer, other_org):
    foreign_customer = CustomerFactory(organization=other_org)
    response = api.post(
        "/api/v1/tickets/", {"subject": "", "customer": foreign_customer.pk, "priority": "meh"}, format="json"
    )
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"subject", "customer", "priority"}
    assert not Ticket.objects.exists()

    response = api.post(
        "/api/v1/tickets/",
        {"subject": "Zip broke", "customer": customer.pk, "priority": "high", "tags": ["Gear", "zip"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "open" and data["priority"] == "high" and sorted(data["tags"]) == ["gear", "zip"]
    assert data["sla_state"] == "ok"
    assert Ticket.objects.get(pk=data["id"]).events.filter(kind="created").exists()


def test_illegal_transition_is_400_with_message(api, ticket):
    api.post(f"/api/v1/tickets/{ticket.pk}/transition/", {"status": "closed"}, format="json")
    response = api.post(f"/api/v1/tickets/{ticket.pk}/transition/", {"status": "open"}, format="json")
    assert response.status_code == 400
    assert "cannot go from closed to open" in response.json()["detail"]
    ticket.refresh_from_db()
    assert ticket.status == "closed"


def test_a_patch_whose_status_move_is_refused_changes_nothing(api, ticket, agent):
    services.ticket_transition(ticket=ticket, to_status="resolved")
    events = ticket.events.count()
    response = api.patch(
        f"/api/v1/tickets/{ticket.pk}/",
        {"priority": "urgent", "assignee": agent.pk, "status": "pending"},
        format="json",
    )
    assert response.status_code == 400 and "cannot go from resolved to pending" in response.json()["detail"]
    ticket.refresh_from_db()
    assert (ticket.priority, ticket.assignee, ticket.status) == ("medium", None, "resolved")
    assert ticket.events.count() == events


def test_patch_routes_status_assignee_and_fields_through_services(api, ticket, agent):
    response = api.patch(
        f"/api/v1/tickets/{ticket.pk}/",
        {"status": "pending", "assignee": agent.pk, "priority": "urgent", "tags": ["vip"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    data = response.json()
    assert (data["status"], data["assignee_username"], data["priority"], data["tags"]) == (
        "pending",
        "alice",
        "urgent",
        ["vip"],
    )
    kinds = set(Ticket.objects.get(pk=ticket.pk).events.values_list("kind", flat=True))
    assert {"status", "assigned", "priority", "tags"} <= kinds


def test_assign_to_other_tenants_staff_is_400(api, ticket, other_agent):
    response = api.post(f"/api/v1/tickets/{ticket.pk}/assign/", {"assignee": other_agent.pk}, format="json")
    assert response.status_code == 400
    assert "assignee" in response.json()


def test_reply_notes_events_merge_macro_and_csat_endpoints(api, ticket, customer, org):
    reply = api.post(f"/api/v1/tickets/{ticket.pk}/reply/", {"text": "On its way"}, format="json")
    assert reply.status_code == 201 and reply.json()["role"] == "agent"
    note = api.post(f"/api/v1/tickets/{ticket.pk}/notes/", {"body": "internal"}, format="json")
    assert note.status_code == 201
    assert [n["body"] for n in api.get(f"/api/v1/tickets/{ticket.pk}/notes/").json()] == ["internal"]
    kinds = [e["kind"] for e in api.get(f"/api/v1/tickets/{ticket.pk}/events/").json()]
    assert kinds[0] == "created" and "replied" in kinds and "note" in kinds

    duplicate = TicketFactory(customer=customer, subject="Same problem again")
    merged = api.post(f"/api/v1/tickets/{duplicate.pk}/merge/", {"into": ticket.pk}, format="json")
    assert merged.status_code == 200 and merged.json()["id"] == ticket.pk
    assert Ticket.objects.get(pk=duplicate.pk).merged_into_id == ticket.pk

    macro = services.macro_create(organization=org, name="Solved", reply="Glad it's fixed", set_status="resolved")
    applied = api.post(f"/api/v1/tickets/{ticket.pk}/apply-macro/", {"macro": macro.pk}, format="json")
    assert applied.status_code == 200 and applied.json()["status"] == "resolved"

    bad = api.post(f"/api/v1/tickets/{ticket.pk}/csat/", {"score": 9}, format="json")
    assert bad.status_code == 400 and "score" in bad.json()
    rated = api.post(f"/api/v1/tickets/{ticket.pk}/csat/", {"score": 4, "comment": "quick"}, format="json")
    assert rated.status_code == 200 and rated.json()["csat_score"] == 4


def test_filters_search_and_pagination(api, org):
    vip = CustomerFactory(organization=org, vip_tier="gold", name="Golden")
    TicketFactory(customer=vip, subject="VIP issue", priority="high")
    plain = CustomerFactory(organization=org)
    for n in range(30):
        TicketFactory(customer=plain, subject=f"Plain {n}", priority="low")
    late = TicketFactory(customer=plain, subject="Late one", priority="urgent")
    Ticket.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(hours=5))
    services.ticket_sla_recompute(ticket=late)

    page = api.get("/api/v1/tickets/").json()
    assert page["count"] == 32 and len(page["results"]) == 25 and page["next"]
    assert [t["subject"] for t in api.get("/api/v1/tickets/?vip_tier=gold").json()["results"]] == ["VIP issue"]
    assert [t["subject"] for t in api.get("/api/v1/tickets/?sla=breached").json()["results"]] == ["Late one"]
    assert api.get("/api/v1/tickets/?priority=high&priority=urgent").json()["count"] == 2
    assert api.get("/api/v1/tickets/?search=Golden").json()["count"] == 1
    assert api.get("/api/v1/tickets/?status=bogus").status_code == 400


def test_ticket_list_query_count_is_pinned(agent, org, django_assert_num_queries):
    # Token auth as a real client sends it: the first request reads the token with its user.
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")
    customer = CustomerFactory(organization=org)
    for _ in range(3):
        TicketFactory(customer=customer, tags=["a", "b"])
    # token with user and organization, user perms, group perms (the process's first read),
    # count, the page with its tags
    with django_assert_num_queries(5):
        assert len(client.get("/api/v1/tickets/").json()["results"]) == 3
    for _ in range(20):
        TicketFactory(customer=CustomerFactory(organization=org), tags=["c"])
    # then the token and permissions come from the process's copies: count, the page
    with django_assert_num_queries(2) as captured:
        assert len(client.get("/api/v1/tickets/").json()["results"]) == 23
    count, page = (query["sql"] for query in captured.captured_queries)
    assert "COUNT(" in count and "JOIN" not in count  # the names' joins are the page's alone
    assert "tickets_ticket_tags" in page and "JOIN" in page


def test_customer_crud_and_role_permissions(api, supervisor, customer):
    assert api.get("/api/v1/customers/").json()["count"] == 1
    # Agents read customers; creating and editing them is a supervisor's job.
    assert api.post("/api/v1/customers/", {"name": "New"}, format="json").status_code == 403
    boss = APIClient()
    boss.force_authenticate(supervisor)
    created = boss.post("/api/v1/customers/", {"name": "New", "email": "new@example.com", "vip_tier": "gold"})
    assert created.status_code == 201
    assert boss.post("/api/v1/customers/", {"name": "Bad", "email": "not-an-email"}).status_code == 400
    duplicate = boss.post("/api/v1/customers/", {"name": "A", "external_id": "X1"})
    assert duplicate.status_code == 201
    clash = boss.post("/api/v1/customers/", {"name": "B", "external_id": "X1"})
    assert clash.status_code == 400 and "already exists" in clash.json()["detail"]
    patched = boss.patch(f"/api/v1/customers/{customer.pk}/", {"vip_tier": "platinum"}, format="json")
    assert patched.status_code == 200 and patched.json()["vip_tier"] == "platinum"


def test_macros_need_supervisor_to_write(api, supervisor):
    assert api.post("/api/v1/macros/", {"name": "Hi", "reply": "Hello"}).status_code == 403
    boss = APIClient()
    boss.force_authenticate(supervisor)
    created = boss.post("/api/v1/macros/", {"name": "Hi", "reply": "Hello"})
    assert created.status_code == 201
    assert boss.post("/api/v1/macros/", {"name": "Hi", "reply": "again"}).status_code == 400
    assert boss.post("/api/v1/macros/", {"name": "Nothing"}).status_code == 400
    assert api.get("/api/v1/macros/").json()["count"] == 1


def test_conversation_messages_are_idempotent_and_resumable(api, customer):
    conversation = api.post("/api/v1/conversations/", {"customer": customer.pk}, format="json").json()
    url = f"/api/v1/conversations/{conversation['id']}/messages/"
    first = api.post(url, {"text": "Hello", "role": "customer", "client_message_id": "c1"}, format="json")
    again = api.post(url, {"text": "Hello", "role": "customer", "client_message_id": "c1"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    api.post(url, {"text": "Agent here"}, format="json")
    after = api.get(url + "?after=1").json()
    assert [(m["seq"], m["role"]) for m in after["results"]] == [(2, "agent")]
    assert api.get(url + "?after=x").status_code == 400
    assert api.post(url, {"text": ""}, format="json").status_code == 400


@pytest.mark.parametrize("client_message_id", ["", "retry-7"])
def test_an_agent_message_posted_to_a_conversation_is_a_ticket_reply(api, agent, customer, client_message_id):
    """With or without a client id, staff answering through the conversation API go through the
    reply service: first-response stamp, ticket event, in progress, assigned to the replier."""
    conversation = services.conversation_start(customer=customer)
    ticket = TicketFactory(customer=customer, conversation=conversation)
    url = f"/api/v1/conversations/{conversation.pk}/messages/"
    body = {"text": "On it, Maya.", "role": "agent", "client_message_id": client_message_id}
    first = api.post(url, body, format="json")
    assert first.status_code == 201, first.content
    ticket.refresh_from_db()
    assert ticket.first_responded_at is not None and ticket.status == "in_progress" and ticket.assignee == agent
    assert ticket.events.filter(kind="replied").count() == 1
    again = api.post(url, body, format="json")
    if client_message_id:  # a retried send is the same reply: no second message, no second event
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert ticket.events.filter(kind="replied").count() == 1
        assert Message.objects.filter(conversation=conversation, role="agent").count() == 1
    else:
        assert again.status_code == 201 and ticket.events.filter(kind="replied").count() == 2


def test_schema_and_docs_are_served_without_a_cdn(api, client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/tickets/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn." not in docs.content and b"unpkg" not in docs.content


@pytest.mark.django_db
def test_a_customers_tickets_are_paginated_as_the_schema_says(api, customer):
    first = TicketFactory(customer=customer, subject="First problem")  # older
    second = TicketFactory(customer=customer, subject="Second problem")
    body = api.get(f"/api/v1/customers/{customer.pk}/tickets/").json()
    assert body["count"] == 2 and [t["id"] for t in body["results"]] == [second.pk, first.pk]
    # Each rendered as the ticket's own URL renders it.
    assert all(api.get(f"/api/v1/tickets/{row['id']}/").json() == row for row in body["results"])


def test_a_detail_url_is_not_filtered_and_an_edit_reads_its_ticket_once(agent, org, django_assert_num_queries):
    client = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=agent).key}")
    ticket = TicketFactory(customer=CustomerFactory(organization=org), tags=["billing"], priority="low")
    services.ticket_assign(ticket=ticket, assignee=agent, actor=agent)
    # List filters do not apply to one object's URL (django-filter is skipped there).
    assert client.get(f"/api/v1/tickets/{ticket.pk}/?status=closed").json()["id"] == ticket.pk
    assert client.get("/api/v1/tickets/?status=closed").json()["count"] == 0
    client.patch(f"/api/v1/tickets/{ticket.pk}/", {"priority": "medium"}, format="json")  # permissions read
    with CaptureQueriesContext(connection) as captured:
        response = client.patch(f"/api/v1/tickets/{ticket.pk}/", {"priority": "high"}, format="json")
    data = response.json()
    assert (data["priority"], data["tags"], data["assignee_username"]) == ("high", ["billing"], "alice")
    # find and lock with the customer and assignee (one query), event, save, the audit entry in
    # the same transaction (chain lock, last entry and insert in one call), tags. The token and
    # the SLA settings come from the process's copies (the first edit read them), and the
    # ticket is not read again to answer (savepoints are the test's transaction's).
    statements = [q["sql"] for q in captured.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert len(statements) == 5, statements
    assert sum(1 for sql in statements if sql.startswith('SELECT "tickets_ticket"')) == 1
    assert not [sql for sql in statements if "slapolicy" in sql or "businesshours" in sql or "holiday" in sql]
    assert any("concierge_audit_append(" in sql for sql in statements)
    assert Ticket.objects.get(pk=ticket.pk).priority == "high"


def test_the_list_renders_every_ticket_exactly_as_the_ticket_serializer_does(agent, org):
    """The list reads columns, not model objects (selectors.ticket_rows): whatever a ticket's
    state, each of its objects is the one TicketSerializer renders, times in the organization's
    zone included (a signed-in staff member's requests run in it)."""
    api = APIClient()
    api.force_login(agent)
    org.timezone = "America/New_York"
    org.save(update_fields=["timezone"])
    anonymous = CustomerFactory(organization=org, name="", email="")
    anonymous.phone = "+1 555 0100"
    anonymous.save()
    by_email = CustomerFactory(organization=org, name="", email="quiet@example.com")
    plain = TicketFactory(customer=CustomerFactory(organization=org), tags=["vip", "billing"], priority="low")
    assigned = TicketFactory(customer=by_email, priority="urgent")
    services.ticket_assign(ticket=assigned, assignee=agent, actor=agent)
    solved = TicketFactory(customer=anonymous, tags=["refund"])
    services.ticket_transition(ticket=solved, to_status="resolved", actor=agent)
    services.ticket_csat_record(ticket=Ticket.objects.get(pk=solved.pk), score=4, comment="quick, thanks")
    late = TicketFactory(customer=by_email)
    Ticket.objects.filter(pk=late.pk).update(first_response_due=timezone.now() - timedelta(hours=1))
    source = TicketFactory(customer=by_email)
    services.ticket_merge(source=source, target=plain, actor=agent)

    listed = api.get("/api/v1/tickets/?page_size=50").json()
    assert listed["count"] == 5 and len(listed["results"]) == 5
    with timezone.override(org.zone):
        expected = [
            TicketSerializer(ticket).data
            for ticket in Ticket.objects.filter(organization=org).order_by("-created_at").prefetch_related("tags")
        ]
    assert listed["results"] == json.loads(JSONRenderer().render(expected))
    # One ticket's URL and an edit's answer render the same objects (selectors.ticket_rows too).
    for row in listed["results"]:
        assert api.get(f"/api/v1/tickets/{row['id']}/").json() == row
    edited = api.patch(f"/api/v1/tickets/{assigned.pk}/", {"subject": "Renamed"}, format="json").json()
    with timezone.override(org.zone):
        again = TicketSerializer(Ticket.objects.prefetch_related("tags").get(pk=assigned.pk)).data
    assert edited == json.loads(JSONRenderer().render(again)) and edited["subject"] == "Renamed"
    assert api.get("/api/v1/tickets/999999/").status_code == 404 and api.get("/api/v1/tickets/x/").status_code == 404
    shown = {row["id"]: row for row in listed["results"]}
    assert (
        shown[solved.pk]["customer_name"] == "+1 555 0100"
        and shown[assigned.pk]["customer_name"] == "quiet@example.com"
    )
    assert shown[plain.pk]["tags"] == ["billing", "vip"] and shown[late.pk]["sla_state"] == "breached"
    assert shown[assigned.pk]["assignee_username"] == "alice" and shown[source.pk]["merged_into"] == plain.pk
    assert shown[plain.pk]["created_at"].endswith("-05:00")
    # Filters, search and ordering still apply before the page is read.
    assert [t["id"] for t in api.get("/api/v1/tickets/?tag=refund").json()["results"]] == [solved.pk]
    assert [t["id"] for t in api.get("/api/v1/tickets/?ordering=created_at&page_size=2").json()["results"]] == [
        plain.pk, assigned.pk
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("no_connection", "code", "retry_after"), [(exhausted_pool, "busy", "1"), (unreachable_pool, "unavailable", "5")]
)
def test_a_request_that_gets_no_database_connection_answers_503_busy_or_unavailable_not_500(
    db, no_connection, code, retry_after
):
    """A real psycopg pool times out inside a real API view, through Django's error wrapper: the
    client gets 503 with Retry-After, not a 500. Every connection of the process's pool in use
    (overload) says busy; a database nobody answers for (an outage, the pool with room) says
    unavailable and asks the client to wait longer."""
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from config.errors import BUSY_MESSAGE, UNAVAILABLE_MESSAGE

    with no_connection() as pool:

        class NoConnection(APIView):
            authentication_classes: list[type] = []
            permission_classes: list[type] = []

            def get(self, request):
                with connection.wrap_database_errors:
                    pool.getconn()
                return Response({"never": "reached"})

        response = NoConnection.as_view()(APIRequestFactory().get("/busy"))
    assert response.status_code == 503 and response["Retry-After"] == retry_after
    message = BUSY_MESSAGE if code == "busy" else UNAVAILABLE_MESSAGE
    assert response.data == {"detail": message, "code": code}
