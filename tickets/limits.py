"""Abuse limits: fixed-window counters in the cache (Redis in production, shared by every
process), used by the chat websocket and by DRF throttles on the widget and the API.

A limit that cannot be checked (the cache is down) lets the request through: limits protect
the service, and refusing every customer while Redis restarts would be the outage itself."""

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


def parse_rate(rate: str) -> tuple[int, int]:
    """ "20/min" -> (20, 60). Units: s, sec, min, h, hour, d, day."""
    count, _, unit = rate.partition("/")
    seconds = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
               "d": 86400, "day": 86400}.get(unit.strip().lower())  # fmt: skip
    if seconds is None or not count.strip().isdigit():
        raise ValueError(f"A rate looks like 20/min, not {rate!r}.")
    return int(count), seconds


def limit_hit(*, scope: str, ident: str, rate: str, now: float | None = None) -> Verdict:
    """Count one event for (scope, ident) against ``rate``; refuse it past the limit."""
    return limits_hit([(scope, ident, rate)], now=now)


def _counts(keys: list[tuple[str, int]]) -> list[int]:
    """Add one to each (key, timeout) counter, creating it at 0 first; returns the new counts.
    On Redis: one round trip for them all (a chat message checks three limits)."""
    client_of = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client_of is None:  # another cache backend (the embedded defaults): one call each
        counts = []
        for key, timeout in keys:
            cache.add(key, 0, timeout=timeout)
            counts.append(cache.incr(key))
        return counts
    pipe = client_of(write=True).pipeline(transaction=False)
    for key, timeout in keys:
        full = cache.make_and_validate_key(key)
        pipe.set(full, 0, ex=timeout, nx=True)
        pipe.incr(full)
    return [int(n) for n in pipe.execute()[1::2]]


def limits_hit(checks: list[tuple[str, str, str]], now: float | None = None) -> Verdict:
    """Count one event against each (scope, ident, rate); refuse it when any is past its limit
    (with the longest wait among those)."""
    now = time.time() if now is None else now
    keys, windows = [], []
    for scope, ident, rate in checks:
        allowed_count, window = parse_rate(rate)
        bucket = int(now // window)
        keys.append((f"limit:{scope}:{ident}:{bucket}", window + 5))
        windows.append((allowed_count, window, bucket))
    try:
        counts = _counts(keys)
    except Exception:  # fail open, see the module docstring
        logger.warning("rate limits %s not checked: cache unavailable", ", ".join(c[0] for c in checks))
        return Verdict(True)
    waits = [
        max(1, int((bucket + 1) * window - now))
        for count, (allowed_count, window, bucket) in zip(counts, windows, strict=True)
        if count > allowed_count
    ]
    return Verdict(False, retry_after=max(waits)) if waits else Verdict(True)


def client_ip(meta: dict[str, Any]) -> str:
    """The caller's address. Behind a proxy, the first X-Forwarded-For hop is trusted only
    when CONCIERGE_TRUST_X_FORWARDED_FOR is set (nginx and the ingress set it)."""
    if settings.CONCIERGE_TRUST_X_FORWARDED_FOR:
        forwarded = str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")[0].strip()
        if forwarded:
            return forwarded
    return str(meta.get("REMOTE_ADDR", "") or "unknown")


class _CacheSafeThrottle(SimpleRateThrottle):
    """DRF throttle on our counters: shared across processes, failing open, with Retry-After."""

    rate_setting = ""

    def get_rate(self) -> str | None:
        return settings.CONCIERGE_RATE_LIMITS.get(self.scope or "")

    def ident_for(self, request: Request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        if not self.rate:
            return True
        ident = self.ident_for(request)
        if ident is None:
            return True
        verdict = limit_hit(scope=self.scope or "", ident=ident, rate=self.rate)
        self._wait = verdict.retry_after
        return verdict.allowed

    def wait(self) -> float | None:
        return float(getattr(self, "_wait", 0)) or None


class WidgetSessionIpThrottle(_CacheSafeThrottle):
    scope = "widget_session_ip"

    def ident_for(self, request: Request) -> str | None:
        return client_ip(request.META)


class WidgetSessionOrganizationThrottle(_CacheSafeThrottle):
    scope = "widget_session_org"

    def ident_for(self, request: Request) -> str | None:
        key = request.data.get("widget_key") if hasattr(request, "data") and isinstance(request.data, dict) else None
        return str(key)[:64] if key else None


class StaffApiThrottle(_CacheSafeThrottle):
    """Per staff user for the authenticated API; per address for anonymous calls."""

    scope = "api_user"

    def ident_for(self, request: Request) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user-{user.pk}"
        return f"ip-{client_ip(request.META)}"
