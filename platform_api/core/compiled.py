"""SQLAlchemy Core statements run on a DB-API cursor: the hot path of ingest without the per-call
cost of ``Connection.execute``.

A statement is compiled by SQLAlchemy once per dialect and set of parameter names (as
``Connection.execute`` would compile it), and every execution converts its parameters and its
result columns with the bind and result processors of the column types (``UTCDateTime``, JSON,
Boolean ...) and fills in the columns' Python-side defaults. The SQL is thus generated from the
table definitions, exactly as the ORM path's is, and no statement names a column by hand; what
is saved is the execution context, ``Result`` and ``Row`` objects of each call (some 20-25 us a
statement, a sizeable share of a bundle on the fast path).

:class:`Cursor` has the small part of ``Connection``'s interface that the ingest code uses:
``execute(statement, params)`` (a list of dicts is an executemany) returning :class:`Rows`, with
``first()``, ``all()``, ``scalar()`` and ``scalar_one()``. Code written against that interface
runs on either (``session.connection()`` or a :class:`Cursor`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, cast

from sqlalchemy.engine import Dialect
from sqlalchemy.sql.selectable import ExecutableReturnsRows
from sqlalchemy.types import TypeDecorator


class Rows(list):
    """The result rows (tuples) of one execution, with the ``Result`` methods the callers use."""

    def first(self) -> tuple | None:
        return self[0] if self else None

    def all(self) -> list[tuple]:
        return list(self)

    def scalar(self) -> Any:
        return self[0][0] if self else None

    def scalar_one(self) -> Any:
        if len(self) != 1:
            raise LookupError(f"expected one row, got {len(self)}")
        return self[0][0]


class _Binds:
    """The bind processors of one dialect. Those of date and time types remember their last
    results by the identity of the value: a bundle passes one arrival time to a dozen columns."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._procs: dict[Any, Callable[[Any], Any] | None] = {}

    def processor(self, type_) -> Callable[[Any], Any] | None:
        key = (type(type_), repr(type_))  # one per type declaration, shared by its columns
        if key in self._procs:
            return self._procs[key]
        proc = type_.dialect_impl(self.dialect).bind_processor(self.dialect)
        base = type_
        while isinstance(base, TypeDecorator):
            base = base.impl_instance
        try:
            temporal = proc is not None and issubclass(base.python_type, (datetime, date, time))
        except NotImplementedError:
            temporal = False
        if temporal:
            proc = _remembering(proc)
        self._procs[key] = proc
        return proc


def _remembering(proc: Callable[[Any], Any]) -> Callable[[Any], Any]:
    seen: dict[int, tuple[Any, Any]] = {}  # id(value) -> (value, result); the value is kept alive

    def process(v):
        hit = seen.get(id(v))
        if hit is not None and hit[0] is v:
            return hit[1]
        out = proc(v)
        if len(seen) >= 16:
            seen.clear()
        seen[id(v)] = (v, out)
        return out

    return process


class Plan:
    """One statement compiled for one dialect and one set of parameter names: its SQL, and
    generated functions from the parameters (a mapping) to the DB-API's arguments and from a
    DB-API row to the result row, each value through its type's processor."""

    __slots__ = ("statement", "dialect", "sql", "args", "returns_rows", "row")

    def __init__(
        self, statement: ExecutableReturnsRows, dialect: Dialect, keys: tuple[str, ...], binds: _Binds
    ) -> None:
        comp = statement.compile(dialect=dialect, column_keys=list(keys))
        if comp.literal_execute_params or comp.post_compile_params or comp.escaped_bind_names:
            raise ValueError("expanding (IN), literal-execute and escaped parameters are not supported")
        self.statement = statement  # keeps id(statement), the cache key, from being reused
        self.dialect = dialect
        self.sql = comp.string
        by_name = {name: bp for bp, name in comp.bind_names.items()}
        # columns whose Python-side default (INSERT) or onupdate (UPDATE) the caller may leave out
        defaults = {c.key: c.default for c in comp.insert_prefetch}
        defaults.update({c.key: c.onupdate for c in comp.update_prefetch})
        if dialect.positional:
            assert comp.positiontup is not None  # a positional dialect's compiler records the bind order
            names = list(comp.positiontup)
        else:
            names = list(by_name)
        env: dict[str, Any] = {}
        exprs = []
        for i, name in enumerate(names):
            if name in keys:
                v = f"p[{name!r}]"
            else:  # not given: the column's default, or a literal of the statement
                fill = _default(defaults[name]) if name in defaults else _literal(by_name[name])
                if fill is None:
                    raise KeyError(f"parameter {name!r} missing for: {self.sql}")
                env[f"d{i}"] = fill
                v = f"d{i}()"
            proc = binds.processor(by_name[name].type)
            if proc is not None:
                env[f"f{i}"] = proc
                v = f"f{i}({v})"
            exprs.append(v if dialect.positional else f"{name!r}: {v}")
        body = (
            f"({', '.join(exprs)}{',' if len(exprs) == 1 else ''})" if dialect.positional else f"{{{', '.join(exprs)}}}"
        )
        self.args: Callable[[Mapping[str, Any]], Any] = _function("p", body, env)
        self.returns_rows = bool(statement.exported_columns)  # a SELECT, or DML with RETURNING
        self.row: Callable[[tuple], tuple] | None = None  # made on the first rows

    def rows(self, cursor) -> Rows:
        raw = cursor.fetchall()
        if self.row is None:
            self.row = self._row_function(cursor.description)
        return Rows(raw if self.row is tuple else map(self.row, raw))

    def _row_function(self, description) -> Callable[[tuple], tuple]:
        d, cols = self.dialect, self.statement.exported_columns
        if len(cols) != len(description):
            raise ValueError(f"{len(description)} result columns, expected {len(cols)}: {self.sql}")
        env: dict[str, Any] = {}
        exprs = []
        for i, (c, desc) in enumerate(zip(cols, description)):
            # as SQLAlchemy does: the processor may depend on the DB-API's type code
            proc = c.type.dialect_impl(d).result_processor(d, desc[1])
            if proc is None:
                exprs.append(f"r[{i}]")
            else:
                env[f"f{i}"] = proc
                exprs.append(f"f{i}(r[{i}])")
        if not env:
            return tuple
        return _function("r", f"({', '.join(exprs)},)", env)


def _function(arg: str, body: str, env: dict[str, Any]) -> Callable:
    """``lambda <arg>: <body>`` with the names of ``env`` (processors, defaults) bound."""
    return eval(f"lambda {arg}: {body}", env)  # noqa: S307 - built above from column names and indices only


def _default(d) -> Callable[[], Any] | None:
    if d is None:
        return None
    if d.is_callable:
        return lambda: d.arg(None)  # zero-argument defaults (SQLAlchemy wraps them to take a context)
    if d.is_scalar:
        return lambda: d.arg
    raise ValueError(f"column default {d!r} is not supported on a DB-API cursor")


def _literal(bp) -> Callable[[], Any] | None:
    if bp.callable is not None:
        return bp.callable
    if bp.required:
        return None
    return lambda: bp.value


class Statements:
    """The plans of one dialect (one per database), built on first use."""

    MAX = 512  # statements are module constants: more than this means some are built per call

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._plans: dict[tuple, Plan] = {}
        self._binds = _Binds(dialect)

    def plan(self, statement: ExecutableReturnsRows, keys: tuple[str, ...]) -> Plan:
        k = (id(statement), keys)
        p = self._plans.get(k)
        if p is None or p.statement is not statement:
            if len(self._plans) >= self.MAX:
                self._plans.clear()
            p = self._plans[k] = Plan(statement, self.dialect, keys, self._binds)
        return p


_NO_PARAMS: Mapping[str, Any] = {}  # never modified


class Cursor:
    """A DB-API cursor that executes Core statements through :class:`Statements`."""

    def __init__(self, dbapi_connection, statements: Statements) -> None:
        self.cur = dbapi_connection.cursor()
        self.statements = statements
        self._plans = statements._plans

    def execute(
        self, statement: ExecutableReturnsRows, params: Mapping[str, Any] | list[Mapping[str, Any]] = _NO_PARAMS
    ) -> Rows:
        if params.__class__ is list:
            return self._executemany(statement, params)  # type: ignore[arg-type]
        one = cast("Mapping[str, Any]", params)  # not a list (checked above)
        keys = tuple(one)
        plan = self._plans.get((id(statement), keys))
        if plan is None or plan.statement is not statement:
            plan = self.statements.plan(statement, keys)
        self.cur.execute(plan.sql, plan.args(one))
        return plan.rows(self.cur) if plan.returns_rows else _NO_ROWS

    def _executemany(self, statement: ExecutableReturnsRows, params: list[Mapping[str, Any]]) -> Rows:
        if params:
            plan = self.statements.plan(statement, tuple(params[0]))
            self.cur.executemany(plan.sql, list(map(plan.args, params)))
        return _NO_ROWS

    def exec_driver_sql(self, sql: str) -> None:
        """A statement without parameters or columns (``BEGIN``, ``SAVEPOINT x`` ...)."""
        self.cur.execute(sql)


_NO_ROWS = Rows()  # what statements without result columns give (never modified)
