from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from config.errors import DomainError
from tenancy.services import staff_language_set


@require_POST
@staff_member_required
def staff_language(request: HttpRequest) -> HttpResponse:
    """The language switch in the admin header: saved on the staff member's profile."""
    try:
        staff_language_set(user=request.user, language=request.POST.get("language", ""))
    except DomainError as exc:
        return HttpResponse(str(exc), status=400, content_type="text/plain; charset=utf-8")
    wanted = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        wanted = reverse("admin:index")
    return HttpResponseRedirect(wanted)
