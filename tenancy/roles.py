"""The three staff roles as Django groups, with the permissions each one holds.

Agent works tickets; Supervisor also manages customers, macros and teams and reads reports;
Admin also manages staff, SLA policies, business hours, the knowledge base and the chat widget
(its look, allowed websites and identity secret). Audit events
are never editable by anyone.
"""

from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

from tenancy.models import StaffRole

ROLE_GROUP_NAMES = {StaffRole.AGENT: "Agent", StaffRole.SUPERVISOR: "Supervisor", StaffRole.ADMIN: "Admin"}

_AGENT = {
    "tickets": {
        "ticket": ["view", "change", "add"],
        "ticketnote": ["view", "add"],
        "ticketevent": ["view"],
        "customer": ["view"],
        "conversation": ["view", "add"],
        "message": ["view", "add"],
        "sentimentrecord": ["view", "change"],  # correcting a message's mood
        "macro": ["view"],
        "tag": ["view", "add"],
    },
    "tenancy": {"team": ["view"]},
    "knowledge": {"article": ["view"], "category": ["view"]},
    # what was received and sent, with delivery state; the phone line's voicemails and missed calls
    "agents": {"emailrecord": ["view"], "messagingrecord": ["view"], "voicecall": ["view"]},
}
_SUPERVISOR = {
    "tickets": {
        "customer": ["add", "change"],  # merging two customers too
        "macro": ["add", "change", "delete"],
        "tag": ["change", "delete"],
        "slapolicy": ["view"],
        "report": ["view"],
    },
    "tenancy": {
        "team": ["add", "change"],
        "staffprofile": ["view"],
        "auditentry": ["view"],
        "businesshours": ["view"],
        "holiday": ["view"],
    },
    "knowledge": {"article": ["add", "change"], "category": ["add", "change"]},
    "agents": {
        "intentexample": ["view", "add", "change", "delete"],
        "intentmodel": ["view", "change"],
        "modelexperiment": ["view", "add", "change"],
        "intentpolicy": ["view", "add", "change", "delete"],  # what the assistant does per intent
        "assistantaction": ["view"],
    },
}
_ADMIN = {
    "tickets": {
        "slapolicy": ["add", "change", "delete"],
        "customer": ["delete"],
    },
    "tenancy": {
        "staffprofile": ["add", "change", "delete"],
        "team": ["delete"],
        "organization": ["view", "change"],
        "businesshours": ["add", "change", "delete"],
        "holiday": ["add", "change", "delete"],
    },
    "knowledge": {"article": ["delete"], "category": ["delete"]},
    "agents": {
        "widgetsettings": ["view", "add", "change"],
        "widgetorigin": ["view", "add", "change", "delete"],
        "emailchannel": ["view", "add", "change"],
        "emailmailbox": ["view", "add", "change", "delete"],
        "emailprovider": ["view", "add", "change", "delete"],
        "messagingaccount": ["view", "add", "change", "delete"],  # WhatsApp, Telegram, WeChat, Twilio, API
        "assistantaction": ["add", "change", "delete"],  # holds credentials to the organization's systems
    },
    "auth": {"user": ["view", "add", "change"]},
}


def _merged(*grants: dict[str, dict[str, list[str]]]) -> dict[str, set[str]]:
    """Flatten grants into {app_label: {codename, ...}}."""
    codenames: dict[str, set[str]] = {}
    for grant in grants:
        for app_label, models in grant.items():
            for model, actions in models.items():
                codenames.setdefault(app_label, set()).update(f"{action}_{model}" for action in actions)
    return codenames


ROLE_PERMISSIONS = {
    StaffRole.AGENT: _merged(_AGENT),
    StaffRole.SUPERVISOR: _merged(_AGENT, _SUPERVISOR),
    StaffRole.ADMIN: _merged(_AGENT, _SUPERVISOR, _ADMIN),
}


def staff_roles_sync() -> None:
    """Create the role groups and set exactly their permissions. Safe to run again."""
    for role, codenames_by_app in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=ROLE_GROUP_NAMES[role])
        query = Q(pk__in=[])
        for app_label, codenames in codenames_by_app.items():
            query |= Q(content_type__app_label=app_label, codename__in=codenames)
        group.permissions.set(Permission.objects.filter(query))


def staff_roles_sync_after_migrate(app_config: Any = None, **kwargs: Any) -> None:
    # post_migrate is sent once per app; permissions of every app exist only at the last one.
    from django.apps import apps

    # Django sends it only for apps with a models module.
    with_models = [config for config in apps.get_app_configs() if config.models_module is not None]
    if app_config is with_models[-1]:
        staff_roles_sync()
