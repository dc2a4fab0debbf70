"""Minimal implementations of the staff API's busiest endpoints, for the API load benchmark
(bench/api_load.py): the same token check, the same organization scoping and the same rows,
read with ``values()`` and answered with ``JsonResponse`` (no DRF, no serializers, no
filters, no audit). Each real endpoint is reported as a share of its minimal twin's
throughput. Routed only with CONCIERGE_BENCH_ENDPOINTS; never in production."""

import json
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from knowledge.search import kb_search
from tenancy.authentication import StaffTokenAuthentication
from tenancy.services import staff_organization
from tickets.models import Ticket

PAGE = 25
FIELDS = ("id", "subject", "status", "priority", "channel", "customer_id", "customer__name", "conversation_id",
          "assignee_id", "assignee__username", "team_id", "created_at", "updated_at", "first_response_due",
          "resolution_due", "first_responded_at", "resolved_at", "closed_at", "merged_into_id", "csat_score",
          "csat_comment")  # fmt: skip


def _organization(request: HttpRequest) -> Any:
    """The caller's organization from ``Authorization: Token <key>``: the API's own token check."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    try:
        user, _ = StaffTokenAuthentication().authenticate_credentials(header[6:].strip())
    except AuthenticationFailed:
        return None
    return staff_organization(user)


def _rows(tickets: Any) -> list[dict[str, Any]]:
    rows = list(tickets.values(*FIELDS))
    tags: dict[int, list[str]] = {}
    for ticket_id, name in Ticket.tags.through.objects.filter(ticket_id__in=[r["id"] for r in rows]).values_list(
        "ticket_id", "tag__name"
    ):
        tags.setdefault(ticket_id, []).append(name)
    for row in rows:
        row["tags"] = tags.get(row["id"], [])
    return rows


def bench_ticket_list(request: HttpRequest) -> JsonResponse:
    organization = _organization(request)
    if organization is None:
        return JsonResponse({"detail": "unauthorized"}, status=401)
    tickets = Ticket.objects.filter(organization=organization).order_by("-created_at")
    return JsonResponse({"count": tickets.count(), "results": _rows(tickets[:PAGE])})


@csrf_exempt
def bench_ticket(request: HttpRequest, pk: int) -> JsonResponse:
    organization = _organization(request)
    if organization is None:
        return JsonResponse({"detail": "unauthorized"}, status=401)
    tickets = Ticket.objects.filter(organization=organization, pk=pk)
    if request.method == "PATCH":
        tickets.update(priority=json.loads(request.body or b"{}").get("priority", "medium"))
    rows = _rows(tickets)
    return JsonResponse(rows[0] if rows else {"detail": "not found"}, status=200 if rows else 404)


def bench_kb_search(request: HttpRequest) -> JsonResponse:
    organization = _organization(request)
    if organization is None:
        return JsonResponse({"detail": "unauthorized"}, status=401)
    result = kb_search(organization_id=organization.pk, query=request.GET.get("q", ""), k=5)
    hits = [{"title": h.title, "url": h.url, "text": h.text, "score": h.score} for h in result.hits]
    return JsonResponse({"query": result.query, "confidence": result.confidence, "hits": hits})
