"""The support desk in Django admin, one module per area. Importing this package (Django's admin
autodiscovery does) registers every page; every change goes through tickets.services."""

from django.contrib import admin

from tickets.admin import configuration, customers, reports, ticket  # noqa: F401

admin.site.site_header = "Concierge support desk"
admin.site.site_title = "Concierge"
admin.site.index_title = "Work the queue"
