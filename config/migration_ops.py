"""Migration operations shared by the apps' migrations."""

from typing import Any

from django.db import migrations


def postgresql_only(create: str, drop: str) -> migrations.RunPython:
    """SQL that only PostgreSQL runs (functions, triggers in plpgsql); SQLite, the embedded
    default of ``make run``, skips it, and the code that relies on it keeps a path without."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(create)

    def backwards(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(drop)

    return migrations.RunPython(forwards, backwards)
