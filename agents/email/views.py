"""``POST /api/v1/email/inbound/<organization slug>``: a self-hosted MTA pipes raw mail here
(the body is the message as received, RFC 5322 bytes), authenticated by the organization's
inbound secret as ``Authorization: Bearer <secret>``. Answers 202 with what became of it, 401
for a missing or wrong secret, 404 for an organization without an email channel, 400 for what
is not an email, 413 over the size limit; nothing is stored unless it is answered 202."""

import hmac

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from agents.email.inbound import email_receive
from agents.email.parsing import MAX_RAW_BYTES
from agents.models import EmailChannel
from config.errors import DomainError


@csrf_exempt
@require_POST
def email_inbound(request: HttpRequest, slug: str) -> JsonResponse:
    channel = EmailChannel.objects.select_related("organization").filter(organization__slug=slug).first()
    if channel is None:
        return JsonResponse({"error": "not_found", "message": "This organization receives no email."}, status=404)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(secret.strip().encode(), channel.inbound_secret.encode()):
        return JsonResponse(
            {"error": "bad_secret", "message": "Send the channel's inbound secret as 'Authorization: Bearer …'."},
            status=401,
        )
    if int(request.headers.get("Content-Length") or 0) > MAX_RAW_BYTES:
        limit = f"Emails are limited to {MAX_RAW_BYTES // 2**20} MB."
        return JsonResponse({"error": "too_large", "message": limit}, status=413)
    try:
        received = email_receive(raw=request.body, organization=channel.organization)
    except DomainError as exc:
        return JsonResponse({"error": "invalid", "message": str(exc)}, status=400)
    return JsonResponse(
        {
            "status": received.outcome,
            "conversation_id": received.conversation_id,
            "reason": received.record.reason,
        },
        status=202,
    )
