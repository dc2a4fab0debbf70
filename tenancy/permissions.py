from typing import Any

from rest_framework.permissions import DjangoModelPermissions

from tenancy.authentication import permissions_load
from tenancy.services import staff_organization


class IsOrganizationStaff(DjangoModelPermissions):
    """A signed-in staff member of an organization, holding the model permission of the
    request's method (view to read, add to create and act, change to edit, delete to delete).

    Views without a queryset (search, schema helpers) only need the organization."""

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": [],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Any, view: Any) -> bool:
        if staff_organization(request.user) is None:
            return False
        if getattr(view, "queryset", None) is None and not hasattr(view, "get_queryset"):
            return True
        permissions_load(request.user)
        return super().has_permission(request, view)
