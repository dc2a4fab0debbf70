"""Tenancy's models moved out of tickets without touching a row: the upgrade from the old
layout keeps organizations, staff, teams, the audit trail and every role's permissions."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tenancy.models import AuditEntry, Organization, StaffProfile, Team

BEFORE_MOVE = [
    ("tenancy", None),
    ("tickets", "0009_escalation_notified_at"),
    ("knowledge", "0002_chunk"),
    ("agents", "0003_alter_sentimentmodel_metrics"),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([target for target in targets if target[1]]).apps


@pytest.mark.django_db(transaction=True)
def test_upgrade_from_the_old_layout_keeps_rows_and_permissions(django_user_model):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_MOVE)
    try:
        # The old layout: the same tables, owned by tickets.
        content_type = old.get_model("contenttypes", "ContentType")
        assert content_type.objects.filter(app_label="tickets", model="staffprofile").exists()
        assert not content_type.objects.filter(app_label="tenancy").exists()
        org = old.get_model("tickets", "Organization").objects.create(name="Old Co", slug="old-co", widget_key="k1")
        user = old.get_model("auth", "User").objects.create(username="veteran")
        old.get_model("tickets", "StaffProfile").objects.create(user=user, organization=org, role="supervisor")
        team = old.get_model("tickets", "Team").objects.create(organization=org, name="Returns")
        team.members.add(user)
        old.get_model("knowledge", "Category").objects.create(organization=org, name="Shipping")
        supervisors = old.get_model("auth", "Group").objects.get(name="Supervisor")
        granted_before = set(supervisors.permissions.values_list("pk", flat=True))
        assert granted_before
    finally:
        _migrate(latest)

    org = Organization.objects.get(slug="old-co")
    assert StaffProfile.objects.get(user__username="veteran").organization == org
    assert list(Team.objects.get(name="Returns").members.values_list("username", flat=True)) == ["veteran"]
    assert org.kb_categories.get().name == "Shipping"
    # Content types were relabelled, so the groups kept the very same permission rows.
    supervisors = Group.objects.get(name="Supervisor")
    assert set(supervisors.permissions.values_list("pk", flat=True)) == granted_before
    veteran = django_user_model.objects.get(username="veteran")
    veteran.groups.add(supervisors)
    assert veteran.has_perm("tenancy.view_staffprofile")
    assert not AuditEntry.objects.filter(organization=org).exists()
