# Chinese texts use Chinese punctuation on purpose.
# ruff: noqa: RUF001
"""The demo shop's own order system, as small as it can be: one JSON endpoint answering an
order's status, behind a bearer token, and the assistant action that calls it (README,
"Assistant actions"). A company's real endpoint lives on its own servers; this one lets the
demo show the whole loop on one machine."""

import secrets
from datetime import timedelta
from hmac import compare_digest
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from agents.actions.models import ActionAuth, AssistantAction
from tenancy.models import Organization

# order number -> (status, carrier, days from today to delivery); made up for the demo.
DEMO_ORDERS: dict[str, tuple[str, str, int]] = {
    "4411": ("shipped", "UPS", 2),
    "55812": ("delivered", "DHL", -3),
    "10234": ("being packed", "UPS", 4),
    "20871": ("shipped", "Royal Mail", 5),
}
ACTION_NAME = "order_status"


def _action(organization: Organization) -> AssistantAction | None:
    return AssistantAction.objects.filter(organization=organization, name=ACTION_NAME).first()


@require_GET
def demo_order_status(request: HttpRequest, number: str) -> JsonResponse:
    organization = Organization.objects.filter(slug="trailhead").first()
    action = _action(organization) if organization is not None else None
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if action is None or not compare_digest(token.encode(), action.auth_secret.encode()):
        return JsonResponse({"error": "unauthorized"}, status=401)
    if number not in DEMO_ORDERS:
        return JsonResponse({"error": f"no order {number}"}, status=404)
    status, carrier, days = DEMO_ORDERS[number]
    delivery = (timezone.localdate() + timedelta(days=days)).strftime("%d %B")
    return JsonResponse({"order": number, "status": status, "carrier": carrier, "delivery": delivery})


def demo_order_action(organization: Organization) -> AssistantAction:
    """The demo's order-status action, pointing at this site's own endpoint (kept if present)."""
    existing = _action(organization)
    if existing is not None:
        return existing
    fields: dict[str, Any] = {
        "description": "Order status from the demo shop's order system (demo data).",
        "intent": "order_status",
        "examples": "where is my order\nhas my order shipped yet\nwhen will my parcel arrive",
        "url": f"{settings.CONCIERGE_PUBLIC_URL.rstrip('/')}/demo/api/orders/{{order}}",
        "inputs": "order",
        "auth": ActionAuth.BEARER,
        "auth_secret": secrets.token_urlsafe(24),
        "timeout_seconds": 3.0,
        # Demo data only: a real shop would ask for a signed-in customer (or the order's email).
        "requires_identified": False,
        "reply_en": "Order {order} is {status} ({carrier}); delivery on {delivery}.",
        "reply_zh": "订单 {order} 状态：{status}（{carrier}），预计 {delivery} 送达。",
    }
    return AssistantAction.objects.create(organization=organization, name=ACTION_NAME, **fields)
