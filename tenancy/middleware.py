"""A signed-in staff member's pages speak their language and show times in their organization's
time zone. It reads the profile once (tenancy.services.staff_profile), which every later read of
the staff member's organization in the request shares."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from tenancy.services import staff_organization, staff_profile


class StaffPreferencesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated or not user.is_staff:
            return self.get_response(request)
        profile = staff_profile(user)
        language = profile.language if profile else ""
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        organization = staff_organization(user)
        if organization is not None:
            timezone.activate(organization.zone)
        try:
            response = self.get_response(request)
        finally:
            timezone.deactivate()
        if language:
            response.headers.setdefault("Content-Language", language)
        return response
