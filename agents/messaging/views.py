"""``/api/v1/messaging/<webhook key>``: every messaging account's webhook, one URL each (shown in
admin to copy into the provider's console). GET answers the provider's verification challenge;
POST is checked as the provider signs it, parsed, stored idempotently on the provider's ids,
and answered as the provider expects, quickly: the assistant's turn runs on a worker.

Refusals are JSON with a message and store nothing: 404 for an unknown key, 403 for a switched-off
account or a forged signature, 401 for a missing or stale one, 400 for what the provider would
not send."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from agents.messaging.adapters import StatusUpdate, WebhookRefused, adapter_for
from agents.messaging.inbound import messaging_receive, messaging_status_apply
from agents.messaging.models import MessagingAccount
from agents.messaging.voice import CallEvent, voice_call_event


def _refused(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


@csrf_exempt
def messaging_webhook(request: HttpRequest, key: str) -> HttpResponse:
    account = MessagingAccount.objects.select_related("organization").filter(webhook_key=key).first()
    if account is None:
        return _refused(404, "not_found", "No messaging account has this webhook URL.")
    if not account.active:
        return _refused(403, "inactive", f"The {account} account is switched off in Concierge.")
    adapter = adapter_for(account.provider)
    if request.method == "GET":
        return adapter.challenge(account, request)
    if request.method != "POST":
        return _refused(405, "method", "Providers POST their updates here.")
    try:
        adapter.verify(account, request)
        items = adapter.parse(account, request)
    except WebhookRefused as refused:
        return _refused(refused.status, "refused", refused.message)
    received = []
    for item in items:
        if isinstance(item, StatusUpdate):
            messaging_status_apply(account=account, update=item)
        elif isinstance(item, CallEvent):
            outcome = voice_call_event(account=account, event=item)
            if outcome is not None:
                received.append(outcome)
        else:
            received.append(messaging_receive(account=account, inbound=item))
    return adapter.ack(account, request, received)
