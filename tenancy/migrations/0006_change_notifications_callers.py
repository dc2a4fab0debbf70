"""Triggers that announce writes to the rows the staff API keeps per process: tokens, users
and staff profiles (config.changes.WATCHED_CALLERS; tenancy.authentication)."""

from django.db import migrations

from config.changes import WATCHED_CALLERS, triggers_drop_sql, triggers_sql, watched_tables


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(triggers_sql(watched_tables(apps, WATCHED_CALLERS)))


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(triggers_drop_sql(watched_tables(apps, WATCHED_CALLERS), function=False))


class Migration(migrations.Migration):
    dependencies = [
        ("tenancy", "0005_audit_append_function"),
        ("agents", "0011_change_notifications"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(install, remove)]
