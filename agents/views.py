from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse


@staff_member_required
def console(request: HttpRequest) -> HttpResponse:
    """The live inbox is the admin ticket list (views with live counts over /ws/console/, each
    ticket's page the workspace); /console/ leads there."""
    return HttpResponseRedirect(reverse("admin:tickets_ticket_changelist") + "?view=open")
