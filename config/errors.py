from dataclasses import dataclass


class DomainError(Exception):
    """A business rule was violated. Views answer it with its HTTP status (400 unless a subclass
    says otherwise) and its message; commands print it as their one-line reason. Every app
    raises it or a subclass of it."""

    status_code = 400
    code = "invalid"


class NotAllowed(DomainError):
    """The caller may not do this (a website not allowed to embed the widget, a forged identity)."""

    status_code = 403
    code = "forbidden"

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


BUSY_RETRY_AFTER = 1  # seconds a client waits before trying again when the server is busy
BUSY_MESSAGE = "The service is busy: try again in a moment."
# The database out of reach (stopped, restarting, the network to it down): the pool already
# waited its timeout for a connection, so clients come back less eagerly than under overload.
UNAVAILABLE_RETRY_AFTER = 5
UNAVAILABLE_MESSAGE = "The service cannot reach its database just now: try again shortly."


def database_busy(exc: BaseException | None) -> bool:
    """Whether ``exc`` is Django's OperationalError for a connection pool that had no connection
    free within its timeout: overload, or a database the pool cannot reach (``database_pool_full``
    tells them apart). The request could not reach the database, so it did nothing, and the
    client may send it again: HTTP answers 503 with Retry-After either way."""
    from django.db import OperationalError
    from psycopg_pool import PoolTimeout

    return isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)


def database_pool_full() -> bool:
    """Whether every connection the default database's pool may open is open and in use: a pool
    timeout then means overload. With the database down the pool cannot keep its connections, so
    a timeout with room left in it means an outage."""
    from django.db import connection

    pool = getattr(connection, "pool", None)  # the PostgreSQL backend has one; others do not
    if pool is None:
        return False
    stats = pool.get_stats()
    return bool(stats["pool_size"] >= stats["pool_max"] and stats["pool_available"] == 0)


@dataclass(frozen=True)
class Refusal:
    """What a client is told when its request got no database connection in time: the ``code``
    (``busy`` for overload, ``unavailable`` for a database out of reach), a sentence for people
    (HTTP's; the chat has its own), and the seconds to wait before sending it again."""

    code: str
    message: str
    retry_after: int


def database_refusal(exc: BaseException | None) -> Refusal | None:
    """What to tell a client whose request raised ``exc``: nothing (None) unless it is a pool
    timeout (``database_busy``); then busy or unavailable, told apart by how full the pool is."""
    if not database_busy(exc):
        return None
    if database_pool_full():
        return Refusal("busy", BUSY_MESSAGE, BUSY_RETRY_AFTER)
    return Refusal("unavailable", UNAVAILABLE_MESSAGE, UNAVAILABLE_RETRY_AFTER)
