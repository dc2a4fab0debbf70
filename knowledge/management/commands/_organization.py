from django.core.management.base import CommandError

from tickets.models import Organization


def organization_from_option(slug: str | None) -> Organization:
    if slug:
        organization = Organization.objects.filter(slug=slug).first()
        if organization is None:
            raise CommandError(f"No organization with slug {slug!r}.")
        return organization
    organization = Organization.objects.order_by("pk").first()
    if organization is None:
        raise CommandError("No organization exists yet; run bootstrap_demo or create one in admin.")
    return organization
