from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Support desk"

    def ready(self) -> None:
        from tickets import checks  # noqa: F401  (registers the data-protection checks)
        from tickets.roles import staff_roles_sync_after_migrate

        # Groups and their permissions can only be set once every app's permissions exist.
        post_migrate.connect(staff_roles_sync_after_migrate, dispatch_uid="tickets_staff_roles_sync")
