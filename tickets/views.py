from django.http import FileResponse, HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from config.errors import DomainError
from tenancy.models import Organization
from tickets import services
from tickets.attachments import attachment_open


def demo_home(request: HttpRequest) -> HttpResponse:
    """The demo company's public site, which embeds the chat widget."""
    organization = Organization.objects.order_by("pk").first()
    return render(request, "demo/index.html", {"organization": organization})


@require_http_methods(["GET", "POST"])
def csat_survey(request: HttpRequest, token: str) -> HttpResponse:
    """The page a CSAT email links to: a 1-5 rating and a comment for one resolved ticket.
    A link preview (GET) never records anything; the customer's POST does."""
    context: dict[str, object] = {"scores": range(1, 6)}
    try:
        ticket = services.csat_link_read(token)
    except DomainError as exc:
        context["error"] = str(exc)
        return render(request, "tickets/csat.html", context, status=400)
    context["ticket"] = ticket
    if request.method == "POST":
        raw = request.POST.get("score", "")
        try:
            score = int(raw)
            ticket = services.ticket_csat_record(ticket=ticket, score=score, comment=request.POST.get("comment", ""))
        except (ValueError, DomainError) as exc:
            context["form_error"] = str(exc) if isinstance(exc, DomainError) else "Pick a rating from 1 to 5."
            return render(request, "tickets/csat.html", context, status=400)
        context.update(ticket=ticket, recorded=True)
    return render(request, "tickets/csat.html", context)


@require_http_methods(["GET"])
def attachment_download(request: HttpRequest, token: str) -> HttpResponseBase:
    """A file sent in a chat, for whoever holds a fresh signed link (the widget and staff get
    one with each message). Served as its checked type, never sniffed, never run as a page."""
    try:
        attachment = attachment_open(token)
    except DomainError as exc:
        return JsonResponse({"detail": str(exc)}, status=404)
    response = FileResponse(attachment.file.open("rb"), content_type=attachment.content_type, filename=attachment.name)
    response["Content-Disposition"] = response["Content-Disposition"].replace("attachment", "inline", 1)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"  # shown in the widget on the company's site
    response["Cache-Control"] = "private, max-age=300"
    return response
