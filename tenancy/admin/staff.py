"""Staff: profiles (role, capacity, availability), teams, and the user admin with the profile inline."""

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from tenancy import services
from tenancy.admin_scoping import AuditedAdminMixin, OrganizationScopedAdmin
from tenancy.models import StaffProfile, Team

User = get_user_model()


@admin.register(StaffProfile)
class StaffProfileAdmin(OrganizationScopedAdmin):
    list_display = ["user", "role", "capacity", "is_available"]
    list_filter = ["role", "is_available"]
    list_select_related = ["user"]

    def save_model(self, request: HttpRequest, obj: StaffProfile, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Keep group membership in step with the role chosen here.
        services.staff_role_set(user=obj.user, role=obj.role)


@admin.register(Team)
class TeamAdmin(OrganizationScopedAdmin):
    list_display = ["name"]
    filter_horizontal = ["members"]


class StaffProfileInline(admin.StackedInline):
    model = StaffProfile
    can_delete = False
    fields = ["role", "capacity", "is_available"]
    extra = 0


admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(AuditedAdminMixin, DjangoUserAdmin):
    """Users, limited to one's own organization's staff for everyone but the operator."""

    inlines = [StaffProfileInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request).select_related("staff_profile")
        organization = services.staff_organization(request.user)
        if request.user.is_superuser and organization is None:
            return queryset
        return queryset.filter(staff_profile__organization=organization)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not request.user.is_superuser:
            # Only the operator hands out superuser rights; everyone else makes staff.
            obj.is_superuser = False
            obj.is_staff = True
        super().save_model(request, obj, form, change)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        organization = services.staff_organization(request.user)
        if organization is not None:
            services.staff_profile_ensure(user=form.instance, organization=organization)
