from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tickets.models import Organization


def demo_home(request: HttpRequest) -> HttpResponse:
    """The demo company's public site, which embeds the chat widget."""
    organization = Organization.objects.order_by("pk").first()
    return render(request, "demo/index.html", {"organization": organization})
