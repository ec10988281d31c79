"""Measured response performance (响应时效): what did happen on real calls, against the targets.

From the incident table (警情), per call:

- **turnout** (出动用时) = rolling ``dispatched_at`` (出动时间) − call received ``reported_at`` (接警时间);
- **travel** (途中用时) = first arrival ``arrived_at`` (到场时间) − rolling;
- **total** (到场用时) = first arrival − call; a file without the times gives it as
  ``response_s`` (响应时长), used only when ``arrived_at`` is empty.

A call's **first-due unit** is the FIRST unit listed in its 出动力量 cell (``units``), matched
to a station or micro station by ``geo.units.match_units``; it carries the call's times (the
dispatch export records one rolling and one first-arrival time per call, those of the unit
sent first). Later units of the call are not timed. Calls whose first unit matches no
responder, or that name no unit, count in the district, town and month figures but in no
unit's row; their unit texts are listed (``unmatched``).

Targets, by the first-due unit's kind (``geo.coverage_inputs.layer_timing``):

- micro station (微型消防站, "1-3-5", seed 004): turnout ≤ ``micro_station_turnout_s`` (1 min)
  and on scene ≤ ``micro_station_minutes`` (3 min) from the call;
- fire station (消防站, 建标152-2017): on scene ≤ ``fire_station_minutes`` (5 min) from the
  dispatch order — the call received is taken as the order — and turnout ≤
  ``fire_station_turnout_s``.

A share met is over the calls with that time and a matched first-due unit; "≤" meets.

**Percentiles** are nearest-rank (``PERCENTILE_DEFINITION``), one function for every figure
of onemap (``nearest_rank``: this module, ``geo.calibrate``; CLI, /review and report read
this module): p50 and p90 are always times of real calls.

An interval that is negative, not finite or longer than ``response_max_interval_s`` (a data
error an older import let through) is left out of the figures and counted (``invalid``).
The period selects calls by call time, ``[start, end)`` (``geo.aggregate.Filter``); a call's
figures do not depend on when they are read.

**Speed.** Every call of a store snapshot is read once into numpy arrays (``_Calls``: times
in integer µs, first-due unit, town and month codes, per measure the calls sorted by
(month, time) and by time), kept per snapshot and per the settings that change them
(``response_max_interval_s``, the targets) in a ``geo.aggregate.SnapshotCache``; an ingest
swaps in a new snapshot and its calls are read anew. A query only marks the calls its filter
keeps (DuckDB evaluates the filter; none for an empty one) and counts: groups by
``np.bincount``, percentiles by picking the ⌈p·n/100⌉-th kept call of each group from the
pre-sorted orders. The orders by unit and by town are built on their first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from geo.aggregate import Filter, SnapshotCache, snapshot_key
from geo.coverage_inputs import RESPONDER_LAYERS, layer_timing
from geo.errors import ValidationError
from geo.settings import Settings
from geo.units import load_responders, match_units, split_units

PERCENTILES: tuple[int, ...] = (50, 90)
PERCENTILE_DEFINITION = (
    "nearest-rank: the p-th percentile of n times is the smallest time t with at least p % of "
    "the times ≤ t, i.e. the ⌈p·n/100⌉-th smallest; always the time of a real call"
)
MEASURES: tuple[str, ...] = ("turnout", "travel", "total")
BY: tuple[str, ...] = ("unit", "town", "month")
GROUP_COLUMNS: dict[str, tuple[str, ...]] = {
    "unit": ("layer", "unit_id", "unit_name"),
    "town": ("town",),
    "month": ("month",),
    "district": (),
}
FIGURE_COLUMNS: tuple[str, ...] = (
    "calls", *(f"{m}_p{p}_s" for m in MEASURES for p in PERCENTILES), *(f"{m}_n" for m in MEASURES),
    "turnout_met", "turnout_judged", "turnout_met_share", "on_scene_met", "on_scene_judged", "on_scene_met_share",
)
WORST_COLUMNS: tuple[str, ...] = (
    "id", "reported_at", "town", "kind", "layer", "unit_id", "unit_name",
    "turnout_s", "travel_s", "total_s", "on_scene_target_s", "on_scene_met",
)
US = 1_000_000  # times are kept as integer microseconds (exact; DuckDB's timestamp unit)
MISSING = -1  # a time a call lacks or that is left out (valid times are ≥ 0 µs)
_NAT = np.iinfo(np.int64).min  # no time (NaT as int64 µs)


# --------------------------------------------------------------------------- the percentile rule


def nearest_rank(ordered: np.ndarray, counts: np.ndarray, p: int, empty: Any = np.nan) -> np.ndarray:
    """The nearest-rank ``p``-th percentile of each group: onemap's one percentile rule.

    ``ordered`` holds groups one after another, each sorted ascending; ``counts`` their sizes
    (summing to ``len(ordered)``); ``p`` an integer percent 0-100. A group of n values gives its
    ⌈p·n/100⌉-th smallest (the 1st at least), the rank computed in integers, ``(p·n + 99) // 100``,
    so float rounding cannot move it; an empty group gives ``empty``. ``ordered`` may hold the
    positions of values (sorted by value): the result is then the positions of the percentiles.

    >>> nearest_rank(np.array([1, 2, 3, 4, 10, 20]), [4, 2], 50).tolist()
    [2.0, 10.0]
    """
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or not 0 <= p <= 100:
        raise ValueError(f"a percentile is an integer percent 0-100, got {p!r}")
    ordered = np.asarray(ordered)
    counts = np.asarray(counts, dtype=np.int64)
    if int(counts.sum()) != len(ordered):
        raise ValueError(f"group sizes sum to {int(counts.sum())}, not the {len(ordered)} values given")
    starts = np.cumsum(counts) - counts
    rank = np.maximum((int(p) * counts + 99) // 100, 1)
    has = counts > 0
    got = ordered[np.where(has, starts + rank - 1, 0)] if len(ordered) else np.zeros(len(counts), ordered.dtype)
    return np.where(has, got, empty)


@dataclass(frozen=True)
class ResponsePerformance:
    """Response figures of one filter.

    ``table``: one row per group of ``by`` (``GROUP_COLUMNS[by]`` then ``FIGURE_COLUMNS``);
    ``district``: the same figures over every call; ``trend``: per month (the trend);
    ``worst``: the slowest calls by total time (``WORST_COLUMNS``); ``unmatched``: unit texts
    matching no responder (unit_text, reason, calls); ``targets``: per responder layer its
    (turnout s, on-scene s); ``calls_without_unit``, ``first_unit_unmatched``, ``invalid``:
    counts of calls (``invalid``: intervals left out as data errors).
    """

    by: str
    filter: Filter
    table: pd.DataFrame
    district: dict[str, Any]
    trend: pd.DataFrame
    worst: pd.DataFrame
    unmatched: pd.DataFrame
    targets: dict[str, tuple[float, float]]
    calls_without_unit: int
    first_unit_unmatched: int
    invalid: int
    definition: str = field(default=PERCENTILE_DEFINITION)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (frames left as frames; ``geo.jsonsafe`` converts them)."""
        return {
            "by": self.by, "filter": self.filter.as_dict(), "percentiles": list(PERCENTILES),
            "definition": self.definition,
            "targets": {k: {"turnout_s": v[0], "on_scene_s": v[1]} for k, v in self.targets.items()},
            "district": self.district, "rows": self.table, "trend": self.trend, "worst": self.worst,
            "unmatched": self.unmatched, "calls_without_unit": self.calls_without_unit,
            "first_unit_unmatched": self.first_unit_unmatched, "invalid_intervals": self.invalid,
        }


def mmss(seconds: Any) -> str:
    """Seconds as ``m:ss`` (rounded to the second); ``—`` when missing. 185 → '3:05'."""
    if seconds is None or not np.isfinite(float(seconds)):
        return "—"
    total = int(round(float(seconds)))
    sign = "-" if total < 0 else ""
    return f"{sign}{abs(total) // 60}:{abs(total) % 60:02d}"


def _incident_columns(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Columns of the incident table (an older file may lack the dispatch times or units)."""
    return {d[0] for d in con.execute("SELECT * FROM incident LIMIT 0").description}


# --------------------------------------------------------------------------- the calls of a snapshot

# Figure counts of a group, each one bit of a call's ``flags`` but ``calls`` (every call).
COUNTS: tuple[str, ...] = ("calls", "turnout_n", "travel_n", "total_n",
                           "turnout_met", "turnout_judged", "on_scene_met", "on_scene_judged")
_FLAG_PATTERNS = 1 << (len(COUNTS) - 1)
# pattern × count: 1 where the pattern of flags has the count's bit (``calls``: always).
_BITS = np.array([[1, *((pattern >> k) & 1 for k in range(len(COUNTS) - 1))] for pattern in range(_FLAG_PATTERNS)],
                 dtype=np.int64)
_NO_UNITS, _UNIT_UNMATCHED, _INVALID = 1, 2, 4  # a call's other bits: the district's count codes
_CALLS: SnapshotCache[Any] = SnapshotCache(maxsize=16, name="response calls")


@dataclass(frozen=True)
class _Grouping:
    """The calls of one grouping: ``size`` groups (codes 0 … size-1, the last one the calls
    without a value: no town, no matched unit); per call ``keyed`` = code × 128 + its figure
    flags (the code: the group's, or for the district the call's ``_NO_UNITS`` … bits, 0 …
    count_size-1); per measure the positions of the calls having it, sorted by (group, time)."""

    size: int
    keyed: np.ndarray
    orders: dict[str, np.ndarray]
    count_size: int


@dataclass(frozen=True)
class _Calls:
    """Every call of a snapshot, in row id order (``rid``; None when the row ids are 0 … n-1).

    ``times``: per measure µs (``MISSING`` when absent or left out); ``unit``: first-due unit
    code into ``units`` (-1: none matched); ``missed_at``: positions of the calls whose first
    unit matches no responder, ``missed`` its index into ``texts``; ``flags``: bits of ``COUNTS``
    (the calls' ``_NO_UNITS`` … bits are the district's count codes);
    ``town``, ``kind``: codes into their sorted labels (len(labels) = none); ``months``: the
    month grouping's labels (first days);
    ``worst``: positions of the calls with a total, slowest first (ties: earlier call, row id).
    """

    rid: np.ndarray | None
    call_us: np.ndarray
    times: dict[str, np.ndarray]
    unit: np.ndarray
    units: dict[str, np.ndarray]
    missed_at: np.ndarray
    missed: np.ndarray
    texts: dict[str, np.ndarray]
    flags: np.ndarray
    town: np.ndarray
    towns: np.ndarray
    months: np.ndarray
    kind: np.ndarray
    kinds: np.ndarray
    ids: pa.Array
    worst: np.ndarray
    groupings: dict[str, _Grouping]

    @property
    def n(self) -> int:
        """Number of calls."""
        return len(self.call_us)

    @property
    def n_units(self) -> int:
        """Number of first-due units matched (codes 0 … n_units-1)."""
        return len(self.units["layer"])

    def unit_values(self, column: str, code: np.ndarray, none: Any = None) -> np.ndarray:
        """``units[column]`` of each unit code, ``none`` where the code is -1 (no unit matched)."""
        values = np.append(self.units[column], none)
        return values[np.where(code >= 0, code, len(values) - 1)]


def _targets(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    """(layer, turnout µs, on-scene µs) of each responder layer: the targets the figures judge by."""
    return tuple((layer, *(int(round(v * US)) for v in layer_timing(layer, settings))) for layer in RESPONDER_LAYERS)


def _first_units(con: duckdb.DuckDBPyConnection, columns: set[str],
                 settings: Settings) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(cells: each distinct 出动力量 cell with its first-due unit ``code`` (-1: none) and ``miss``
    (1 + index into texts of an unmatched first unit, 0: none); units by code, in (layer, id)
    order, as arrays: layer, unit_id, unit_name, turnout_target_us, on_scene_target_us; texts:
    unit_text, reason of the unmatched first units, as arrays). Splitting and matching run once per distinct cell and
    first text (``geo.units``' rule)."""
    cells = (con.execute("SELECT DISTINCT units AS cell FROM incident WHERE units IS NOT NULL").df()
             if "units" in columns else pd.DataFrame({"cell": pd.Series(dtype=object)}))
    first = pd.Series([next(iter(split_units(c)), None) for c in cells["cell"]], dtype=object)
    cells = pd.DataFrame({"cell": cells["cell"].astype(object).to_numpy(), "first": first.to_numpy()})
    cells = cells[cells["first"].notna()].reset_index(drop=True)
    texts = pd.unique(cells["first"]) if len(cells) else np.array([], dtype=object)
    match = match_units(pd.DataFrame({"id": texts, "units": texts}), load_responders(con))
    pairs = pd.DataFrame({c: match.pairs[s].astype(object).to_numpy() for c, s in
                          (("text", "incident_id"), ("layer", "layer"), ("unit_id", "unit_id"),
                           ("unit_name", "unit_name"))})
    units = (pairs.drop_duplicates(["layer", "unit_id"]).sort_values(["layer", "unit_id"], kind="stable")
             [["layer", "unit_id", "unit_name"]].reset_index(drop=True))
    timing = {layer: (t, s) for layer, t, s in _targets(settings)}
    units["turnout_target_us"] = np.array([timing[v][0] for v in units["layer"]], dtype=np.int64)
    units["on_scene_target_us"] = np.array([timing[v][1] for v in units["layer"]], dtype=np.int64)
    code = pd.Series(np.arange(len(units)), index=pd.MultiIndex.from_frame(units[["layer", "unit_id"]]))
    by_text = pd.Series(code.reindex(pd.MultiIndex.from_frame(pairs[["layer", "unit_id"]])).to_numpy(),
                        index=pairs["text"].to_numpy())
    missed = pd.DataFrame({"unit_text": match.unmatched["incident_id"].astype(object).to_numpy(),
                           "reason": match.unmatched["reason"].astype(object).to_numpy()})
    miss = pd.Series(np.arange(1, len(missed) + 1), index=missed["unit_text"].to_numpy())
    cells["code"] = by_text.reindex(cells["first"].to_numpy()).fillna(-1).to_numpy(dtype=np.int32)
    cells["miss"] = miss.reindex(cells["first"].to_numpy()).fillna(0).to_numpy(dtype=np.int32)
    return (cells[["cell", "code", "miss"]],
            {c: units[c].to_numpy(dtype=np.int64 if c.endswith("_us") else object) for c in units.columns},
            {c: missed[c].to_numpy(dtype=object) for c in missed.columns})


def _calls_sql(columns: set[str], first: str, settings: Settings) -> str:
    """SQL of one row per call, in row id order: row id, call time and month (µs), town, kind,
    id, first-due unit ``code`` and ``miss``, ``has_units``, the three times in µs (``MISSING``
    when absent or impossible) and ``invalid``."""
    have = {c: c in columns for c in ("dispatched_at", "arrived_at", "response_s", "units", "town")}
    col = {c: (f"i.{c}" if ok else "NULL") for c, ok in have.items()}
    call = "epoch_us(i.reported_at)"
    rolled = f"epoch_us({col['dispatched_at']})" if have["dispatched_at"] else "CAST(NULL AS BIGINT)"
    arrived = f"epoch_us({col['arrived_at']})" if have["arrived_at"] else "CAST(NULL AS BIGINT)"
    legacy = (f"CASE WHEN isfinite({col['response_s']}) AND abs({col['response_s']}) < 1e12 "
              f"THEN CAST(round({col['response_s']} * {US}) AS BIGINT) END") if have["response_s"] else "NULL"
    bad_legacy = f"({col['response_s']} IS NOT NULL AND NOT isfinite({col['response_s']}))" if have["response_s"] else "FALSE"
    join = f"LEFT JOIN {first} f ON f.cell = i.units" if have["units"] else f"LEFT JOIN {first} f ON FALSE"
    units = f"coalesce(trim({col['units']}), '') <> ''" if have["units"] else "FALSE"
    limit = int(round(float(settings.response_max_interval_s) * US))

    def valid(raw: str) -> str:
        return f"CASE WHEN {raw} BETWEEN 0 AND {limit} THEN {raw} END"

    inner = f"""
        SELECT i.rowid AS rid, {call} AS call_us, epoch_us(date_trunc('month', i.reported_at)) AS month_us,
               CAST({col['town']} AS VARCHAR) AS town, CAST(i.kind AS VARCHAR) AS kind, CAST(i.id AS VARCHAR) AS id,
               coalesce(f.code, -1) AS code, coalesce(f.miss, 0) AS miss, {units} AS has_units,
               {rolled} - {call} AS t, {arrived} - {rolled} AS v,
               CASE WHEN {arrived} IS NOT NULL THEN {arrived} - {call} ELSE {legacy} END AS a, {bad_legacy} AS bad
        FROM incident i {join}"""
    return f"""SELECT rid, call_us, month_us, town, kind, id, code, miss, has_units,
                      coalesce({valid('t')}, {MISSING}) AS turnout_us, coalesce({valid('v')}, {MISSING}) AS travel_us,
                      coalesce({valid('a')}, {MISSING}) AS total_us,
                      coalesce(bad OR (t IS NOT NULL AND {valid('t')} IS NULL) OR (v IS NOT NULL AND {valid('v')} IS NULL)
                        OR (a IS NOT NULL AND {valid('a')} IS NULL), FALSE) AS invalid
               FROM ({inner}) ORDER BY rid"""


def _text_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a text column into its sorted distinct values (code-point order, as Python and
    pandas sort text); a NULL gets len(labels), sorting last."""
    uniques = pc.unique(column).drop_null()
    labels = uniques.take(pc.sort_indices(uniques))
    codes = pc.fill_null(pc.index_in(column, value_set=labels), len(labels))
    return np.asarray(codes.to_numpy(), dtype=np.int32), np.asarray(labels.to_pylist(), dtype=object)


def _numbers(table: pa.Table, name: str, null: int = MISSING) -> np.ndarray:
    """An integer column as int64 numpy (NULL → ``null``)."""
    return np.asarray(pc.fill_null(table.column(name), null).to_numpy(), dtype=np.int64)


def _flags(times: dict[str, np.ndarray], unit: np.ndarray, units: dict[str, np.ndarray]) -> np.ndarray:
    """Per call the bits of ``COUNTS[1:]``: has each time; turnout met / judged; on scene met / judged."""
    matched = unit >= 0
    at = np.where(matched, unit, len(units["layer"]))
    turnout_target = np.append(units["turnout_target_us"], 0)[at]
    scene_target = np.append(units["on_scene_target_us"], 0)[at]
    turnout_judged = matched & (times["turnout"] >= 0)
    scene_judged = matched & (times["total"] >= 0)
    bits = [times[m] >= 0 for m in MEASURES] + [
        turnout_judged & (times["turnout"] <= turnout_target), turnout_judged,
        scene_judged & (times["total"] <= scene_target), scene_judged,
    ]
    flags = np.zeros(len(unit), dtype=np.uint8)
    for k, bit in enumerate(bits):
        flags |= bit.astype(np.uint8) << k
    return flags


def _by_time(times: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per measure the positions of the calls having it, sorted by time (stable: ties by position)."""
    orders = {}
    for m in MEASURES:
        has = np.flatnonzero(times[m] >= 0)
        orders[m] = has[np.argsort(times[m][has], kind="stable")]
    return orders


def _grouping(flags: np.ndarray, by_time: dict[str, np.ndarray], codes: np.ndarray, size: int,
              count_by: np.ndarray | None = None, count_size: int = 0) -> _Grouping:
    """A grouping of the calls by ``codes`` (0 … size-1): keyed flags and per-measure orders,
    each the time order (``by_time``) stably sorted by group (a radix sort for up to 32767 groups).
    Arrays are int64 (numpy's index type: no conversion when indexing or counting). The counts
    may be kept by finer codes (``count_by``, 0 … count_size-1) that add up to the groups."""
    codes = np.asarray(codes, dtype=np.int64)
    count_codes = codes if count_by is None else np.asarray(count_by, dtype=np.int64)
    keyed = (count_codes << (len(COUNTS) - 1)) | flags.astype(np.int64)
    small = codes.astype(np.int16) if size <= np.iinfo(np.int16).max else codes
    orders = {m: order if size == 1 else order[np.argsort(small[order], kind="stable")] for m, order in by_time.items()}
    return _Grouping(size=size, keyed=keyed, orders=orders, count_size=count_size or size)


def _worst_order(call_us: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Positions of the calls with a total, slowest first; ties: earlier call (none last), lower row id."""
    has = np.flatnonzero(total >= 0)  # in row id order: lexsort is stable
    when = np.where(call_us[has] == _NAT, np.iinfo(np.int64).max, call_us[has])
    return has[np.lexsort((when, -total[has]))]


def _build(con: duckdb.DuckDBPyConnection, settings: Settings) -> _Calls:
    """Read every call of ``con``'s snapshot once (``_Calls``), with the district and month orders."""
    columns = _incident_columns(con)
    cells, units, texts = _first_units(con, columns, settings)
    name = f"_response_first_{id(cells)}"
    con.register(name, cells)
    try:
        table = con.execute(_calls_sql(columns, name, settings)).to_arrow_table()
    finally:
        con.unregister(name)
    rid = _numbers(table, "rid")
    call_us = _numbers(table, "call_us", null=_NAT)  # NULL as NaT
    times = {m: _numbers(table, f"{m}_us") for m in MEASURES}
    unit = _numbers(table, "code").astype(np.int32)
    flags = _flags(times, unit, units)
    no_units = ~np.asarray(table.column("has_units").to_numpy(), dtype=bool)
    extra = (no_units * _NO_UNITS | ((~no_units) & (unit < 0)) * _UNIT_UNMATCHED
             | np.asarray(table.column("invalid").to_numpy(), dtype=bool) * _INVALID)
    month_us = _numbers(table, "month_us", null=_NAT)
    timed = month_us != _NAT
    months = np.unique(month_us[timed])
    month = np.where(timed, np.searchsorted(months, month_us), len(months))
    town, towns = _text_codes(table.column("town"))
    kind, kinds = _text_codes(table.column("kind"))
    n = len(rid)
    dense = bool(n == 0 or (rid[0] == 0 and rid[-1] == n - 1))  # sorted distinct row ids 0 … n-1
    miss = _numbers(table, "miss")
    by_time = _by_time(times)
    groupings = {"district": _grouping(flags, by_time, np.zeros(n, dtype=np.int64), 1, extra, 8),
                 "month": _grouping(flags, by_time, month, len(months) + 1)}
    return _Calls(rid=None if dense else rid, call_us=call_us, times=times, unit=unit, units=units,
                  missed_at=np.flatnonzero(miss), missed=miss[miss > 0] - 1, texts=texts, flags=flags,
                  town=town, towns=towns, months=months.view("datetime64[us]"), kind=kind, kinds=kinds,
                  ids=table.column("id").combine_chunks(), worst=_worst_order(call_us, times["total"]),
                  groupings=groupings)


def _cache_key(settings: Settings) -> tuple[Any, ...]:
    """What the calls read depends on besides the snapshot: the interval limit and the targets."""
    return ("calls", int(round(float(settings.response_max_interval_s) * US)), _targets(settings))


def _calls(con: duckdb.DuckDBPyConnection, settings: Settings, by: str) -> tuple[_Calls, _Grouping]:
    """The snapshot's calls (read on first use) and the grouping ``by`` (built on first use)."""
    snap, key = snapshot_key(con), _cache_key(settings)
    calls: _Calls = _CALLS.at(snap, key, lambda: _build(con, settings))
    if by in calls.groupings:
        return calls, calls.groupings[by]
    codes, size = ((np.where(calls.unit >= 0, calls.unit, calls.n_units), calls.n_units + 1) if by == "unit"
                   else (calls.town, len(calls.towns) + 1))
    by_time = calls.groupings["district"].orders
    grouping = _CALLS.at(snap, (*key, by), lambda: _grouping(calls.flags, by_time, codes, size))
    return calls, grouping


def _mask(con: duckdb.DuckDBPyConnection, calls: _Calls, where: str, params: list[Any]) -> np.ndarray | None:
    """The calls passing the filter (DuckDB evaluates its WHERE clause); None: every call."""
    if where == "TRUE":
        return None
    got = con.execute(f"SELECT i.rowid FROM incident i WHERE {where}", params).fetchnumpy()["rowid"]
    got = np.asarray(got, dtype=np.int64)
    mask = np.zeros(calls.n, dtype=bool)
    mask[got if calls.rid is None else np.searchsorted(calls.rid, got)] = True
    return mask


def _counts(grouping: _Grouping, mask: np.ndarray | None) -> np.ndarray:
    """``COUNTS`` of the kept calls per count code of ``grouping`` (rows) — one pass, np.bincount."""
    keyed = grouping.keyed if mask is None else grouping.keyed[mask]
    shape = (grouping.count_size, _FLAG_PATTERNS)
    return np.bincount(keyed, minlength=shape[0] * shape[1]).reshape(shape) @ _BITS


def _seconds_at(times_us: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Seconds of the calls at positions ``at``; NaN where ``at`` is -1 (an empty group; also
    when no call is kept at all, so ``times_us`` may be empty)."""
    out = np.full(len(at), np.nan)
    found = at >= 0
    out[found] = times_us[at[found]] / US
    return out


def _figures(calls: _Calls, grouping: _Grouping, mask: np.ndarray | None,
             counts: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per group code: the ``COUNTS`` (``counts`` when already counted) and the percentiles (s)
    of the kept calls."""
    counts = _counts(grouping, mask) if counts is None else counts
    out = {name: counts[:, k] for k, name in enumerate(COUNTS)}
    for m in MEASURES:
        order = grouping.orders[m]
        kept = order if mask is None else order[mask[order]]
        for p in PERCENTILES:
            at = nearest_rank(kept, out[f"{m}_n"], p, empty=-1)
            out[f"{m}_p{p}_s"] = _seconds_at(calls.times[m], at)
    for kind in ("turnout", "on_scene"):
        met, judged = out[f"{kind}_met"], out[f"{kind}_judged"]
        out[f"{kind}_met_share"] = np.where(judged > 0, met / np.maximum(judged, 1), np.nan)
    return out


def _table(by: str, calls: _Calls, figures: dict[str, np.ndarray]) -> pd.DataFrame:
    """Rows of the groups with calls (``GROUP_COLUMNS[by]`` then ``FIGURE_COLUMNS``), in key order,
    the group without a value last (``unit``: left out)."""
    present = np.flatnonzero(figures["calls"] > 0)
    if by == "unit":
        present = present[present < calls.n_units]
    data: dict[str, Any] = {}
    if by == "unit":
        data = {c: calls.units[c][present] for c in GROUP_COLUMNS["unit"]}
    elif by == "town":
        data["town"] = np.append(calls.towns, None)[present]
    elif by == "month":
        data["month"] = np.append(calls.months, np.datetime64("NaT", "us"))[present]
    for c in FIGURE_COLUMNS:
        data[c] = figures[c][present].astype(np.int64 if c in COUNTS else np.float64)
    return pd.DataFrame(data)


def _first_kept(order: np.ndarray, mask: np.ndarray | None, k: int) -> np.ndarray:
    """The first ``k`` positions of ``order`` the mask keeps, looking at growing prefixes only."""
    if mask is None or k == 0:
        return order[:k]
    kept, start, step = [], 0, 4 * k + 256
    while start < len(order) and sum(map(len, kept)) < k:
        chunk = order[start:start + step]
        kept.append(chunk[mask[chunk]])
        start, step = start + step, step * 4
    return np.concatenate(kept)[:k] if kept else order[:0]


def _worst(calls: _Calls, mask: np.ndarray | None, limit: int) -> pd.DataFrame:
    """The ``limit`` slowest kept calls by total time (ties: earlier call first) with their first-due unit."""
    top = _first_kept(calls.worst, mask, max(int(limit), 0))
    code = calls.unit[top]
    times = {m: calls.times[m][top] for m in MEASURES}
    target = calls.unit_values("on_scene_target_us", code, np.nan) / US
    data = {
        "id": np.asarray(calls.ids.take(pa.array(top)).to_pylist(), dtype=object),
        "reported_at": calls.call_us[top].view("datetime64[us]"),
        "town": np.append(calls.towns, None)[calls.town[top]],
        "kind": np.append(calls.kinds, None)[calls.kind[top]],
        **{c: calls.unit_values(c, code) for c in GROUP_COLUMNS["unit"]},
        **{f"{m}_s": np.where(times[m] >= 0, times[m] / US, np.nan) for m in MEASURES},
        "on_scene_target_s": target,
        "on_scene_met": np.array([bool(met) if known else None for met, known in
                                  zip(times["total"] / US <= target, code >= 0)], dtype=object),
    }
    return pd.DataFrame(data)


def _unmatched(calls: _Calls, mask: np.ndarray | None) -> pd.DataFrame:
    """First-listed unit texts of the kept calls matching no responder: unit_text, reason, calls
    (most calls first, then by text)."""
    missed = calls.missed if mask is None else calls.missed[mask[calls.missed_at]]
    counts = np.bincount(missed, minlength=len(calls.texts["unit_text"]))
    texts = calls.texts["unit_text"]
    seen = sorted(np.flatnonzero(counts).tolist(), key=lambda k: (-counts[k], texts[k]))
    return pd.DataFrame({"unit_text": pd.Series(texts[seen], dtype=object),
                         "reason": pd.Series(calls.texts["reason"][seen], dtype=object),
                         "calls": pd.Series(counts[seen], dtype=np.int64)})


def response_performance(
    con: duckdb.DuckDBPyConnection,
    by: str = "unit",
    flt: Filter | None = None,
    settings: Settings | None = None,
) -> ResponsePerformance:
    """Response figures of the calls in ``flt`` (period by call time, towns, kinds), grouped ``by``
    ``unit`` (the first-due unit), ``town`` or ``month``, plus the district, the monthly trend,
    the worst calls and the unmatched first units (module docstring: definitions and targets)."""
    if by not in BY:
        raise ValidationError(f"response figures by {str(by)[:40]!r}: use one of {list(BY)}")
    settings = settings or Settings()
    flt = flt or Filter()
    where, params = flt.sql("incident", alias="i")
    calls, grouping = _calls(con, settings, by)
    mask = _mask(con, calls, where, params)
    trend = _figures(calls, calls.groupings["month"], mask)
    table = trend if by == "month" else _figures(calls, grouping, mask)
    by_extra = _counts(calls.groupings["district"], mask)  # rows: the calls' _NO_UNITS … bits
    district = _figures(calls, calls.groupings["district"], mask, by_extra.sum(axis=0, keepdims=True))
    count = {bit: int(by_extra[[k for k in range(8) if k & bit], 0].sum())
             for bit in (_NO_UNITS, _UNIT_UNMATCHED, _INVALID)}
    return ResponsePerformance(
        by=by, filter=flt, table=_table(by, calls, table),
        district={c: _plain(district[c][0]) for c in FIGURE_COLUMNS},
        trend=_table("month", calls, trend), worst=_worst(calls, mask, settings.response_worst_calls),
        unmatched=_unmatched(calls, mask),
        targets={layer: layer_timing(layer, settings) for layer in RESPONDER_LAYERS},
        calls_without_unit=count[_NO_UNITS], first_unit_unmatched=count[_UNIT_UNMATCHED], invalid=count[_INVALID],
    )


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (NaN stays NaN for jsonsafe to turn into null)."""
    return value.item() if isinstance(value, np.generic) else value


def incident_towns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Towns that calls are assigned to (for a clear error on an unknown ``--town``)."""
    if "town" not in _incident_columns(con):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT town FROM incident WHERE town IS NOT NULL ORDER BY town").fetchall()]
