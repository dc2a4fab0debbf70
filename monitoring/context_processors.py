from django.http import HttpRequest

from config.version import __version__


def version(request: HttpRequest) -> dict[str, str]:
    """The running version, for the admin footer."""
    return {"concierge_version": __version__}
