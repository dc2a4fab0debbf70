"""Triggers that announce writes to the rows the chat turn caches (config.changes)."""

from django.db import migrations

from config.changes import triggers_drop_sql, triggers_sql, watched_tables


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(triggers_sql(watched_tables(apps)))


def remove(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(triggers_drop_sql(watched_tables(apps)))


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0010_messaging_channels"),
        ("knowledge", "0003_organization_in_tenancy"),
        ("tenancy", "0005_audit_append_function"),
    ]

    operations = [migrations.RunPython(install, remove)]
