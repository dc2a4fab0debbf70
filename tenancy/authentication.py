"""How the staff API knows who is calling, with as few queries as a request can take: the
token, its user and the user's organization in one query, and the user's permissions from a
per-process copy read at most every PERMISSIONS_SECONDS (two queries each request before; a
tenth of a ticket list's time). Permission changes made in this process (role or group edits)
apply at once; those made in another process within PERMISSIONS_SECONDS.

The token's row (with its user, profile and organization) is kept per process too: compiling
and running that four-table query was a sixth of a ticket detail request's time (bench/README.md,
tenth round). A kept token serves for TOKEN_SECONDS, or while PostgreSQL has announced no change
to tokens, users, staff profiles or the organization (config.changes; the triggers of tenancy
migration 0006), up to TRUST_SECONDS. A token deleted or a user deactivated in this process is
refused at once (signals), in another within a notification's delay, or TOKEN_SECONDS where no
listener runs. Each request gets its own copy of the objects."""

import pickle
import threading
import time
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.db import transaction
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from config import changes

PERMISSIONS_SECONDS = 5.0
TOKEN_SECONDS = 2.0
TOKENS_KEPT = 1000  # distinct tokens kept at most; all are dropped past it


_permissions: dict[int, tuple[float, set[str]]] = {}
# token key -> (read at, organization id, config.changes.token of it, pickled Token)
_tokens: dict[str, tuple[float, int | None, tuple[int, int], bytes]] = {}
_lock = threading.Lock()


class StaffTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, as DRF's, reading the staff profile in the same query."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        token = _token_kept(key)
        if token is None:
            before = time.monotonic(), changes.moment()  # a change announced during the read is not missed
            token = Token.objects.select_related("user", "user__staff_profile__organization").filter(key=key).first()
            if token is None:
                raise exceptions.AuthenticationFailed("Invalid token.")
            _token_keep(key, token, before)
        user = token.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        profile = getattr(user, "staff_profile", None)  # None: no profile row
        user._staff_organization = profile.organization if profile is not None else None
        return user, token


def _token_kept(key: str) -> Token | None:
    """A fresh copy of the kept token, if it may still serve."""
    held = _tokens.get(key)
    if held is None:
        return None
    read_at, organization_id, since, data = held
    if not changes.still_good(read_at, TOKEN_SECONDS, organization_id, since):
        return None
    return pickle.loads(data)  # noqa: S301 - bytes this process pickled itself


def _token_keep(key: str, token: Token, before: tuple[float, tuple[int, int]]) -> None:
    profile = getattr(token.user, "staff_profile", None)
    organization_id = profile.organization_id if profile is not None else None
    since = changes.token(organization_id)
    if changes.moment() != before[1]:
        return  # something was announced during the read: not kept, read again next time
    with _lock:
        if len(_tokens) >= TOKENS_KEPT:
            _tokens.clear()
        _tokens[key] = (before[0], organization_id, since, pickle.dumps(token))


def tokens_forget() -> None:
    """Every kept token is read again."""
    with _lock:
        _tokens.clear()


def tokens_changed(*args: Any, using: str = "default", **kwargs: Any) -> None:
    """A token, user, staff profile or organization changed in this process (signals): every
    kept token is read again, now and once the change commits (a request reading meanwhile may
    have kept the row as it was)."""
    tokens_forget()
    transaction.on_commit(tokens_forget, using=using)


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
