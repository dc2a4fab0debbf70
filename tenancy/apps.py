from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Organizations and staff"

    def ready(self) -> None:
        from tenancy.roles import staff_roles_sync_after_migrate

        # Groups and their permissions can only be set once every app's permissions exist.
        post_migrate.connect(staff_roles_sync_after_migrate, dispatch_uid="tenancy_staff_roles_sync")
