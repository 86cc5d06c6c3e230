"""Metric points of many runs written to an MLflow SQLite store in one transaction."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

import sqlalchemy as sa
from mlflow.entities import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun
from sqlalchemy.dialects import sqlite

Point = tuple[str, float, int, int]  # key, value, timestamp (ms), step: a Metric's fields
_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
_MAX_FLOAT = 1.7976931348623157e308
_CACHE_KIB = 65536  # SQLite's page cache: the metrics indexes outgrow the 2 MiB default
_VALUES = "VALUES (" + ", ".join("?" * len(_COLUMNS)) + ")"
# All rows as one JSON parameter: SQLite inserts them in one call, without the GIL, where
# executemany takes the GIL back for every row and so stalls the training thread each time.
_FROM_JSON = (
    "SELECT " + ", ".join(f"value->>{i}" for i in range(len(_COLUMNS))) + " FROM json_each(?)"
)
JSON_ROWS = sqlite3.sqlite_version_info >= (3, 38)  # json_each and ->> built in


def _row(run_id: str, point: Point) -> tuple:
    """A point as MLflow stores it, in ``_COLUMNS`` order: NaN as 0 with is_nan set, +-inf as
    +-max float."""
    key, value, timestamp, step = point
    if math.isnan(value):
        return key, 0.0, timestamp, step, True, run_id
    if math.isinf(value):
        value = math.copysign(_MAX_FLOAT, value)
    return key, value, timestamp, step, False, run_id


def _positional(statement: sa.Executable, json_rows: bool) -> str:
    """The SQL of ``statement`` for sqlite3: ``?`` per column, or one JSON array of rows."""
    compiled = statement.compile(dialect=sqlite.dialect(paramstyle="qmark"))
    sql = str(compiled)
    if tuple(compiled.positiontup) != _COLUMNS or _VALUES not in sql:
        raise RuntimeError(f"unexpected SQL for MLflow's metric tables: {sql}")
    # "WHERE true" tells SQLite's parser that ON CONFLICT belongs to the INSERT, not a join
    return sql.replace(_VALUES, _FROM_JSON + " WHERE true") if json_rows else sql


def _statements(json_rows: bool) -> tuple[str, str]:
    """(insert points, update latest values) on MLflow's own table models."""
    params = {c: sa.bindparam(c) for c in _COLUMNS}
    insert = sa.insert(SqlMetric.__table__).prefix_with("OR IGNORE").values(params)
    latest = SqlLatestMetric.__table__
    upsert = sqlite.insert(latest).values(params)
    new = upsert.excluded
    upsert = upsert.on_conflict_do_update(
        index_elements=[latest.c.key, latest.c.run_uuid],
        set_={c: new[c] for c in ("value", "timestamp", "step", "is_nan")},
        where=sa.tuple_(new.step, new.timestamp, new.value)
        > sa.tuple_(latest.c.step, latest.c.timestamp, latest.c.value),
    )
    return _positional(insert, json_rows), _positional(upsert, json_rows)


class SqliteMetricWriter:
    """Writes metric points straight into MLflow's ``metrics`` and ``latest_metrics`` tables.

    Stores what ``MlflowClient.log_batch`` would (the same rows, the same rule for the latest
    value, exact duplicates dropped), built from MLflow's own table models, but every run of a
    flush in one transaction of two statements (rows as one JSON parameter, or ``executemany``
    on SQLite older than 3.38): ``log_batch`` spends a transaction and ORM work per run and
    call, about 10,000 points/s here, which bounds a sweep that logs MI every epoch
    (bench/README.md). For ``sqlite:`` stores that MLflow created and migrated; runs that are
    missing or deleted are refused, as MLflow refuses them.
    """

    def __init__(self, uri: str, timeout_s: float = 60.0, json_rows: bool = JSON_ROWS) -> None:
        if not uri.startswith("sqlite:"):
            raise ValueError(f"not an SQLite tracking URI: {uri!r} (expected sqlite:///PATH)")
        self.engine = sa.create_engine(
            uri,
            connect_args={"timeout": timeout_s, "check_same_thread": False},
            poolclass=sa.pool.StaticPool,
        )
        sa.event.listen(self.engine, "connect", _tune_connection)
        self.json_rows = json_rows
        self._insert, self._upsert = _statements(json_rows)

    def write(self, points: Mapping[str, Sequence[Point]]) -> int:
        """Store every run's points in one transaction; returns the number of points."""
        rows = [_row(run_id, p) for run_id, run_points in points.items() for p in run_points]
        if not rows:
            return 0
        run_ids = [r for r, run_points in points.items() if run_points]
        # every row goes through the latest-value upsert: its WHERE keeps the greatest
        # (step, timestamp, value), MLflow's rule, in whatever order the rows come
        params = (json.dumps(rows),) if self.json_rows else rows
        with self.engine.begin() as conn:
            self._check_active(conn, run_ids)
            conn.exec_driver_sql(self._insert, params)
            conn.exec_driver_sql(self._upsert, params)
        return len(rows)

    @staticmethod
    def _check_active(conn: sa.Connection, run_ids: list[str]) -> None:
        active = set(
            conn.execute(
                sa.select(SqlRun.run_uuid).where(
                    SqlRun.run_uuid.in_(run_ids), SqlRun.lifecycle_stage == LifecycleStage.ACTIVE
                )
            ).scalars()
        )
        missing = [r for r in run_ids if r not in active]
        if missing:
            raise MlflowException(
                f"run {missing[0]} not found or deleted ({len(missing)} of {len(run_ids)} runs "
                "of a batch); metrics are logged only to active runs",
                error_code=RESOURCE_DOES_NOT_EXIST,
            )

    def close(self) -> None:
        """Release the database connection."""
        self.engine.dispose()


def _tune_connection(dbapi_connection, _record) -> None:
    dbapi_connection.execute(f"PRAGMA cache_size=-{_CACHE_KIB}")


class SchemaMismatch(ValueError):
    """The MLflow SQLite store's tables are not those this version of ibsweep writes and reads."""


def check_schema(uri: str) -> None:
    """Raise SchemaMismatch unless the store's metric tables have every column ibsweep uses.

    The writer and the SQLite reader of ``analysis.fetch`` use MLflow's tables directly (no
    public API covers them), so a store made by an MLflow with another schema is refused here,
    at start-up, rather than at the first write.
    """
    try:
        _statements(JSON_ROWS)
    except RuntimeError as err:
        raise SchemaMismatch(
            f"installed MLflow's metric tables are not as expected: {err}"
        ) from None
    path = unquote(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None
    if path is None or not Path(path).is_file():
        return
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        for table in (SqlMetric.__table__, SqlLatestMetric.__table__):
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table.name})")}
            missing = [c for c in _COLUMNS if c not in have]
            if missing:
                raise SchemaMismatch(
                    f"the MLflow store {uri} has a table {table.name} without the columns "
                    f"{', '.join(missing)} that ibsweep writes (tested with MLflow 3.17); "
                    "use a store made by MLflow 3 (`mlflow db upgrade` migrates an older one)"
                )


def bulk_writer(uri: str) -> SqliteMetricWriter | None:
    """A bulk writer for an SQLite store; None for other stores (they take ``log_batch``)."""
    return SqliteMetricWriter(uri) if uri.startswith("sqlite:") else None
