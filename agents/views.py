from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenancy.services import staff_organization
from tickets import selectors


@staff_member_required
def console(request: HttpRequest) -> HttpResponse:
    """The staff console: the organization's recent chats, updated live over /ws/console/."""
    organization = staff_organization(request.user)
    conversations = (
        selectors.conversation_list(organization=organization).order_by("-started_at")[:50] if organization else []
    )
    return render(request, "agents/console.html", {"conversations": conversations, "organization": organization})
