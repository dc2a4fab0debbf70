from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_delete, post_migrate, post_save


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Organizations and staff"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from rest_framework.authtoken.models import Token

        from tenancy.authentication import permissions_forget, tokens_changed
        from tenancy.models import Organization, StaffProfile
        from tenancy.roles import staff_roles_sync_after_migrate

        # Groups and their permissions can only be set once every app's permissions exist.
        post_migrate.connect(staff_roles_sync_after_migrate, dispatch_uid="tenancy_staff_roles_sync")
        # The API's per-process copy of permissions follows role and group changes made here.
        user = get_user_model()
        for through in (user.groups.through, user.user_permissions.through, Group.permissions.through):
            m2m_changed.connect(permissions_forget, sender=through, dispatch_uid=f"tenancy_perms_{through.__name__}")
        # The API's kept tokens (with their user, profile and organization) follow changes made here.
        for model in (Token, user, StaffProfile, Organization):
            for event, signal in (("saved", post_save), ("deleted", post_delete)):
                signal.connect(tokens_changed, sender=model, dispatch_uid=f"tenancy_tokens_{model.__name__}_{event}")
