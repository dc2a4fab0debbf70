"""Organizations (calendar, breach action), staff (profiles, teams, users) and the audit trail in
Django admin. Importing this package (Django's admin autodiscovery does) registers the pages."""

from tenancy.admin import audit, organization, staff  # noqa: F401
