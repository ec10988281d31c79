"""Governance figures: the hazard closed loop, inspection compliance, town scorecard, wall KPIs.

All in DuckDB SQL over the ``hazard``, ``key_place`` and ``incident`` tables. ``as_of`` is
the moment the figures are taken at (``figures_as_of``: the given moment, else the end of the
filter's period, else now, never later than now): a hazard is *closed as of T* when
``closed_at ≤ T`` (or, without a closed_at, when its status is the spec's ``CLOSED_STATUS``);
hazards discovered after T are left out. The words closed, open, major, listed and in-grid
come from the hazard layer spec (``layers.hazard``). Pages, the wall, the report and the CLI
call these functions and only format what they return: ``default_period`` is the period the
review page and the report open with, ``listed_hazards`` the supervised list.
Definitions of every figure are in the README ("Hotspots and governance figures") and in each docstring.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow.compute as pc

from geo import store
from geo.aggregate import Filter, SnapshotCache, TimeLike, snapshot_key, to_records, to_timestamp
from geo.errors import ConfigError, ValidationError
from geo.settings import Settings
from layers import hazard as hazard_vocabulary
from layers.registry import get_spec

_HAZARD = get_spec("hazard")
_INCIDENT = get_spec("incident")


def _choice(layer_field: str, value: str) -> str:
    """A value of the hazard spec as an SQL literal (checked against the spec's choices)."""
    choices = _HAZARD.field(layer_field).choices or ()
    if value not in choices:  # pragma: no cover - guards against a spec change
        raise ConfigError(f"hazard.{layer_field} has no value {value!r}; choices {choices}")
    return "'" + value.replace("'", "''") + "'"


CLOSED = _choice("status", hazard_vocabulary.CLOSED_STATUS)
MAJOR = _choice("severity", hazard_vocabulary.MAJOR_SEVERITY)
GENERAL = _choice("severity", hazard_vocabulary.GENERAL_SEVERITY)
LISTED_DISTRICT, LISTED_TOWN = (_choice("supervision", v) for v in hazard_vocabulary.LISTED_LEVELS)
LISTED = ", ".join(_choice("supervision", v) for v in hazard_vocabulary.LISTED_LEVELS)
IN_GRID = _choice("handled_by", hazard_vocabulary.HANDLED_IN_GRID)

GROUPS = ("town", "community", "grid_id", "month", "category", "severity", "source", "supervision")
PLACE_GROUPS = ("town", "community", "grid_id", "category")

def closed_sql(as_of: str = "?") -> str:
    """SQL: the hazard is closed as of the parameter ``as_of`` (closed_at ≤ it; without a
    closed_at, its status is the spec's closed status). The one definition of closed/open."""
    return f"coalesce(closed_at <= {as_of}, status = {CLOSED})"


def open_mask(status: pd.Series, closed_at: pd.Series | None, as_of: datetime) -> np.ndarray:
    """Per hazard of a frame: open as of ``as_of`` (``closed_sql``'s rule in pandas)."""
    by_status = status.to_numpy(dtype=object) == hazard_vocabulary.CLOSED_STATUS
    if closed_at is None:
        return ~by_status
    times = pd.to_datetime(closed_at)
    closed = np.where(times.isna().to_numpy(), by_status, (times <= pd.Timestamp(as_of)).to_numpy())
    return ~closed.astype(bool)


def figures_as_of(as_of: TimeLike = None, flt: Filter | None = None, now: datetime | None = None) -> datetime:
    """The one "as of" rule of every governance figure (pages, wall, report, CLI).

    The given moment when there is one; else the end of the filter's period (exclusive: the
    figures of a period are taken as it ends); else now. A period that ends in the future is
    taken now (figures cannot be taken later than now).
    """
    given = to_timestamp(as_of, "as_of")
    if given is not None:
        return given
    now = now or datetime.now()
    end = flt.end if flt is not None else None
    return min(end, now) if end is not None else now


def _as_of(as_of: TimeLike, flt: Filter | None = None) -> datetime:
    return figures_as_of(as_of, flt)


@dataclass(frozen=True)
class Period:
    """A period of discovery times: ``start`` inclusive, ``end`` exclusive (both midnights)."""

    start: datetime
    end: datetime

    @property
    def last_day(self) -> date:
        """The last day in the period (what a date picker shows as its end)."""
        return (self.end - timedelta(days=1)).date()

    def label(self) -> str:
        """``YYYY-MM-DD – YYYY-MM-DD`` (first and last day)."""
        return f"{self.start:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"


def default_period(con: duckdb.DuckDBPyConnection, settings: Settings | None = None) -> Period:
    """The period the review page and the report open with: ``review_default_days`` days up to
    and including the day of the newest hazard (today when there is none)."""
    settings = settings or Settings()
    days = int(settings.review_default_days)
    if days < 1:
        raise ConfigError(f"review_default_days must be at least 1 day, got {days}")
    newest = con.execute("SELECT max(discovered_at) FROM hazard").fetchone()[0]
    last = pd.Timestamp(newest if newest is not None else datetime.now()).normalize()
    end = (last + pd.Timedelta(days=1)).to_pydatetime()
    return Period(start=end - timedelta(days=days), end=end)


def scorecard_year(as_of: datetime) -> int:
    """The assessment year of figures taken at ``as_of``: the year of the moment just before it
    (figures as of 1 January 00:00 close the year before)."""
    return (as_of - timedelta(microseconds=1)).year


def _group_exprs(by: Sequence[str], allowed: Sequence[str], time_col: str = "discovered_at") -> list[str]:
    out = []
    for b in by:
        if b not in allowed:
            raise ValidationError(f"cannot group by {b!r}; use any of {list(allowed)}")
        out.append(f"CAST(date_trunc('month', {time_col}) AS DATE) AS month" if b == "month" else f'"{b}"')
    return out


def _deadline_case(settings: Settings) -> tuple[str, list[Any]]:
    """SQL for a hazard's deadline (its own, else discovered + hazard_deadline_days[severity])."""
    days = settings.hazard_deadline_days
    if not days:
        return "deadline", []
    whens = " ".join("WHEN ? THEN ?" for _ in days)
    params: list[Any] = []
    for sev, d in days.items():
        params += [str(sev), int(d)]
    return f"coalesce(deadline, CAST(discovered_at AS DATE) + CAST(CASE severity {whens} END AS INTEGER))", params


def _hazard_cte(flt: Filter, as_of: datetime, settings: Settings) -> tuple[str, list[Any]]:
    """``h AS (...)``: filtered hazards up to ``as_of`` with is_closed, days_to_close and due."""
    where, wparams = flt.sql("hazard")
    due, dparams = _deadline_case(settings)
    sql = f"""h AS (
        SELECT *, {closed_sql()} AS is_closed,
               CASE WHEN closed_at <= ? THEN date_diff('second', discovered_at, closed_at) / 86400.0 END AS days_to_close,
               {due} AS due
        FROM hazard WHERE discovered_at <= ? AND {where}
    )"""
    return sql, [as_of, as_of, *dparams, as_of, *wparams]


@dataclass(frozen=True)
class _GapTable:
    """A table in the process's in-memory database: per hazard with a place (by rowid of one
    snapshot's hazard table), the time since the previous hazard at that place, in µs."""

    name: str
    pid: int  # a forked child has its own DuckDB instance: it leaves the parent's alone
    rows: int = 0  # its size for the cache's byte budget: rows × 16 bytes (two 8-byte columns)


def _drop_gap_table(table: _GapTable) -> None:
    if table.pid == os.getpid():
        store.drop_memory_table(table.name)


# One per snapshot (an ingest swaps in a new one, which gets its own); at most the two newest,
# within the byte budget; dropped with their snapshot when the store detaches it.
_GAP_TABLES: SnapshotCache[_GapTable] = SnapshotCache(
    maxsize=2, on_evict=_drop_gap_table, sizer=lambda t: t.rows * 16, name="place gap tables")


def _gap_table(con: duckdb.DuckDBPyConnection) -> str | None:
    """Name of the place-gap table of ``con``'s snapshot (built on first use), or None
    (not a read-only store snapshot: the recurrence is then found with a window per call).

    The gap to the previous hazard at the same place does not depend on the period, the
    filter or ``as_of`` (the previous hazard is always earlier), so it is worked out once per
    snapshot: one window over the hazards with a place (0.7 s for 2M of them). Every call
    still reads its period's hazards and compares their gaps with ``recurring_window_days``.
    """
    snap = snapshot_key(con)
    if snap is None:
        return None

    def build() -> _GapTable:
        name = f"onemap_place_gap_{snap[1]}"
        con.execute(f"""CREATE OR REPLACE TABLE memory.main.{name} AS
            SELECT rid, gap_us FROM (
                SELECT rowid AS rid, date_diff('microsecond',
                       lag(discovered_at) OVER (PARTITION BY place_id ORDER BY discovered_at), discovered_at) AS gap_us
                FROM hazard WHERE place_id IS NOT NULL
            ) ORDER BY rid""")
        rows = con.execute(f"SELECT count(*) FROM memory.main.{name}").fetchone()[0]
        return _GapTable(name=name, pid=os.getpid(), rows=int(rows))

    return _GAP_TABLES.at(snap, "place_gap", build).name


def _recurrence_cte(
    flt: Filter, as_of: datetime, settings: Settings, carry: Sequence[str] = (), gap_table: str | None = None
) -> tuple[str, list[Any]]:
    """``r AS (...)``: hazards with a place passing ``flt``, with ``recurs``: the previous hazard
    at that place (any category, before the window too) is at most ``recurring_window_days`` earlier.

    Carries just the columns the filter and the groups (``carry``) name; the filter applies
    after the previous hazard is found. Long periods: a window partitioned by place over the
    rows with a place_id. A period no longer than the recurrence window (the last 30 days):
    the window runs over the period's rows only; a row without a previous one in the period
    takes the latest hazard at its place in the recurrence window before the period (the
    same previous hazard, measured 1.5x less work on 5M hazards than one window over both).
    """
    where, wparams = flt.sql("hazard")
    cols = ", ".join(f'"{c}"' for c in dict.fromkeys(["place_id", "discovered_at", *carry]))
    used = [f for f in ("category", "severity", "status", "source", "supervision", "town", "community", "grid_id")
            if f'"{f}"' in where and f not in carry]
    filter_cols = "".join(f'"{c}", ' for c in used)
    days = int(settings.recurring_window_days)
    window = timedelta(days=days)
    if gap_table is not None:  # the gaps of this snapshot, joined by rowid (a range of it: hazards are in time order)
        hwhere, hparams = flt.sql("hazard", alias="h")
        hcols = ", ".join(f'h."{c}"' for c in dict.fromkeys(["place_id", "discovered_at", *carry, *used]))
        sql = f"""r AS (
        SELECT {hcols}, coalesce(g.gap_us <= ?, false) AS recurs
        FROM hazard h JOIN memory.main.{gap_table} g ON g.rid = h.rowid
        WHERE h.place_id IS NOT NULL AND h.discovered_at <= ? AND {hwhere}
    )"""
        return sql, [days * 86_400_000_000, as_of, *hparams]
    lag = "discovered_at - lag(discovered_at) OVER (PARTITION BY place_id ORDER BY discovered_at) AS gap"
    if flt.start is not None and as_of - flt.start <= window:
        sql = f"""r AS (
        WITH wp AS (
            SELECT {cols}, {filter_cols} {lag}
            FROM hazard WHERE place_id IS NOT NULL AND discovered_at >= ? AND discovered_at <= ?
        ),
        before AS (
            SELECT place_id, max(discovered_at) AS latest FROM hazard
            WHERE place_id IS NOT NULL AND discovered_at >= ? AND discovered_at < ?
              AND place_id IN (SELECT place_id FROM wp WHERE gap IS NULL)
            GROUP BY place_id
        )
        SELECT * EXCLUDE (gap, latest),
               coalesce(coalesce(gap, discovered_at - latest) <= to_days(CAST(? AS INTEGER)), false) AS recurs
        FROM wp LEFT JOIN before USING (place_id) WHERE {where}
    )"""
        return sql, [flt.start, as_of, flt.start - window, flt.start, days, *wparams]
    lower, lparams = "", []
    if flt.start is not None:  # earlier hazards matter only within the window before start
        lower, lparams = " AND discovered_at >= ?", [flt.start - window]
    sql = f"""r AS (
        SELECT * EXCLUDE (gap), coalesce(gap <= to_days(CAST(? AS INTEGER)), false) AS recurs FROM (
            SELECT {cols}, {filter_cols} {lag}
            FROM hazard WHERE place_id IS NOT NULL AND discovered_at <= ?{lower}
        ) WHERE {where}
    )"""
    return sql, [days, as_of, *lparams, *wparams]


def closed_loop(
    con: duckdb.DuckDBPyConnection,
    by: Sequence[str] = ("town",),
    flt: Filter | None = None,
    as_of: TimeLike = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Hazard closed-loop figures (闭环处置) per group.

    Parameters
    ----------
    by
        Any of town, community, grid_id, month (of discovery), category, severity, source,
        supervision; empty for one district-wide row.

    Returns
    -------
    DataFrame ``*by, discovered, closed, open, rectification_rate, median_days_to_close,
    p90_days_to_close, overdue, open_major, listed_town, listed_district, listed_open,
    recurring_places, places_with_hazards, closed_on_time, general_closed,
    general_closed_in_grid, in_grid_share``. Definitions: README, "Governance".
    """
    settings = settings or Settings()
    flt = flt or Filter()
    t = _as_of(as_of, flt)
    hcte, hparams = _hazard_cte(flt, t, settings)
    rcte, rparams = _recurrence_cte(flt, t, settings, [b for b in by if b != "month"], _gap_table(con))
    exprs = _group_exprs(by, GROUPS)
    select = "".join(e + ", " for e in exprs)
    group = " GROUP BY ALL" if by else ""
    on = " AND ".join(f'main."{b}" IS NOT DISTINCT FROM rp."{b}"' for b in by) or "TRUE"
    keys = ", ".join(f'main."{b}"' for b in by)
    sql = f"""WITH {hcte}, {rcte},
    main AS (
        SELECT {select}
            count(*) AS discovered,
            count_if(is_closed) AS closed,
            count_if(NOT is_closed) AS open,
            quantile_cont(days_to_close, [0.5, 0.9]) AS q,
            count_if(NOT is_closed AND due < CAST(? AS DATE)) AS overdue,
            count_if(NOT is_closed AND severity = {MAJOR}) AS open_major,
            count_if(supervision = {LISTED_TOWN}) AS listed_town,
            count_if(supervision = {LISTED_DISTRICT}) AS listed_district,
            count_if(supervision IN ({LISTED}) AND NOT is_closed) AS listed_open,
            count_if(is_closed AND closed_at IS NOT NULL AND CAST(closed_at AS DATE) <= due) AS closed_on_time,
            count_if(is_closed AND severity = {GENERAL}) AS general_closed,
            count_if(is_closed AND severity = {GENERAL} AND handled_by = {IN_GRID}) AS general_closed_in_grid
        FROM h{group}
    ),
    places AS (
        SELECT {select} place_id, bool_or(recurs) AS recurs
        FROM r GROUP BY ALL
    ),
    rp AS (
        SELECT {"".join(f'"{b}", ' for b in by)}
            count(*) FILTER (WHERE recurs) AS recurring_places, count(*) AS places_with_hazards
        FROM places{group}
    )
    SELECT {"".join(f'main."{b}", ' for b in by)} discovered, closed, open,
        main.q[1] AS median_days_to_close, main.q[2] AS p90_days_to_close,
        overdue, open_major, listed_town, listed_district, listed_open,
        coalesce(rp.recurring_places, 0) AS recurring_places, coalesce(rp.places_with_hazards, 0) AS places_with_hazards,
        closed_on_time, general_closed, general_closed_in_grid
    FROM main LEFT JOIN rp ON {on}
    {"ORDER BY " + keys if by else ""}
    """
    df = con.execute(sql, [*hparams, *rparams, t]).df()
    counts = [c for c in df.columns if c not in by and "days" not in c]
    df[counts] = df[counts].fillna(0).astype(np.int64)
    df.insert(len(by) + 3, "rectification_rate", _rate(df["closed"], df["discovered"]))
    df["in_grid_share"] = _rate(df["general_closed_in_grid"], df["general_closed"])
    return df


def _rate(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den as float, NaN where den is 0."""
    den = den.astype(np.float64)
    return (num.astype(np.float64) / den.where(den > 0)).astype(np.float64)


def monthly_flow(
    con: duckdb.DuckDBPyConnection,
    flt: Filter | None = None,
    by: Sequence[str] = (),
    as_of: TimeLike = None,
) -> pd.DataFrame:
    """New versus closed hazards per month (新增 vs 结案): ``month, *by, discovered, closed``.

    ``discovered`` counts hazards by the month they were discovered, ``closed`` by the month
    they were closed (closed_at ≤ as_of); the filter's time window applies to each date.
    """
    flt = flt or Filter()
    t = _as_of(as_of, flt)
    exprs = [e for e in _group_exprs(by, [g for g in GROUPS if g != "month"])]
    where, params = flt.sql("hazard", time=False)
    cols = "".join(f", {e}" for e in exprs)
    keys = "".join(f', "{b}"' for b in by)
    lo = flt.start or datetime(1900, 1, 1)
    hi = min(flt.end, t + timedelta(microseconds=1)) if flt.end else t + timedelta(microseconds=1)
    sql = f"""
    WITH h AS (SELECT * FROM hazard WHERE discovered_at <= ? AND {where})
    SELECT month{keys}, sum(d)::BIGINT AS discovered, sum(c)::BIGINT AS closed FROM (
        SELECT CAST(date_trunc('month', discovered_at) AS DATE) AS month{cols}, 1 AS d, 0 AS c
        FROM h WHERE discovered_at >= ? AND discovered_at < ?
        UNION ALL
        SELECT CAST(date_trunc('month', closed_at) AS DATE) AS month{cols}, 0 AS d, 1 AS c
        FROM h WHERE closed_at >= ? AND closed_at < ?
    ) GROUP BY ALL ORDER BY month{keys}
    """
    return con.execute(sql, [t, *params, lo, hi, lo, hi]).df()


STAGES: tuple[tuple[str, str], ...] = tuple(zip(hazard_vocabulary.SPEC.time_order[:-1],
                                                hazard_vocabulary.SPEC.time_order[1:], strict=True))
"""Consecutive steps of the closed loop by their time fields: (discovered_at, filed_at), ..., (verified_at, closed_at)."""


def stage_column(start: str, end: str) -> str:
    """Name of the median-days column of the stage from time field ``start`` to ``end``."""
    return f"days_{start.removesuffix('_at')}_{end.removesuffix('_at')}"


def stage_days(
    con: duckdb.DuckDBPyConnection, by: Sequence[str] = (), flt: Filter | None = None
) -> pd.DataFrame:
    """Median days per step of the closed loop (发现→立案, 立案→派遣, ..., 核查→结案): ``*by``,
    one ``days_<from>_<to>`` column per step, and ``reopened`` (hazards reopened at least once).

    A step counts the hazards (discovered in the filter) that carry both times, the later not
    before the earlier (an on-the-spot closure skips the steps in between). The times are those
    of the register and of the feed's workflow (``geo.workflow`` sets a step's time when a
    hazard reaches it); reopenings come from the feed's history (``live_history``: a status
    change away from 结案), 0 when the database has none.
    """
    flt = flt or Filter()
    exprs = _group_exprs(by, [g for g in GROUPS if g != "month"])
    where, params = flt.sql("hazard")
    cols = ", ".join(
        f"median(epoch(\"{b}\") - epoch(\"{a}\")) FILTER (WHERE \"{b}\" >= \"{a}\") / 86400.0 "
        f"AS {stage_column(a, b)}" for a, b in STAGES)
    keys = "".join(f"{e}, " for e in exprs)
    group = f" GROUP BY ALL ORDER BY {', '.join(f'{chr(34)}{b}{chr(34)}' for b in by)}" if by else ""
    reopened = "0"
    with contextlib.suppress(duckdb.CatalogException):
        con.execute("SELECT 1 FROM live_history LIMIT 0")
        reopened = ("count(*) FILTER (WHERE id IN (SELECT id FROM live_history WHERE layer = 'hazard' "
                    f"AND field = 'status' AND old = '{hazard_vocabulary.CLOSED_STATUS}'))")
    sql = f"SELECT {keys}{cols}, {reopened}::BIGINT AS reopened FROM hazard WHERE {where}{group}"
    return con.execute(sql, params).df()


def recurring_places(
    con: duckdb.DuckDBPyConnection, flt: Filter | None = None, as_of: TimeLike = None, settings: Settings | None = None
) -> pd.DataFrame:
    """Places with a hazard (passing ``flt``) within ``recurring_window_days`` after an earlier one there.

    Returns
    -------
    DataFrame ``place_id, town, community, grid_id, hazards, recurrences, first, last``:
    hazards = hazards of the place passing the filter, recurrences = those following an
    earlier hazard within the window; most recurrences first.
    """
    settings = settings or Settings()
    flt = flt or Filter()
    rcte, params = _recurrence_cte(flt, _as_of(as_of, flt), settings, ["town", "community", "grid_id"], _gap_table(con))
    sql = f"""WITH {rcte}
    SELECT place_id, any_value(town) AS town, any_value(community) AS community, any_value(grid_id) AS grid_id,
           count(*) AS hazards, count(*) FILTER (WHERE recurs) AS recurrences,
           min(discovered_at) AS first, max(discovered_at) AS last
    FROM r GROUP BY place_id HAVING recurrences > 0
    ORDER BY recurrences DESC, hazards DESC, place_id
    """
    return con.execute(sql, params).df()


def overdue_hazards(
    con: duckdb.DuckDBPyConnection,
    flt: Filter | None = None,
    as_of: TimeLike = None,
    settings: Settings | None = None,
    limit: int = 100,
) -> pd.DataFrame:
    """Hazards past their deadline and not closed as of ``as_of``, most overdue first.

    Returns ``id, category, severity, status, supervision, town, community, grid_id,
    discovered_at, deadline, days_overdue, lon, lat`` (deadline = own or default by severity).
    """
    settings = settings or Settings()
    flt = flt or Filter()
    t = _as_of(as_of, flt)
    cte, params = _hazard_cte(flt, t, settings)
    sql = f"""WITH {cte}
    SELECT id, category, severity, status, supervision, town, community, grid_id, discovered_at,
           due AS deadline, date_diff('day', due, CAST(? AS DATE)) AS days_overdue, lon, lat
    FROM h WHERE NOT is_closed AND due < CAST(? AS DATE)
    ORDER BY days_overdue DESC, id LIMIT ?
    """
    return con.execute(sql, [*params, t, t, int(limit)]).df()


def listed_hazards(
    con: duckdb.DuckDBPyConnection,
    flt: Filter | None = None,
    as_of: TimeLike = None,
    settings: Settings | None = None,
    limit: int | None = 100,
) -> pd.DataFrame:
    """Hazards listed for supervision (挂牌督办, the spec's ``LISTED_LEVELS``) passing ``flt``
    and still open as of ``as_of`` (``closed_loop``'s ``listed_open`` counts the same rows).

    District-level listings first, then by discovery time; ``limit`` rows (None: all).

    Returns ``id, category, severity, status, supervision, town, community, grid_id,
    discovered_at, deadline, lon, lat`` (deadline = own or default by severity).
    """
    settings = settings or Settings()
    flt = flt or Filter()
    t = _as_of(as_of, flt)
    cte, params = _hazard_cte(flt, t, settings)
    rows = "" if limit is None else f" LIMIT {max(int(limit), 0)}"
    sql = f"""WITH {cte}
    SELECT id, category, severity, status, supervision, town, community, grid_id, discovered_at,
           due AS deadline, lon, lat
    FROM h WHERE NOT is_closed AND supervision IN ({LISTED})
    ORDER BY supervision = {LISTED_DISTRICT} DESC, discovered_at, id{rows}
    """
    return con.execute(sql, params).df()


def discovered_count(con: duckdb.DuckDBPyConnection, flt: Filter | None = None, as_of: TimeLike = None) -> int:
    """Hazards passing ``flt`` discovered by ``as_of`` (``closed_loop``'s ``discovered``, without the rest)."""
    flt = flt or Filter()
    t = _as_of(as_of, flt)
    where, params = flt.sql("hazard")
    return int(con.execute(f"SELECT count(*) FROM hazard WHERE discovered_at <= ? AND {where}", [t, *params])
               .fetchone()[0])


# --------------------------------------------------------------------------- inspections


def _intervals(settings: Settings) -> dict[int, int]:
    """Inspection interval in days per class, from ``inspection_interval_days``."""
    intervals = settings.inspection_interval_days
    if not intervals:
        raise ConfigError("inspection_interval_days is empty; give the interval per class, e.g. {'1': 31}")
    try:
        return {int(cls): int(days) for cls, days in intervals.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"inspection_interval_days {intervals}: classes and days must be integers") from exc


@dataclass(frozen=True)
class _PlaceColumns:
    """The key-place columns compliance counts over, as integer codes (one snapshot's copy).

    ``codes[col]`` indexes ``values[col]`` (sorted distinct values; NULL = len(values)) for
    the area and category columns and ``inspection_class``; ``last_day`` is the last
    inspection in days since 1970-01-01 (``_NEVER`` when never inspected).
    """

    codes: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    last_day: np.ndarray


_NEVER = np.iinfo(np.int64).min
_EPOCH = date(1970, 1, 1)
_PLACE_COLUMNS: SnapshotCache[Any] = SnapshotCache(maxsize=24, name="key place columns")


def _place_columns(con: duckdb.DuckDBPyConnection) -> _PlaceColumns:
    """Read the key places' group, area, class and last-inspection columns once, as codes."""
    cols = [*PLACE_GROUPS, "inspection_class"]
    names = ", ".join(f'"{c}"' for c in cols)
    tbl = con.execute(
        f"SELECT {names}, "
        "CAST(date_diff('day', DATE '1970-01-01', last_inspection) AS BIGINT) AS last_day FROM key_place"
    ).to_arrow_table()
    codes: dict[str, np.ndarray] = {}
    values: dict[str, np.ndarray] = {}
    for c in cols:
        column = tbl[c]
        distinct = pc.drop_null(pc.unique(column))
        distinct = distinct.take(pc.sort_indices(distinct))
        idx = pc.index_in(column, value_set=distinct).to_numpy(zero_copy_only=False)
        code = np.where(np.isnan(idx), len(distinct), idx) if idx.dtype.kind == "f" else idx
        codes[c] = np.ascontiguousarray(code, dtype=np.int64)
        values[c] = np.asarray(distinct.to_pylist(), dtype=object if c != "inspection_class" else np.int64)
    last = tbl["last_day"].to_numpy(zero_copy_only=False)
    last_day = np.where(np.isnan(last), _NEVER, np.nan_to_num(last)).astype(np.int64) if last.dtype.kind == "f" \
        else last.astype(np.int64)
    for arr in (*codes.values(), last_day):
        arr.setflags(write=False)
    return _PlaceColumns(codes=codes, values=values, last_day=last_day)


@dataclass(frozen=True)
class _Grouping:
    """Places grouped by some of their columns: ``key`` = group number × 3 + (ever inspected)."""

    key: np.ndarray  # per place
    keys: np.ndarray  # group number → combined code Σ code_g · stride_g (sorted, so groups sort by value)
    sizes: tuple[int, ...]  # distinct values + 1 (NULL) per group column


def _grouping(kp: _PlaceColumns, groups: tuple[str, ...]) -> _Grouping:
    n = len(kp.last_day)
    sizes = tuple(len(kp.values[g]) + 1 for g in groups)
    combined = np.zeros(n, dtype=np.int64)
    for g, size in zip(groups, sizes, strict=True):
        combined = combined * size + kp.codes[g]
    total = int(np.prod(sizes, dtype=np.float64)) if groups else 1
    if total <= max(4 * n, 1 << 16):
        keys, number = np.arange(total, dtype=np.int64), combined
    else:  # many combinations: number only those that occur
        keys, number = np.unique(combined, return_inverse=True)
    key = number * 3 + (kp.last_day != _NEVER)
    for arr in (key, keys):
        arr.setflags(write=False)
    return _Grouping(key=key, keys=keys, sizes=sizes)


def _due_days(kp: _PlaceColumns, intervals: dict[int, int]) -> np.ndarray:
    """Per place, the last day its last inspection covers (days since 1970); never, or no interval: _NEVER."""
    classes = kp.values["inspection_class"]
    days = np.array([intervals.get(int(c), -1) for c in classes] + [-1], dtype=np.int64)
    per_place = days[kp.codes["inspection_class"]]
    due = np.where((kp.last_day == _NEVER) | (per_place < 0), _NEVER, kp.last_day + per_place)
    due.setflags(write=False)
    return due


def _int_column(values: list[int | None]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    """int64, or nullable Int64 when a value is missing."""
    return pd.array(values, dtype="Int64") if None in values else np.asarray(values, dtype=np.int64)


def inspection_compliance(
    con: duckdb.DuckDBPyConnection,
    by: Sequence[str] = ("town",),
    as_of: TimeLike = None,
    flt: Filter | None = None,
    settings: Settings | None = None,
    per_class: bool = True,
) -> pd.DataFrame:
    """Share of key places inspected within their class interval (三级网格化排查, seed 000).

    A place of class c complies when ``last_inspection ≥ as_of − inspection_interval_days[c]``
    (dates); never-inspected places do not comply. Only the filter's area criteria apply.

    The places are counted anew on every call, over the key-place columns read once per
    snapshot as integer codes (a counting pass over 200k places takes about a millisecond;
    the same pass in DuckDB SQL over the stored table measured 4-6 ms).

    Returns
    -------
    DataFrame ``*by, [inspection_class, interval_days,] places, inspected_in_interval,
    never_inspected, overdue, compliance`` (overdue = inspected, but too long ago), sorted by
    the groups (missing values last); groups without places are left out.
    """
    settings = settings or Settings()
    flt = (flt or Filter()).area_only()
    flt.sql("key_place", time=False)  # checks the criteria
    t = _as_of(as_of)
    intervals = _intervals(settings)
    for b in by:
        if b not in PLACE_GROUPS:
            raise ValidationError(f"cannot group by {b!r}; use any of {list(PLACE_GROUPS)}")
    snap = snapshot_key(con)
    kp = _PLACE_COLUMNS.at(snap, "key_place", lambda: _place_columns(con))
    groups = (*by, "inspection_class") if per_class else tuple(by)
    grouping = _PLACE_COLUMNS.at(snap, ("groups", groups), lambda: _grouping(kp, groups))
    due = _PLACE_COLUMNS.at(snap, ("due", tuple(sorted(intervals.items()))), lambda: _due_days(kp, intervals))

    # the counting pass: per place, state 0 never inspected, 1 inspected too long ago, 2 in interval
    state_key = grouping.key + (due >= (t.date() - _EPOCH).days)
    mask: np.ndarray | None = None
    for values, col in ((flt.towns, "town"), (flt.communities, "community"), (flt.grids, "grid_id")):
        if values:
            wanted = np.flatnonzero(np.isin(kp.values[col], np.asarray(values, dtype=object)))
            m = np.isin(kp.codes[col], wanted)
            mask = m if mask is None else mask & m
    if mask is not None:
        state_key = state_key[mask]
    counts = np.bincount(state_key, minlength=3 * len(grouping.keys)).reshape(-1, 3)
    places = counts.sum(axis=1)
    inspected, never_n = counts[:, 2], counts[:, 0]
    present = np.flatnonzero(places) if groups else np.array([0])
    sizes = grouping.sizes

    out: dict[str, Any] = {}
    rest = grouping.keys[present]
    decoded: dict[str, np.ndarray] = {}
    for g, size in reversed(list(zip(groups, sizes, strict=True))):
        decoded[g] = rest % size
        rest //= size
    for g in groups:
        vals = kp.values[g]
        code = decoded[g]
        if g == "inspection_class":
            cls = [int(vals[c]) if c < len(vals) else None for c in code]
            out[g] = _int_column(cls)
            out["interval_days"] = _int_column([None if c is None else intervals.get(c) for c in cls])
        else:
            out[g] = np.asarray([vals[c] if c < len(vals) else None for c in code], dtype=object)
    p, i, nv = places[present], inspected[present], never_n[present]
    out |= {"places": p.astype(np.int64), "inspected_in_interval": i.astype(np.int64),
            "never_inspected": nv.astype(np.int64), "overdue": (p - i - nv).astype(np.int64),
            "compliance": np.divide(i, p, out=np.full(len(p), np.nan), where=p > 0)}
    return pd.DataFrame(out)


def never_inspected(con: duckdb.DuckDBPyConnection, flt: Filter | None = None) -> pd.DataFrame:
    """Key places never inspected: ``id, name, category, inspection_class, town, community, grid_id, lon, lat``."""
    where, params = (flt or Filter()).area_only().sql("key_place", time=False)
    sql = f"""SELECT id, name, category, inspection_class, town, community, grid_id, lon, lat
              FROM key_place WHERE last_inspection IS NULL AND {where}
              ORDER BY inspection_class DESC, town, community, grid_id, id"""
    return con.execute(sql, params).df()


# --------------------------------------------------------------------------- scorecard

SCORECARD_INDICATORS: dict[str, str] = {
    "rectification_rate": "整改率",
    "on_time_rate": "按期整改率",
    "inspection_compliance": "检查合规率",
    "in_grid_share": "一般隐患网格内办结率",
    "no_recurrence_rate": "非复发率",
}


def town_scorecard(
    con: duckdb.DuckDBPyConnection,
    year: int,
    as_of: TimeLike = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Yearly town assessment (考核): indicators, weighted score and rank.

    Indicators (rates in [0, 1], more is better) over hazards discovered in ``year``:
    rectification_rate = closed / discovered; on_time_rate = closed by the deadline /
    discovered; in_grid_share = general hazards closed in the grid / general hazards closed;
    no_recurrence_rate = 1 − recurring places / places with hazards; inspection_compliance
    of the town's key places. ``as_of`` = the end of the year, or the given time if earlier.
    score = 100 × Σ w·rate / Σ w over the indicators the town has data for (weights:
    ``scorecard_weights``); rank 1 is best, equal scores share a rank.

    Returns
    -------
    DataFrame ``rank, town, discovered, <indicators>, score``.
    """
    settings = settings or Settings()
    weights = {k: float(v) for k, v in settings.scorecard_weights.items()}
    unknown = sorted(set(weights) - set(SCORECARD_INDICATORS))
    if unknown or not weights or sum(weights.values()) <= 0:
        msg = (f"scorecard_weights {settings.scorecard_weights} must be positive weights over "
               f"{list(SCORECARD_INDICATORS)}; unknown: {unknown}")
        raise ConfigError(msg)
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    t = min(_as_of(as_of), end - timedelta(microseconds=1))
    if t < start:
        raise ValidationError(f"as_of {t} is before the scorecard year {year}")
    loop = closed_loop(con, ("town",), Filter(start=start, end=end), t, settings)
    insp = inspection_compliance(con, ("town",), t, None, settings, per_class=False)
    towns = con.execute(
        "SELECT DISTINCT town FROM (SELECT town FROM grid UNION ALL SELECT town FROM key_place "
        "UNION ALL SELECT town FROM hazard WHERE discovered_at >= ? AND discovered_at < ?) WHERE town IS NOT NULL",
        [start, end],
    ).df()
    df = towns.merge(loop, on="town", how="left").merge(insp[["town", "compliance"]], on="town", how="left")
    df["discovered"] = df["discovered"].fillna(0).astype(np.int64)
    df["on_time_rate"] = _rate(df["closed_on_time"].fillna(0), df["discovered"])
    df["inspection_compliance"] = df["compliance"].astype(np.float64)
    df["no_recurrence_rate"] = 1.0 - _rate(df["recurring_places"].fillna(0), df["places_with_hazards"].fillna(0))
    rates = df[list(SCORECARD_INDICATORS)].to_numpy(dtype=np.float64)
    w = np.array([weights.get(k, 0.0) for k in SCORECARD_INDICATORS])
    have = ~np.isnan(rates)
    wsum = (have * w).sum(axis=1)
    score = np.where(wsum > 0, 100.0 * np.nansum(rates * w, axis=1) / np.where(wsum > 0, wsum, 1.0), np.nan)
    df["score"] = score
    df["rank"] = df["score"].rank(ascending=False, method="min").astype("Int64")
    out = df[["rank", "town", "discovered", *SCORECARD_INDICATORS, "score"]]
    return out.sort_values(["rank", "town"], ignore_index=True, na_position="last")


# --------------------------------------------------------------------------- wall display


@dataclass(frozen=True)
class WallKpis:
    """The big numbers of the wall display (大屏) and its ticker."""

    as_of: datetime
    open_hazards: int
    open_major: int
    overdue: int
    listed_open: int
    hazards_today: int
    alarms_today: int
    latest_hazards: pd.DataFrame
    latest_alarms: pd.DataFrame

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (times ISO 8601)."""
        return {
            "as_of": self.as_of.isoformat(),
            "open_hazards": self.open_hazards, "open_major": self.open_major, "overdue": self.overdue,
            "listed_open": self.listed_open, "hazards_today": self.hazards_today, "alarms_today": self.alarms_today,
            "latest_hazards": to_records(self.latest_hazards), "latest_alarms": to_records(self.latest_alarms),
        }


def wall_kpis(
    con: duckdb.DuckDBPyConnection,
    as_of: TimeLike = None,
    settings: Settings | None = None,
    flt: Filter | None = None,
) -> WallKpis:
    """Open, major open, overdue and listed-open hazards, today's hazards and alarms, and the ticker.

    "Today" is the calendar day of ``as_of`` up to ``as_of``; the ticker lists the latest
    ``wall_ticker_n`` hazards and incidents up to ``as_of``. ``flt`` narrows hazards
    (e.g. to one town when the wall rotates through towns); incidents get its area only.
    """
    settings = settings or Settings()
    flt = flt or Filter()
    t = _as_of(as_of)
    day = datetime(t.year, t.month, t.day)
    n = int(settings.wall_ticker_n)
    due, dparams = _deadline_case(settings)
    hwhere, hparams = flt.sql("hazard", time=False)
    iwhere, iparams = flt.area_only().sql("incident", time=False)
    row = con.execute(
        f"""SELECT count(*) FILTER (WHERE NOT c), count(*) FILTER (WHERE NOT c AND severity = {MAJOR}),
                   count(*) FILTER (WHERE NOT c AND due < CAST(? AS DATE)),
                   count(*) FILTER (WHERE NOT c AND supervision IN ({LISTED})),
                   count(*) FILTER (WHERE discovered_at >= ?),
                   (SELECT count(*) FROM incident WHERE reported_at >= ? AND reported_at <= ? AND {iwhere})
            FROM (SELECT severity, supervision, discovered_at, {closed_sql()} AS c,
                         {due} AS due FROM hazard WHERE discovered_at <= ? AND {hwhere})""",
        [t, day, day, t, *iparams, t, *dparams, t, *hparams],
    ).fetchone()
    alarms = row[5]
    latest_h = con.execute(
        f"""SELECT id, category, severity, status, town, community, grid_id, discovered_at, lon, lat
            FROM hazard WHERE discovered_at <= ? AND {hwhere} ORDER BY discovered_at DESC, id LIMIT ?""",
        [t, *hparams, n],
    ).df()
    latest_a = con.execute(
        f"""SELECT id, kind, source, status, town, community, grid_id, reported_at, lon, lat
            FROM incident WHERE reported_at <= ? AND {iwhere} ORDER BY reported_at DESC, id LIMIT ?""",
        [t, *iparams, n],
    ).df()
    return WallKpis(
        as_of=t, open_hazards=int(row[0]), open_major=int(row[1]), overdue=int(row[2]), listed_open=int(row[3]),
        hazards_today=int(row[4]), alarms_today=int(alarms), latest_hazards=latest_h, latest_alarms=latest_a,
    )
