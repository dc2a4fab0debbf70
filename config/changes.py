"""Rows that change rarely, cached in each process, and PostgreSQL telling the processes when
they change.

A chat turn reads several things that change a few times a day: the active intent and
sentiment models, running A/B tests, intent policies, actions, the organization's profile, the
knowledge base's fingerprint. Each process cached them and read them again every 1-2 s (a query
per turn was a tenth of the turn's database work). After a quiet spell every one had expired,
so the first turn paid for all the reads again: 37-39 ms against 27 ms back to back, and a
fresh worker's first turn always came after one (bench/cold_start.py, issue 14).

Now triggers on the tables those reads come from (migration agents 0011) send a PostgreSQL
notification on ``CHANNEL`` when a row is written, with the table and the row's organization,
and each serving process listens on a connection of its own (``changes_listen``, started when
a web worker warms). A cached value then stays good for as long as no change of its
organization has been announced since it was read (``token`` before the read, ``still_good``
on each use), up to TRUST_SECONDS. A change without an organization (a model for every
organization, a table emptied) drops everything. While the listener is not connected (before
it starts, after its connection drops, and always outside the web workers and without
PostgreSQL) ``unchanged`` is False and the caches expire after their own seconds, as before;
reconnecting drops everything too, since changes made meanwhile were not heard."""

import logging
import threading
import time
from typing import Any

logger = logging.getLogger(__name__)

CHANNEL = "concierge_changes"
# A cached value is read again after this long even when no change was announced.
TRUST_SECONDS = 300.0
HEARTBEAT_SECONDS = 20.0  # a query on the listening connection this often: a dead link shows
RETRY_SECONDS = 1.0

# (app, model, the column holding a row's organization: the table's own id for organizations)
WATCHED = (
    ("agents", "IntentModel", "organization_id"),
    ("agents", "SentimentModel", "organization_id"),
    ("agents", "ModelExperiment", "organization_id"),
    ("agents", "IntentPolicy", "organization_id"),
    ("agents", "AssistantAction", "organization_id"),
    ("agents", "EmailChannel", "organization_id"),
    ("tenancy", "Organization", "id"),
    ("tenancy", "BusinessHours", "organization_id"),
    ("knowledge", "Chunk", "organization_id"),
)
# The staff API's callers (tenancy.authentication keeps tokens; tenancy migration 0006). Tokens
# and users have no organization column (""): a change to one drops everything.
WATCHED_CALLERS = (
    ("authtoken", "Token", ""),
    ("auth", "User", ""),
    ("tenancy", "StaffProfile", "organization_id"),
)


def watched_tables(apps: Any, watched: tuple[tuple[str, str, str], ...] = WATCHED) -> dict[str, str]:
    """table -> organization column, from an app registry (a migration's, or the live one)."""
    return {apps.get_model(app, model)._meta.db_table: column for app, model, column in watched}


_lock = threading.Lock()
_epoch = 0  # moves when everything is dropped
_generations: dict[int, int] = {}  # organization -> changes heard
_heard = 0  # changes heard in all
_listening = threading.Event()
_listener: "Listener | None" = None


def token(organization_id: int | None) -> tuple[int, int]:
    """Take before reading what a cache keeps for this organization; ``unchanged`` compares."""
    with _lock:
        return _epoch, _generations.get(organization_id or 0, 0)


def moment() -> tuple[int, int]:
    """Take before a read whose organization is known only after it; if ``moment()`` is the
    same after the read, nothing was announced meanwhile and ``token`` of that organization,
    taken then, stands for the read."""
    with _lock:
        return _epoch, _heard


def unchanged(organization_id: int | None, since: tuple[int, int]) -> bool:
    """True when the listener is connected and no change of this organization (or of every
    organization) was announced since ``since`` was taken."""
    return _listening.is_set() and token(organization_id) == since


def still_good(read_at: float, seconds: float, organization_id: int | None, since: tuple[int, int]) -> bool:
    """Whether a cached value read at ``read_at`` (``time.monotonic()``), with ``since`` taken
    before the read, may serve now: younger than its own ``seconds``, or younger than
    TRUST_SECONDS with no change of its organization announced since."""
    age = time.monotonic() - read_at
    return age < seconds or (age < TRUST_SECONDS and unchanged(organization_id, since))


def changes_heard(payload: str) -> None:
    """One notification: ``table:organization id``, or ``table:`` for a change of all."""
    global _epoch, _heard
    _, _, organization = payload.partition(":")
    with _lock:
        _heard += 1
        if organization.isdigit():
            _generations[int(organization)] = _generations.get(int(organization), 0) + 1
        else:
            _epoch += 1


def _drop_everything() -> None:
    global _epoch
    with _lock:
        _epoch += 1


class Listener(threading.Thread):
    """LISTEN on a connection of its own, outside the pool; reconnects until stopped."""

    def __init__(self) -> None:
        super().__init__(name="change-listener", daemon=True)
        self.stopping = threading.Event()
        self.connection: Any = None

    def run(self) -> None:
        failing = False  # warned already for the outage going on
        while not self.stopping.is_set():
            try:
                self._listen()
            except Exception:  # the database restarted or went away: expire as before, retry
                if _listening.is_set() or not failing:  # once an outage, not every retry
                    logger.warning(
                        "not hearing changes; cached rows expire on their own until reconnected", exc_info=True
                    )
                failing = True
            finally:
                _listening.clear()
                _drop_everything()
                self._close()
            self.stopping.wait(RETRY_SECONDS)

    def _listen(self) -> None:
        import psycopg
        from django.db import connection

        params = connection.get_connection_params()
        self.connection = psycopg.Connection.connect(**params, autocommit=True)
        self.connection.execute(f"LISTEN {CHANNEL}")
        _drop_everything()  # what changed before this moment was not heard
        _listening.set()
        last_beat = time.monotonic()
        while not self.stopping.is_set():
            for notify in self.connection.notifies(timeout=1.0):
                changes_heard(notify.payload)
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                self.connection.execute("SELECT 1")
                last_beat = time.monotonic()

    def _close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken
                logger.debug("closing the listening connection failed", exc_info=True)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)


def changes_listen(wait: float = 2.0) -> bool:
    """Start this process's listener (PostgreSQL only; once) and wait up to ``wait`` seconds for
    it to connect. Returns whether it listens."""
    global _listener
    from django.db import connection

    if connection.vendor != "postgresql":
        return False
    with _lock:
        if _listener is None or not _listener.is_alive():
            _listener = Listener()
            _listener.start()
    return _listening.wait(wait)


def changes_stop() -> None:
    """Stop listening (process exit, tests); the caches expire on their own again."""
    global _listener
    with _lock:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stop()
    _listening.clear()


def listening() -> bool:
    return _listening.is_set()


def triggers_sql(tables: dict[str, str]) -> str:
    """The trigger function and a trigger on each watched table (agents migration 0011)."""
    function = f"""
CREATE OR REPLACE FUNCTION concierge_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    new_org text := CASE WHEN TG_LEVEL = 'ROW' AND TG_OP <> 'DELETE' THEN to_jsonb(NEW) ->> TG_ARGV[0] END;
    old_org text := CASE WHEN TG_LEVEL = 'ROW' AND TG_OP <> 'INSERT' THEN to_jsonb(OLD) ->> TG_ARGV[0] END;
BEGIN
    IF TG_LEVEL = 'STATEMENT' THEN  -- TRUNCATE: every organization
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':');
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || coalesce(new_org, ''));
    END IF;
    IF TG_OP <> 'INSERT' AND old_org IS DISTINCT FROM new_org THEN
        PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME || ':' || coalesce(old_org, ''));
    END IF;
    RETURN NULL;
END $$;"""
    triggers = [
        f"""
DROP TRIGGER IF EXISTS concierge_change ON {table};
CREATE TRIGGER concierge_change AFTER INSERT OR UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION concierge_notify_change('{column}');
DROP TRIGGER IF EXISTS concierge_change_truncate ON {table};
CREATE TRIGGER concierge_change_truncate AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION concierge_notify_change('{column}');"""
        for table, column in tables.items()
    ]
    return function + "".join(triggers)


def triggers_drop_sql(tables: dict[str, str], function: bool = True) -> str:
    """Drop the triggers on ``tables``, and the trigger function unless ``function`` is False
    (other tables' triggers still use it)."""
    drops = [
        f"DROP TRIGGER IF EXISTS concierge_change ON {t}; DROP TRIGGER IF EXISTS concierge_change_truncate ON {t};"
        for t in tables
    ]
    return "\n".join(drops) + ("\nDROP FUNCTION IF EXISTS concierge_notify_change();" if function else "")
