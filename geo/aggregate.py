"""Counting hazards, incidents and alarms by H3 cell, area and period, with filters.

Every user value reaches SQL as a bound ``?`` parameter; column names come from the
layer specs. The ``Filter`` is shared by the hotspot, trend and governance modules.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Generic, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from h3ronpy import cells_to_string

from geo import h3index, jsonsafe, store
from geo.cache import BoundedCache, size_of
from geo.errors import ValidationError
from layers.registry import get_spec

# Filter attribute → layer field it constrains.
_VALUE_FIELDS: dict[str, str] = {
    "category": "category",
    "severity": "severity",
    "status": "status",
    "source": "source",
    "supervision": "supervision",
    "kind": "kind",
    "towns": "town",
    "communities": "community",
    "grids": "grid_id",
}
# Area level → column of the point layers.
AREA_COLUMNS: dict[str, str] = {"town": "town", "community": "community", "grid": "grid_id"}
# Period names accepted in ``by`` → DuckDB date_trunc part.
PERIODS: dict[str, str] = {"year": "year", "month": "month", "week": "week", "day": "day", "hour": "hour"}

TimeLike = date | datetime | str | pd.Timestamp | None


def to_timestamp(value: TimeLike, name: str = "time") -> datetime | None:
    """A naive ``datetime`` from a date, datetime or ISO string (None stays None)."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        msg = f"`{name}` = {value!r} is not a date or time; use ISO format such as 2025-06-30 or 2025-06-30T08:00"
        raise ValidationError(msg) from exc
    if ts is pd.NaT:
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert(None)
    return ts.to_pydatetime()


def time_field(layer: str) -> str:
    """The time column a layer is filtered and bucketed by (its sort key, else its first datetime)."""
    spec = get_spec(layer)
    if spec.sort_by:
        return spec.sort_by
    for f in spec.fields:
        if f.type in ("datetime", "date"):
            return f.name
    raise ValidationError(f"layer {layer!r} has no time field; time filters and periods need one")


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class Filter:
    """Which rows of a layer a figure counts; every tuple means "any of".

    Parameters
    ----------
    start, end
        Time window on the layer's time field: ``start`` inclusive, ``end`` exclusive.
    category, severity, status, source, supervision, kind
        Allowed values of those fields (Chinese values as stored).
    towns, communities, grids
        Area: values of the ``town``, ``community`` and ``grid_id`` columns.
    """

    start: TimeLike = None
    end: TimeLike = None
    category: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    supervision: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    towns: tuple[str, ...] = ()
    communities: tuple[str, ...] = ()
    grids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_timestamp(self.start, "start"))
        object.__setattr__(self, "end", to_timestamp(self.end, "end"))
        for name in _VALUE_FIELDS:
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValidationError(f"filter end {self.end} is not after start {self.start}")

    @classmethod
    def last_days(cls, days: float, as_of: TimeLike = None, **other: Any) -> Filter:
        """The window ``[as_of - days, as_of)`` (as_of defaults to now) plus other criteria."""
        end = to_timestamp(as_of, "as_of") or datetime.now()
        return cls(start=end - timedelta(days=days), end=end, **other)

    def replace(self, **changes: Any) -> Filter:
        """A copy with some criteria changed."""
        return dataclasses.replace(self, **changes)

    @property
    def has_area(self) -> bool:
        """Whether the filter restricts the area (towns, communities or grids)."""
        return bool(self.towns or self.communities or self.grids)

    def area_only(self) -> Filter:
        """Only the area criteria (for layers such as key places that have no hazard fields)."""
        return Filter(towns=self.towns, communities=self.communities, grids=self.grids)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times as ISO strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.isoformat() if isinstance(v, datetime) else (list(v) if isinstance(v, tuple) else v)
        return out

    def sql(self, layer: str, alias: str = "", time: bool = True) -> tuple[str, list[Any]]:
        """WHERE clause (``TRUE`` when empty) and its parameters for ``layer``.

        Raises ``ValidationError`` for a criterion on a field the layer does not have or a
        value outside the field's allowed values.
        """
        spec = get_spec(layer)
        prefix = f"{alias}." if alias else ""
        clauses: list[str] = []
        params: list[Any] = []
        if time and (self.start is not None or self.end is not None):
            col = f'{prefix}"{time_field(layer)}"'
            if self.start is not None:
                clauses.append(f"{col} >= ?")
                params.append(self.start)
            if self.end is not None:
                clauses.append(f"{col} < ?")
                params.append(self.end)
        for attr, field_name in _VALUE_FIELDS.items():
            values = getattr(self, attr)
            if not values:
                continue
            try:
                field = spec.field(field_name)
            except KeyError:
                msg = (f"filter `{attr}` does not apply to layer {layer!r} (it has no field {field_name!r}); "
                       f"fields: {spec.field_names}")
                raise ValidationError(msg) from None
            if field.choices:
                bad = [v for v in values if v not in field.choices]
                if bad:
                    msg = (f"filter `{attr}`: {bad} not allowed for {layer}.{field_name} ({field.zh}); "
                           f"allowed: {list(field.choices)}")
                    raise ValidationError(msg)
            marks = ", ".join("?" for _ in values)
            clauses.append(f'{prefix}"{field_name}" IN ({marks})')
            params.extend(values)
        return (" AND ".join(clauses) if clauses else "TRUE"), params


def _group_expr(layer: str, name: str) -> str:
    """SQL expression for one ``by`` item (a field, an H3 column or a period)."""
    if name in PERIODS:
        return f"CAST(date_trunc('{PERIODS[name]}', \"{time_field(layer)}\") AS DATE)" if name != "hour" else \
            f"date_trunc('hour', \"{time_field(layer)}\")"
    if name in {h3index.cell_column(r) for r in store.POINT_RESOLUTIONS}:
        return f'"{name}"'
    spec = get_spec(layer)
    if name in spec.field_names:
        return f'"{name}"'
    msg = (f"cannot group {layer} by {name!r}; use a field {spec.field_names}, "
           f"h3_r7..h3_r10 or a period {list(PERIODS)}")
    raise ValidationError(msg)


def count_by(
    con: duckdb.DuckDBPyConnection,
    layer: str = "hazard",
    by: Sequence[str] = ("town",),
    flt: Filter | None = None,
) -> pd.DataFrame:
    """Rows of ``layer`` passing ``flt`` counted by the ``by`` columns.

    Returns
    -------
    DataFrame with the ``by`` columns and ``count``, sorted by ``by``.
    """
    flt = flt or Filter()
    where, params = flt.sql(layer)
    by = list(by)
    if not by:
        n = con.execute(f"SELECT count(*) FROM {layer} WHERE {where}", params).fetchone()[0]
        return pd.DataFrame({"count": [int(n)]})
    exprs = [f"{_group_expr(layer, b)} AS \"{b}\"" for b in by]
    keys = ", ".join(f'"{b}"' for b in by)
    sql = f"SELECT {', '.join(exprs)}, count(*) AS count FROM {layer} WHERE {where} GROUP BY ALL ORDER BY {keys}"
    return con.execute(sql, params).df()


def count_by_cell(
    con: duckdb.DuckDBPyConnection, layer: str = "hazard", res: int = 9, flt: Filter | None = None
) -> pd.DataFrame:
    """Counts per H3 cell at ``res`` (7-10): columns ``cell`` (uint64), ``h3`` (hex), ``count``."""
    if res not in store.POINT_RESOLUTIONS:
        raise ValidationError(f"H3 resolution {res} is not stored; use one of {store.POINT_RESOLUTIONS}")
    flt = flt or Filter()
    where, params = flt.sql(layer)
    got = store.cell_aggregates(con, layer, res, "count(*) AS count", where, params)
    cells = np.asarray(got["cell"], dtype=np.uint64)
    order = np.argsort(cells)
    cells = cells[order]
    return pd.DataFrame({"cell": cells, "h3": cells_to_hex(cells), "count": np.asarray(got["count"], dtype=np.int64)[order]})


def cells_to_hex(cells: np.ndarray) -> np.ndarray:
    """H3 cells (uint64) as hex strings, vectorised (h3ronpy)."""
    cells = np.asarray(cells, dtype=np.uint64)
    if not len(cells):
        return np.array([], dtype=object)
    return pa.array(cells_to_string(cells)).to_numpy(zero_copy_only=False)


def count_by_area(
    con: duckdb.DuckDBPyConnection, layer: str = "hazard", level: str = "town", flt: Filter | None = None
) -> pd.DataFrame:
    """Counts per town, community or grid: columns ``area``, ``count`` (largest first)."""
    if level not in AREA_COLUMNS:
        raise ValidationError(f"area level {level!r} unknown; use one of {list(AREA_COLUMNS)}")
    df = count_by(con, layer, (AREA_COLUMNS[level],), flt).rename(columns={AREA_COLUMNS[level]: "area"})
    return df.sort_values(["count", "area"], ascending=[False, True], ignore_index=True)


def count_by_month(
    con: duckdb.DuckDBPyConnection, layer: str = "hazard", flt: Filter | None = None, by: Sequence[str] = ()
) -> pd.DataFrame:
    """Counts per month (DATE of the first day) and the optional ``by`` columns."""
    return count_by(con, layer, ("month", *by), flt)


def data_as_of(con: duckdb.DuckDBPyConnection, layer: str = "hazard") -> datetime | None:
    """Latest time stored in ``layer`` (the "now" of a historical or demo database)."""
    col = time_field(layer)
    value = con.execute(f'SELECT max("{col}") FROM {layer}').fetchone()[0]
    return to_timestamp(value)


DATE_COLUMNS: tuple[str, ...] = ("year", "month", "week", "day", "deadline", "last_inspection")


def to_records(frame: pd.DataFrame, drop: Sequence[str] = ("cell",)) -> list[dict[str, Any]]:
    """JSON-ready rows through the one conversion (``geo.jsonsafe.records``): NaN/±inf/NaT →
    None, numpy scalars → Python, date columns (``DATE_COLUMNS``) → ``YYYY-MM-DD``, other
    times → ISO 8601 seconds; ``drop`` columns (uint64 cells: use the ``h3`` hex) left out."""
    out = frame.drop(columns=[c for c in drop if c in frame.columns])
    return jsonsafe.records(out, date_columns=DATE_COLUMNS, timespec="seconds")


# --------------------------------------------------------------------------- per-snapshot structures

T = TypeVar("T")


def snapshot_key(con: duckdb.DuckDBPyConnection) -> tuple[int, str, str] | None:
    """Identity of the read-only store snapshot ``con`` reads, or None when it can change.

    ``geo.store.connect`` attaches each snapshot of a database file read-only under its own
    alias (``snapN``, never reused in a process); a snapshot swapped in by an ingest gets a
    new alias. Writers and other databases return None: nothing derived from them is kept.
    """
    row = con.execute(
        "SELECT database_name, path, readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    if row is None or not row[2] or not str(row[0]).startswith("snap"):
        return None
    return (os.getpid(), str(row[0]), str(row[1]))


class SnapshotCache(Generic[T]):
    """A small LRU of structures derived from one store snapshot (study areas, weights, columns).

    Holds inputs of a computation that do not change while the snapshot stays the same;
    never the result of a query. Keys start with ``snapshot_key(con)``; when that is None
    the structure is built and not kept. Bounded by ``maxsize`` entries and by bytes
    (``max_bytes``, else the ``cache_max_mb`` setting; sizes by ``geo.cache.size_of`` or
    ``sizer``); a snapshot's entries are dropped when the store detaches it (``geo.cache``).
    """

    def __init__(
        self,
        maxsize: int = 8,
        on_evict: Callable[[T], None] | None = None,
        max_bytes: int | None = None,
        sizer: Callable[[T], int] | None = None,
        name: str = "snapshot structures",
    ) -> None:
        self._cache: BoundedCache[T] = BoundedCache(name, maxsize, max_bytes=max_bytes, on_evict=on_evict,
                                                    sizer=sizer or size_of)
        self._build_lock = threading.Lock()  # one build at a time (builds may create tables)

    @property
    def maxsize(self) -> int:
        """Most entries kept."""
        return self._cache.max_entries

    @property
    def cache(self) -> BoundedCache[T]:
        """The underlying bounded cache (sizes, snapshots held)."""
        return self._cache

    def get(self, con: duckdb.DuckDBPyConnection, key: Hashable, build: Callable[[], T]) -> T:
        """The structure for ``key`` on ``con``'s snapshot, built by ``build()`` when missing."""
        return self.at(snapshot_key(con), key, build)

    def at(self, snap: Hashable | None, key: Hashable, build: Callable[[], T]) -> T:
        """As ``get``, with the snapshot identity already known (``snapshot_key``)."""
        if snap is None:
            return build()
        found, value = self._cache.lookup(snap, key)
        if found:
            return value  # type: ignore[return-value]
        with self._build_lock:
            found, value = self._cache.lookup(snap, key)
            if found:  # built by another thread meanwhile
                return value  # type: ignore[return-value]
            return self._cache.put(snap, key, build())

    def clear(self) -> None:
        """Forget everything (tests)."""
        self._cache.clear()
