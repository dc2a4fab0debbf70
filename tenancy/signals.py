"""Signals tenancy sends so that apps above it can react without tenancy importing them."""

from django.dispatch import Signal

# An organization's time zone, business hours or holidays changed; kwargs: organization_id.
organization_calendar_changed = Signal()
