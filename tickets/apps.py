from typing import Any

from django.apps import AppConfig


def _calendar_changed(sender: Any, organization_id: int, **kwargs: Any) -> None:
    from tickets.services import organization_sla_changed

    organization_sla_changed(organization_id=organization_id)


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = "Support desk"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from tenancy.models import BusinessHours, Holiday
        from tenancy.signals import organization_calendar_changed
        from tickets import checks  # noqa: F401  (registers the data-protection checks)
        from tickets.attachments import attachment_file_delete
        from tickets.models import Attachment, SlaPolicy
        from tickets.search import desk_corpus_register
        from tickets.services.sla import sla_settings_changed

        # Staff search: the desk corpus (tickets and messages) in the keyword index.
        desk_corpus_register()

        # A new time zone, business hours or holidays move the deadlines of open tickets.
        organization_calendar_changed.connect(_calendar_changed, dispatch_uid="tickets_calendar_changed")
        # ... and every process's copy of the SLA settings (services.sla_settings) is read again.
        for model in (SlaPolicy, BusinessHours, Holiday):
            for signal in (post_save, post_delete):
                signal.connect(sla_settings_changed, sender=model, dispatch_uid=f"tickets_sla_{model.__name__}")
        # A deleted attachment (purge, erasure) takes its stored file with it.
        post_delete.connect(attachment_file_delete, sender=Attachment, dispatch_uid="tickets_attachment_file")
