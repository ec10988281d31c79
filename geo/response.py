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

**Percentiles** are nearest-rank (``PERCENTILE_DEFINITION``), the same everywhere (CLI,
/review, report): p50 and p90 are always times of real calls. DuckDB's ``quantile_disc``
is exactly this rule (checked against hand cases and a reference in tests/geo/test_response.py).

An interval that is negative, not finite or longer than ``response_max_interval_s`` (a data
error an older import let through) is left out of the figures and counted (``invalid``).
The period selects calls by call time, ``[start, end)`` (``geo.aggregate.Filter``); a call's
figures do not depend on when they are read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from geo.aggregate import Filter
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
_names = itertools.count()


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


def _first_units(con: duckdb.DuckDBPyConnection, where: str, params: list[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(first-due unit of each distinct 出动力量 cell of the filtered calls: cell, layer, unit_id,
    unit_name; first-listed unit texts matching no responder: unit_text, reason, calls).

    Splitting and matching run once per distinct cell and first text (``geo.units``' rule)."""
    cells = con.execute(f"SELECT units AS cell, count(*) AS calls FROM incident i WHERE {where} "
                        "AND units IS NOT NULL GROUP BY units", params).df()
    firsts = [next(iter(split_units(c)), None) for c in cells["cell"]]
    cells = cells.assign(first=firsts)
    cells = cells[cells["first"].notna()]
    empty = {c: pd.Series(dtype=object) for c in ("cell", "layer", "unit_id", "unit_name")}
    unmatched = pd.DataFrame({"unit_text": pd.Series(dtype=object), "reason": pd.Series(dtype=object),
                              "calls": pd.Series(dtype=np.int64)})
    if not len(cells):
        return pd.DataFrame(empty), unmatched
    texts = pd.unique(cells["first"])
    match = match_units(pd.DataFrame({"id": texts, "units": texts}), load_responders(con))
    hit = match.pairs.set_index("incident_id")
    first = cells[cells["first"].isin(hit.index)]
    first = pd.DataFrame({"cell": first["cell"].astype(object).to_numpy(),
                          **{c: hit[c].reindex(first["first"]).astype(object).to_numpy()
                             for c in ("layer", "unit_id", "unit_name")}})
    reasons = match.unmatched.set_index("incident_id")["reason"]
    missed = cells[cells["first"].isin(reasons.index)]
    if len(missed):
        unmatched = (missed.assign(reason=missed["first"].map(reasons).astype(object))
                     .groupby(["first", "reason"], sort=False)["calls"].sum().reset_index()
                     .rename(columns={"first": "unit_text"})
                     .sort_values(["calls", "unit_text"], ascending=[False, True], ignore_index=True))
        unmatched = unmatched.astype({"unit_text": object, "reason": object, "calls": np.int64})
    return first, unmatched


US = 1_000_000  # times are kept as integer microseconds in SQL (exact; DuckDB's timestamp unit)


def _calls_sql(columns: set[str], where: str, first: str, settings: Settings, with_town: bool) -> str:
    """SQL of one row per filtered call, numbers only (the temp table stays small): row id, call
    time, month, [town], first-due unit ``code`` and its targets (µs, NULL when no unit matched),
    ``has_units``, the three times in µs (an impossible one NULL) and ``invalid``."""
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
    town = f", {col['town']} AS town" if with_town else ""
    limit = int(round(float(settings.response_max_interval_s) * US))

    def valid(raw: str) -> str:
        return f"CASE WHEN {raw} BETWEEN 0 AND {limit} THEN {raw} END"

    inner = f"""
        SELECT i.rowid AS rid, i.reported_at, CAST(date_trunc('month', i.reported_at) AS DATE) AS month{town},
               f.code, f.turnout_target_us, f.on_scene_target_us, {units} AS has_units,
               {rolled} - {call} AS t, {arrived} - {rolled} AS v,
               CASE WHEN {arrived} IS NOT NULL THEN {arrived} - {call} ELSE {legacy} END AS a, {bad_legacy} AS bad
        FROM incident i {join}
        WHERE {where}"""
    return f"""SELECT rid, reported_at, month{', town' if with_town else ''}, code, turnout_target_us,
                      on_scene_target_us, has_units,
                      {valid('t')} AS turnout_us, {valid('v')} AS travel_us, {valid('a')} AS total_us,
                      bad OR (t IS NOT NULL AND turnout_us IS NULL) OR (v IS NOT NULL AND travel_us IS NULL)
                        OR (a IS NOT NULL AND total_us IS NULL) AS invalid
               FROM ({inner})"""


def _key_columns(by: str) -> tuple[str, ...]:
    """The temp table's columns a grouping ``by`` groups on (``unit`` groups by the unit ``code``)."""
    return ("code",) if by == "unit" else GROUP_COLUMNS[by]


def _figures_sql(calls: str, bys: tuple[str, ...]) -> tuple[str, dict[str, int]]:
    """One query for several groupings (GROUPING SETS: one scan of ``calls``); returns the SQL and
    the ``grouping_id`` of each grouping. A unit grouping leaves out calls without a matched unit."""
    keys = list(dict.fromkeys(c for by in bys for c in _key_columns(by)))
    qs = ", ".join(f"{p / 100!r}" for p in PERCENTILES)
    pieces = [
        "count(*) AS calls", *(f"quantile_disc({m}_us, [{qs}]) AS _{m}" for m in MEASURES),
        *(f"count({m}_us) AS {m}_n" for m in MEASURES),
        "count(*) FILTER (WHERE turnout_us <= turnout_target_us) AS turnout_met",
        "count(turnout_us + turnout_target_us) AS turnout_judged",
        "count(*) FILTER (WHERE total_us <= on_scene_target_us) AS on_scene_met",
        "count(total_us + on_scene_target_us) AS on_scene_judged",
    ]
    ids = {by: sum(1 << (len(keys) - 1 - k) for k, c in enumerate(keys) if c not in _key_columns(by)) for by in bys}
    gid = f"grouping_id({', '.join(keys)})" if keys else "0"
    sets = ", ".join("(" + ", ".join(_key_columns(by)) + ")" for by in bys)
    select = ", ".join([*(f'"{k}"' for k in keys), f"{gid} AS _gid", *pieces])
    group = f" GROUP BY GROUPING SETS ({sets})" if keys else ""
    return f"SELECT {select} FROM {calls}{group}", ids


def _unpack(frame: pd.DataFrame, by: str, units: pd.DataFrame) -> pd.DataFrame:
    """Percentile lists (µs) into columns of seconds, met shares, unit codes into layer, id and
    name; columns ``GROUP_COLUMNS[by] + FIGURE_COLUMNS``."""
    keys = list(_key_columns(by))
    out = frame.copy()
    if by == "unit":
        out = out[out["code"].notna()]  # calls whose first unit matched no responder are in no unit's row
    if keys:
        out = out.sort_values(keys, na_position="last", kind="stable")
    if by == "unit":
        codes = out.pop("code").to_numpy(dtype=np.int64)
        for c in GROUP_COLUMNS["unit"]:
            out[c] = units[c].to_numpy(dtype=object)[codes]
    for m in MEASURES:
        lists = out.pop(f"_{m}")
        for k, p in enumerate(PERCENTILES):
            values = [v[k] if isinstance(v, (list, np.ndarray)) and len(v) > k and v[k] is not None else np.nan
                      for v in lists]
            out[f"{m}_p{p}_s"] = np.asarray(values, dtype=float) / US
    for kind in ("turnout", "on_scene"):
        judged = out[f"{kind}_judged"].astype(float)
        out[f"{kind}_met_share"] = (out[f"{kind}_met"] / judged.where(judged > 0)).astype(float)
    ints = ["calls", *(f"{m}_n" for m in MEASURES), "turnout_met", "turnout_judged", "on_scene_met", "on_scene_judged"]
    out = out.astype({c: np.int64 for c in ints})
    if "month" in out:
        out["month"] = pd.to_datetime(out["month"])
    out = out[[*GROUP_COLUMNS[by], *FIGURE_COLUMNS]]
    if by == "unit":
        out = out.sort_values(["layer", "unit_id"], kind="stable")
    return out.reset_index(drop=True)


def _worst(con: duckdb.DuckDBPyConnection, calls: str, limit: int, units: pd.DataFrame) -> pd.DataFrame:
    """The ``limit`` slowest calls by total time (ties: earlier call first) with their first-due unit."""
    top = con.execute(f"""SELECT c.rid, c.code, c.turnout_us, c.travel_us, c.total_us, c.on_scene_target_us
                          FROM {calls} c WHERE c.total_us IS NOT NULL
                          ORDER BY c.total_us DESC, c.reported_at, c.rid LIMIT {int(limit)}""").df()
    names = con.execute("SELECT rowid AS rid, id, reported_at, town, kind FROM incident WHERE rowid IN "
                        "(SELECT unnest(?))", [top["rid"].astype(np.int64).tolist()]).df()
    frame = top.merge(names, on="rid", how="left")
    for m in (*MEASURES, "on_scene_target"):
        frame[f"{m}_s"] = frame.pop(f"{m}_us").astype(float) / US
    frame["on_scene_met"] = (frame["total_s"] <= frame["on_scene_target_s"]).astype(object).where(
        frame["on_scene_target_s"].notna(), None)
    codes = frame.pop("code")
    known = codes.notna().to_numpy()
    idx = codes.fillna(0).to_numpy(dtype=np.int64)
    for c in GROUP_COLUMNS["unit"]:
        values = units[c].to_numpy(dtype=object)[idx] if len(units) else np.full(len(frame), None, dtype=object)
        frame[c] = np.where(known, values, None)
    return frame[list(WORST_COLUMNS)]


def _unit_codes(first: pd.DataFrame, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``first`` with a ``code`` per unit (layer, id) and its targets in µs; the units by code."""
    codes, _ = pd.factorize(first["layer"].astype(str) + "\x00" + first["unit_id"].astype(str))
    timing = {layer: layer_timing(layer, settings) for layer in RESPONDER_LAYERS}
    layer = first["layer"].astype(object)
    first = first.assign(
        code=codes.astype(np.int64),
        turnout_target_us=layer.map({k: int(round(v[0] * US)) for k, v in timing.items()}).astype(np.int64),
        on_scene_target_us=layer.map({k: int(round(v[1] * US)) for k, v in timing.items()}).astype(np.int64),
    )
    units = first.drop_duplicates("code").sort_values("code")[list(GROUP_COLUMNS["unit"])].reset_index(drop=True)
    return first, units


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
    columns = _incident_columns(con)
    first, unmatched = _first_units(con, where, params) if "units" in columns else _first_units(con, "FALSE", [])
    first, units = _unit_codes(first, settings)
    first_name, calls = f"_response_first_{next(_names)}", f"_response_calls_{next(_names)}"
    con.register(first_name, first)
    try:
        sql = _calls_sql(columns, where, first_name, settings, with_town=by == "town")
        con.execute(f"CREATE TEMP TABLE {calls} AS {sql}", params)
    finally:
        con.unregister(first_name)
    try:
        bys = (by, "district") if by == "month" else (by, "month", "district")
        sql, ids = _figures_sql(calls, bys)
        grouped = con.execute(sql).df()
        parts = {b: _unpack(grouped[grouped["_gid"] == ids[b]], b, units) for b in bys}
        table, overall, trend = parts[by], parts["district"], parts["month"]
        worst = _worst(con, calls, settings.response_worst_calls, units)
        counts = con.execute(f"""SELECT count(*) FILTER (WHERE NOT has_units),
                                        count(*) FILTER (WHERE has_units AND code IS NULL),
                                        count(*) FILTER (WHERE invalid) FROM {calls}""").fetchone()
    finally:
        con.execute(f"DROP TABLE IF EXISTS {calls}")
    return ResponsePerformance(
        by=by, filter=flt, table=table, district={c: _plain(overall[c].iloc[0]) for c in overall.columns},
        trend=trend, worst=worst, unmatched=unmatched,
        targets={layer: layer_timing(layer, settings) for layer in RESPONDER_LAYERS},
        calls_without_unit=int(counts[0]), first_unit_unmatched=int(counts[1]), invalid=int(counts[2]),
    )


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (NaN stays NaN for jsonsafe to turn into null)."""
    return value.item() if isinstance(value, np.generic) else value


def incident_towns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Towns that calls are assigned to (for a clear error on an unknown ``--town``)."""
    if "town" not in _incident_columns(con):
        return []
    return [r[0] for r in con.execute("SELECT DISTINCT town FROM incident WHERE town IS NOT NULL ORDER BY town").fetchall()]
