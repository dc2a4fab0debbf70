"""How the staff API knows who is calling, with as few queries as a request can take: the
token, its user and the user's organization in one query, and the user's permissions from a
per-process copy read at most every PERMISSIONS_SECONDS (two queries each request before; a
tenth of a ticket list's time). Permission changes made in this process (role or group edits)
apply at once; those made in another process within PERMISSIONS_SECONDS."""

import threading
import time
from typing import Any

from django.contrib.auth.backends import ModelBackend
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

PERMISSIONS_SECONDS = 5.0

_permissions: dict[int, tuple[float, set[str]]] = {}
_lock = threading.Lock()


class StaffTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, as DRF's, reading the staff profile in the same query."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        token = Token.objects.select_related("user", "user__staff_profile__organization").filter(key=key).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        profile = getattr(user, "staff_profile", None)  # None: no profile row
        user._staff_organization = profile.organization if profile is not None else None
        return user, token


def permissions_load(user: Any) -> None:
    """Give ``user`` its permission set from this process's copy (what ModelBackend caches on
    the user object for one request), reading it again when older than PERMISSIONS_SECONDS."""
    if not getattr(user, "is_authenticated", False) or hasattr(user, "_perm_cache"):
        return
    now = time.monotonic()
    held = _permissions.get(user.pk)
    if held is None or now - held[0] > PERMISSIONS_SECONDS:
        held = (now, ModelBackend().get_all_permissions(user))
        with _lock:
            _permissions[user.pk] = held
    user._perm_cache = held[1]


def permissions_forget(*args: Any, **kwargs: Any) -> None:
    """A role, group or permission changed here: every user's permissions are read again."""
    with _lock:
        _permissions.clear()
