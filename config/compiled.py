"""Hot model queries compiled to SQL once per process instead of on every call.

Django builds the SQL of a queryset each time it runs. For a small query with joins that is most
of its cost in Python: the staff API's ticket edit locks its ticket with its customer,
organization and assignee in one query, and building that query took about a sixth of a web
worker's time under edits (py-spy, bench/README.md "Scale work"). A ``CompiledQuery`` builds the
queryset once per database (with marker values for its arguments), keeps the SQL, the parameters
and Django's own description of the columns, and then only swaps the arguments in, runs the SQL
through the connection's cursor (so query logging, timing and the connection's wrappers still
apply) and makes the model instances the way Django's ModelIterable does, select_related objects
included, with the fields' converters applied.

Arguments are integers (ids), strings compared as they are, or lists of integers compared with
``AnyOf`` (one parameter however many there are), and the querysets give model instances
(``only()`` included; not annotations) or, built with ``values_list()``, tuples of those columns
(``tuples()``): enough for the locks and lookups on the hot paths. The shape of the SQL must not
depend on the values (``pk__in`` makes a parameter of each id: use ``AnyOf``).

The writes of a chat turn's rows, likewise: ``row_insert`` (a new instance, as ``save()`` inserts
it), ``fields_update`` (as ``save(update_fields=...)``) and ``row_update`` (as a ``QuerySet.update()``
by primary key) keep each statement's SQL per model and fields, and prepare each value as Django
does (``pre_save``, ``get_db_prep_save``: encrypted texts are encrypted). Django's save built the
INSERT or UPDATE anew each time (py-spy, bench/README.md)."""

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Lookup, Model, QuerySet
from django.db.models.query import ModelIterable, ValuesListIterable, get_related_populators  # type: ignore[attr-defined]  # Django's own, unstubbed
from django.db.transaction import TransactionManagementError

# Marker values for the arguments while the queryset is built, one per argument, so each is found
# at exactly one place among the parameters: integers inside a 32-bit column's range (Django turns
# a comparison with a value past the range into a constant), texts no one sends.
_MARKER_BASE = 2_146_000_000


def _marker(n: int, kind: type) -> Any:
    if kind is list:
        return [_MARKER_BASE + n]
    return _MARKER_BASE + n if kind is int else f"\x1fconfig.compiled argument {n}\x1f"


class AnyOf(Lookup):
    """``AnyOf(F("pk"), ids)``: the column is one of a list of integers, passed as one parameter,
    a text (PostgreSQL ``= ANY(%s::bigint[])`` with ``{1,2}``; SQLite ``IN (SELECT value FROM
    json_each(%s))`` with ``[1,2]``). ``pk__in`` makes a parameter of each id, so its SQL changes
    with their number, and psycopg parses anew, on every call, a statement of more than 50
    parameters (knowledge.search's passages by id: 61 of them); psycopg's array dumper, in Python,
    took longer than the text does."""

    lookup_name = "any_of"
    prepare_rhs = False

    @staticmethod
    def parameter(values: list[int], vendor: str) -> str:
        listed = ",".join(str(int(value)) for value in values)
        return f"{{{listed}}}" if vendor == "postgresql" else f"[{listed}]"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        parameter = self.parameter(self.rhs, connection.vendor)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, parameter]
        # the column's SQL as Django compiled it, not a value: the values are the parameter
        return f"{lhs} IN (SELECT value FROM json_each(%s))", [*lhs_params, parameter]  # noqa: S608


ModelT = TypeVar("ModelT", bound=Model)


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[str, int], ...]  # (argument, its index among the parameters)
    compiler: Any  # the compiler that built the SQL: its select and klass_info describe the row
    populators: list[Any]  # select_related objects, as ModelIterable fills them
    model: Any  # None: a values_list() query, whose rows are tuples
    fields: list[Any]  # the row's columns, whose converters each call takes with its connection
    init_list: list[str]
    model_slice: tuple[int, int]
    for_update: bool


class CompiledQuery(Generic[ModelT]):
    """``build(**arguments)`` returns the queryset; ``rows(**arguments)`` runs it with those
    values. ``arguments``: each argument's name and type, ``int``, ``str`` or ``list`` (of
    integers, compared with ``AnyOf``)."""

    def __init__(self, build: Callable[..., QuerySet[ModelT]], **arguments: type) -> None:
        if set(arguments.values()) - {int, str, list}:
            raise ValueError("arguments are int, str or list")
        self.build = build
        self.arguments = arguments
        self._plans: dict[tuple[str, str], _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, alias: str) -> _Plan:
        key = (alias, connections[alias].vendor)
        plan = self._plans.get(key)
        if plan is None:
            with self._lock:
                plan = self._plans.get(key) or self._prepare(alias)
                self._plans[key] = plan
        return plan

    def _prepare(self, alias: str) -> _Plan:
        markers = {name: _marker(n, kind) for n, (name, kind) in enumerate(self.arguments.items())}
        queryset = self.build(**markers).using(alias)
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        slots = []
        for name, marker in markers.items():
            # isinstance: PostgreSQL's comparisons pass an integer as a psycopg Int4 or Int8 (an int)
            if isinstance(marker, list):  # one parameter, a text (see AnyOf)
                marker = AnyOf.parameter(marker, connections[alias].vendor)
            found = [n for n, value in enumerate(params) if isinstance(value, type(marker)) and value == marker]
            if len(found) != 1:
                raise ValueError(f"argument {name!r} appears {len(found)} times in the query's parameters")
            slots.append((name, found[0]))
        klass_info, select = compiler.klass_info, compiler.select
        instances = queryset._iterable_class is ModelIterable
        if not instances and queryset._iterable_class is not ValuesListIterable:
            raise ValueError("the querysets give model instances or, with values_list(), tuples")
        if instances and (compiler.annotation_col_map or getattr(queryset, "_known_related_objects", None)):
            raise ValueError("annotations and known related objects are not supported")
        # values_list(): the selected columns as they are, converted, with no model around them
        start, end = (klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1) if instances else (0, 0)
        return _Plan(
            sql=sql,
            params=tuple(params),
            slots=tuple(slots),
            compiler=compiler,
            populators=get_related_populators(klass_info, select, alias) if instances else [],
            model=klass_info["model"] if instances else None,
            fields=[column[0] for column in select[: compiler.col_count]],
            init_list=[column[0].target.attname for column in select[start:end]],
            model_slice=(start, end),
            # as Django checks it: only where the database has row locks (not SQLite)
            for_update=bool(queryset.query.select_for_update) and connections[alias].features.has_select_for_update,
        )

    def rows(self, using: str = DEFAULT_DB_ALIAS, **values: int | str | list[int]) -> list[ModelT]:
        """The model instances the queryset built with these values would give."""
        plan = self._plan(using)
        if plan.model is None:
            raise TypeError("a values_list() query gives tuples: call tuples()")
        fetched = self._fetched(plan, using, values)
        start, end = plan.model_slice
        found = []
        for row in fetched:
            instance = plan.model.from_db(using, plan.init_list, row[start:end])
            for populator in plan.populators:
                populator.populate(row, instance)
            found.append(instance)
        return found

    def tuples(self, using: str = DEFAULT_DB_ALIAS, **values: int | str | list[int]) -> list[tuple[Any, ...]]:
        """The rows a values_list() queryset built with these values would give."""
        plan = self._plan(using)
        if plan.model is not None:
            raise TypeError("a model query gives instances: call rows()")
        return [tuple(row) for row in self._fetched(plan, using, values)]

    def _fetched(self, plan: _Plan, using: str, values: dict[str, int | str | list[int]]) -> list[Any]:
        """The plan's rows with these values, each column through its converters."""
        connection = connections[using]
        if plan.for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = list(plan.params)
        for name, index in plan.slots:
            kind, value = self.arguments[name], values[name]
            if kind is list:  # as AnyOf passes it
                params[index] = AnyOf.parameter(value, connection.vendor)  # type: ignore[arg-type]
            else:
                # the same type as the marker's parameter had (psycopg's Int4, say): the SQL expects it
                params[index] = type(plan.params[index])(kind(value))
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            fetched = cursor.fetchall()
        compiler, converters = self._converters(plan, connection)
        if converters:
            fetched = [list(row) for row in compiler.apply_converters(fetched, converters)]
        return fetched

    @staticmethod
    def _converters(plan: _Plan, connection: Any) -> tuple[Any, Any]:
        """The plan's compiler bound to this connection and the columns' converters, found once
        per connection (a connection belongs to one thread, and so does what it keeps)."""
        kept: dict[int, tuple[_Plan, Any, Any]] = connection.__dict__.setdefault("_compiled_converters", {})
        found = kept.get(id(plan))
        if found is None or found[0] is not plan:
            compiler = copy.copy(plan.compiler)
            compiler.connection = connection  # converters take this thread's connection
            found = kept[id(plan)] = (plan, compiler, compiler.get_converters(plan.fields))
        return found[1], found[2]

    def one(self, using: str = DEFAULT_DB_ALIAS, **values: int | str | list[int]) -> ModelT | None:
        """The first instance, or None."""
        found = self.rows(using, **values)
        return found[0] if found else None

    def get(self, using: str = DEFAULT_DB_ALIAS, **values: int | str | list[int]) -> ModelT:
        """The first instance; the model's DoesNotExist, as QuerySet.get raises it, when none."""
        found = self.one(using, **values)
        if found is None:
            model = self._plan(using).model
            raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")
        return found


# --- writes ------------------------------------------------------------------------------------

# (kind, model, ..., database) -> (the SQL, or "" where the ORM writes it, the fields written)
_write_sql: dict[tuple[Any, ...], tuple[str, list[Any]]] = {}


def _plain_fields(model: type[Model], fields: list[Any]) -> bool:
    """Whether Django writes these fields of the model as plain ``%s`` values in one table (what
    these statements assume); else the ORM writes them."""
    return not model._meta.parents and not any(
        hasattr(field, "get_placeholder") or getattr(field, "generated", False) or field.has_db_default()
        for field in fields
    )


def _signalled(model: type[Model]) -> bool:
    """Whether a receiver listens to the model's saves (then the ORM saves it, and sends them)."""
    from django.db.models import signals

    return signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model)


def row_update(model: type[Model], pk: Any, values: dict[str, Any], using: str = DEFAULT_DB_ALIAS) -> int:
    """``UPDATE`` the row ``pk`` of ``model`` with ``values`` (field name -> value, prepared as
    ``QuerySet.update`` prepares a plain value; no signals, as there), the SQL built once per
    model, fields and database. Returns the rows updated."""
    connection = connections[using]
    key = ("update", model, tuple(values), using)
    found = _write_sql.get(key)
    if found is None:
        meta, quote = model._meta, connection.ops.quote_name
        fields: list[Any] = [meta.get_field(name) for name in values]
        sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        pk_column = quote(str(meta.pk.column))
        sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {pk_column} = %s"  # noqa: S608 (quoted names)
        found = _write_sql[key] = (sql if _plain_fields(model, fields) else "", fields)
    sql, fields = found
    if not sql:
        return model._base_manager.using(using).filter(pk=pk).update(**values)
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values.values(), strict=True)]
    params.append(model._meta.pk.get_db_prep_value(pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def fields_update(instance: Model, names: list[str] | tuple[str, ...], using: str = DEFAULT_DB_ALIAS) -> None:
    """What ``instance.save(update_fields=names)`` writes (each field's ``pre_save`` included),
    the SQL built once; the ORM's save where a receiver listens to the model's saves. Raises
    DatabaseError when the row is gone, as Django's save does."""
    from django.db import DatabaseError

    if _signalled(type(instance)):
        instance.save(update_fields=names, using=using)
        return
    fields: list[Any] = [instance._meta.get_field(name) for name in names]
    values = {field.name: field.pre_save(instance, False) for field in fields}
    if row_update(type(instance), instance.pk, values, using) != 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")


def row_insert(instance: Model, using: str = DEFAULT_DB_ALIAS) -> None:
    """``INSERT`` a new instance as ``instance.save(force_insert=True)`` does (each field's
    ``pre_save``, an automatic primary key returned and set), with the SQL built once per model
    and database; the ORM's save where that is not a plain statement (signal receivers, parents,
    database defaults or generated columns)."""
    model = type(instance)
    meta = model._meta
    connection = connections[using]
    key = ("insert", model, instance.pk is None, using)
    found = _write_sql.get(key)
    if found is None:
        fields = [f for f in meta.local_concrete_fields if not (instance.pk is None and f is meta.auto_field)]
        quote = connection.ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608
        if instance.pk is None:
            sql += f" RETURNING {quote(meta.pk.column)}"
        plain = _plain_fields(model, fields) and connection.features.can_return_columns_from_insert
        found = _write_sql[key] = (sql if plain and (instance.pk is not None or meta.auto_field) else "", fields)
    sql, fields = found
    if not sql or _signalled(model):
        instance.save(force_insert=True, using=using)
        return
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if instance.pk is None:
            instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = using


@contextmanager
def prepared_kept(using: str = DEFAULT_DB_ALIAS) -> Iterator[int]:
    """Inside the block, a rollback on the connection keeps the statements it has prepared
    (``DATABASE_PREPARED``); gives the number of runs after which a statement is prepared (0
    where nothing is). psycopg forgets and deallocates all of them at any ROLLBACK (a savepoint's
    too), in case the rollback undid a DROP or an ALTER a kept plan depends on; PostgreSQL's
    prepared statements are not transactional, so a block that changes no schema can keep them.
    The boot's rehearsed chat turn (``agents.services.assistant_rehearse``) rolls back: with this
    its statements stay prepared on the turn threads' connections, and a fresh worker's first
    customer no longer runs them unprepared (bench/cold_start.py, issue 14)."""
    connection = connections[using]
    connection.ensure_connection()
    manager = getattr(connection.connection, "_prepared", None)  # psycopg's PrepareManager (pinned)
    threshold = getattr(manager, "prepare_threshold", None)
    if connection.vendor != "postgresql" or threshold is None:
        yield 0
        return
    manager.clear = _keep  # type: ignore[union-attr]  # the instance's own, for this block
    try:
        yield threshold + 1
    finally:
        del manager.clear  # type: ignore[union-attr]


def _keep() -> bool:
    return False  # as psycopg's clear() answers when it had nothing to forget
