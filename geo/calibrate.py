"""Modelled vs measured travel: the road model's ETA for real calls, and the slow-down factor they imply.

For every incident with a rolling time (出动时间), a first arrival (到场时间) and a first-due unit
(the first unit named in 出动力量, matched to a station or micro station by ``geo.units``):

- measured travel = arrival − rolling;
- modelled travel = the road model's time from that unit's station to the call, both snapped to
  the network (``Settings.snap_distance_m``): one Dijkstra per distinct unit over the forward
  graph, all of its calls at once (``route_times``).

The ratio measured / modelled (modelled at the settings' current factor) is summarised by road
class, town and hour of the rolling time. Percentiles are **nearest-rank**: the p-th percentile
of n values is the smallest value with at least p·n of the values ≤ it (sorted value number
⌈p·n⌉, ``geo.response.nearest_rank``: one rule for every figure), so it is always one of the
measured values.

Road class of a call: the OSM class (``highway``, ``*_link`` counted as its parent) of the
**last edge of its modelled route**, i.e. the street the call is on as the appliance arrives.

The fit: the model's travel time at slow-down factor f is ``free_flow / f`` (free_flow = the
route at the class speeds, f = 1; every edge scales alike, so the route does not depend on f
and one search per unit serves every candidate factor). The factor minimises the sum of
absolute errors of log travel times, Σ |log measured − log(free_flow / f)|, whose minimiser is
``f = exp(median(log(free_flow / measured)))``: a call twice too slow weighs as much as one twice
too fast, and a few wild calls (a wrong arrival time, an appliance held up on the way) cannot
move it, unlike least squares. Per-class speeds are not fitted (one factor for every class).
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from geo import response, units
from geo.errors import ConfigError, NetworkError, ValidationError
from geo.network import RoadGraph, load_graph
from geo.settings import Settings

PERCENTILES: tuple[float, ...] = (0.5, 0.9)
LIMIT_SLACK = 1.5
"""A unit's first search stops at 1.5 × the longest measured travel of its calls (scaled to the
model's speed); calls not reached by then get a second, unbounded search (exact either way)."""
UNKNOWN_CLASS = "(unknown)"
NO_TOWN = "(未分配)"
SKIP_REASONS: dict[str, str] = {
    "no_times": "no rolling (出动时间) or arrival (到场时间) time",
    "not_after": "arrival not after rolling",
    "no_unit": "no unit named (出动力量 empty)",
    "unit_unmatched": "first unit not found among stations and micro stations (unknown or ambiguous name)",
    "unit_off_road": "first unit's station has no position or is farther than snap_distance_m from the roads",
    "call_off_road": "call farther than snap_distance_m from the roads",
    "no_route": "no road path from the unit's station to the call",
    "same_node": "unit and call on the same road node (no modelled travel)",
}
INCIDENT_COLUMNS: tuple[str, ...] = ("id", "dispatched_at", "arrived_at", "units", "lon", "lat", "town")
CALL_COLUMNS: tuple[str, ...] = (
    "incident_id", "unit_layer", "unit_id", "unit_name", "town", "hour", "road_class",
    "measured_s", "free_flow_s", "modelled_s", "ratio",
)


# --------------------------------------------------------------------------- percentiles


def _percent(p: float) -> int:
    """A fraction (0.9) as the integer percent ``geo.response.nearest_rank`` takes (90)."""
    percent = round(p * 100)
    if abs(percent - p * 100) > 1e-9:
        raise ValueError(f"percentile {p!r} is not a whole percent")
    return int(percent)


def nearest_rank(values: np.ndarray, p: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``p`` of the values ≤ it (NaN if
    none); ``p`` a fraction, the rank by ``geo.response.nearest_rank`` (the one rule)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    return float(response.nearest_rank(v, [len(v)], _percent(p))[0])


def grouped_percentiles(codes: np.ndarray, labels: np.ndarray, values: np.ndarray, name: str) -> pd.DataFrame:
    """Per label (``labels[code]``, sorted): ``calls`` and the nearest-rank p50/p90 of ``values``."""
    codes = np.asarray(codes, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)[np.lexsort((values, codes))]
    size = np.bincount(codes, minlength=len(labels))
    present = np.flatnonzero(size)
    order = present[np.argsort(np.asarray(labels, dtype=object)[present].astype(str) if labels.dtype == object
                               else np.asarray(labels)[present], kind="stable")]
    out = pd.DataFrame({name: pd.Series(np.asarray(labels)[order], dtype=labels.dtype),
                        "calls": size[order].astype(np.int64)})
    for p in PERCENTILES:
        out[f"p{_percent(p)}"] = response.nearest_rank(v, size, _percent(p))[order]
    return out


def mmss(seconds: float) -> str:
    """Seconds as m:ss (``-`` for NaN); negative values keep their sign."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    whole = round(abs(seconds))
    return f"{'-' if seconds < 0 else ''}{whole // 60}:{whole % 60:02d}"


# --------------------------------------------------------------------------- road classes


@dataclass(frozen=True)
class EdgeClasses:
    """OSM class of every edge of a ``RoadGraph``: ``keys`` = u·n + v (sorted), ``codes`` into ``names``."""

    keys: np.ndarray
    codes: np.ndarray
    names: tuple[str, ...]

    @property
    def labels(self) -> np.ndarray:
        """Class names by code; the last one, code ``len(names)``, is ``UNKNOWN_CLASS``."""
        return np.asarray(self.names + (UNKNOWN_CLASS,), dtype=object)

    def lookup(self, u: np.ndarray, v: np.ndarray, n_nodes: int) -> np.ndarray:
        """Class codes (into ``labels``) of the edges u → v (the unknown code where there is no such edge)."""
        key = np.asarray(u, dtype=np.int64) * n_nodes + np.asarray(v, dtype=np.int64)
        if len(self.keys) == 0:
            return np.full(len(key), len(self.names), dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
        return np.where(self.keys[pos] == key, self.codes[pos], len(self.names))


def edge_classes(graph: RoadGraph, edges: pd.DataFrame) -> EdgeClasses:
    """Classes of the graph's edges from ``road_edges`` rows (u, v node ids, length_m, speed_kmh, highway).

    Of parallel edges the fastest is the graph's (``graph_from_tables``), so its class is taken.
    """
    ids = graph.node_ids
    u = np.searchsorted(ids, edges["u"].to_numpy(np.int64))
    v = np.searchsorted(ids, edges["v"].to_numpy(np.int64))
    hw = edges["highway"].astype("string").fillna(UNKNOWN_CLASS).str.lower().str.replace(r"_link$", "", regex=True)
    codes, names = pd.factorize(hw)
    seconds = edges["length_m"].to_numpy(np.float64) / edges["speed_kmh"].to_numpy(np.float64)
    key = u.astype(np.int64) * graph.n_nodes + v
    order = np.lexsort((seconds, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    sel = order[first]
    return EdgeClasses(key[sel], codes[sel].astype(np.int64), tuple(str(n) for n in names))


def load_edge_classes(con: duckdb.DuckDBPyConnection, graph: RoadGraph) -> EdgeClasses:
    """``edge_classes`` of the store's ``road_edges``."""
    edges = con.execute("SELECT u, v, length_m, speed_kmh, highway FROM road_edges").df()
    return edge_classes(graph, edges)


# --------------------------------------------------------------------------- routes


def _nearest_unit_times(
    graph: RoadGraph, unit_nodes: np.ndarray, call_nodes: np.ndarray, groups: np.ndarray,
    seconds: np.ndarray, last: np.ndarray,
) -> None:
    """Fill the calls whose unit is the nearest of its group's units to the call.

    One multi-source Dijkstra per group (``min_only``, as ``geo.coverage`` runs per layer) gives
    every node its nearest source; where that source is the call's own unit the time is that
    unit's exact route time. The other calls stay inf (searched per unit by ``route_times``).
    """
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        sources = np.unique(unit_nodes[rows])
        dist, pred, src = dijkstra(graph.seconds, indices=sources, min_only=True, return_predecessors=True)
        nodes = call_nodes[rows]
        own = (src[nodes] == unit_nodes[rows]) & np.isfinite(dist[nodes])
        seconds[rows[own]] = dist[nodes[own]]
        last[rows[own]] = pred[nodes[own]]


def route_times(
    graph: RoadGraph, unit_nodes: np.ndarray, call_nodes: np.ndarray, bounds_s: np.ndarray,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Model travel seconds (at the graph's factor) from each call's unit node to its call node.

    Calls whose unit is the nearest of its ``groups`` (the unit's layer) to the call take their
    time from one multi-source search per group (the common case: the first-due unit is the
    nearest). Each remaining unit gets one Dijkstra over the forward graph for all its calls,
    bounded by the largest ``bounds_s`` of them (× ``LIMIT_SLACK``); calls not reached get one
    unbounded search. Both are exact. Returns (seconds, predecessor of the call node on the
    route, -1 at the source); unreachable calls get inf.
    """
    seconds = np.full(len(call_nodes), np.inf)
    last = np.full(len(call_nodes), -1, dtype=np.int64)
    if len(call_nodes) == 0:
        return seconds, last
    _nearest_unit_times(graph, unit_nodes, call_nodes,
                        np.zeros(len(call_nodes), np.int64) if groups is None else groups, seconds, last)
    rest = np.flatnonzero(~np.isfinite(seconds))
    if len(rest) == 0:
        return seconds, last
    order = rest[np.argsort(unit_nodes[rest], kind="stable")]
    sorted_units = unit_nodes[order]
    starts = np.flatnonzero(np.r_[True, sorted_units[1:] != sorted_units[:-1]])
    for begin, end in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        rows = order[begin:end]
        limit = float(np.max(bounds_s[rows])) * LIMIT_SLACK
        for bound in (limit, np.inf):
            dist, pred = dijkstra(graph.seconds, indices=int(sorted_units[begin]), limit=bound,
                                  return_predecessors=True)
            seconds[rows] = dist[call_nodes[rows]]
            last[rows] = pred[call_nodes[rows]]
            if np.isfinite(seconds[rows]).all():
                break
    return seconds, last


# --------------------------------------------------------------------------- calls


def _skip(skipped: dict[str, int], reason: str, mask: np.ndarray) -> None:
    n = int(np.count_nonzero(mask))
    if n:
        skipped[reason] = skipped.get(reason, 0) + n


def first_due_rows(texts: pd.Series, responders: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per 出动力量 cell: the row of ``responders`` of its first-named unit (-1 if none matched)
    and whether it names any unit at all.

    ``geo.units.match_units`` runs once per distinct cell (exports repeat a few hundred cells
    over many calls); position 0 is the first-due unit.
    """
    codes, cells = pd.factorize(texts, use_na_sentinel=True)
    distinct = pd.DataFrame({"id": np.arange(len(cells), dtype=np.int64), "units": np.asarray(cells, dtype=object)})
    match = units.match_units(distinct, responders)
    named = np.zeros(len(cells) + 1, dtype=bool)  # the extra slot is the NA code (-1)
    row = np.full(len(cells) + 1, -1, dtype=np.int64)
    for part in (match.pairs, match.unmatched):
        named[np.asarray(part["incident_id"], dtype=np.int64)] = True
    first = match.pairs[match.pairs["position"].to_numpy() == 0]
    keys = pd.MultiIndex.from_arrays([responders["layer"].astype(object), responders["id"].astype(object)])
    at = keys.get_indexer(pd.MultiIndex.from_arrays([first["layer"].astype(object), first["unit_id"].astype(object)]))
    row[np.asarray(first["incident_id"], dtype=np.int64)] = at
    return row[codes], named[codes]


def measured_calls(incidents: pd.DataFrame, responders: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """Calls with a measured travel and a matched first-due unit, and the count skipped per reason.

    ``incidents`` needs ``INCIDENT_COLUMNS``; ``responders`` is ``geo.units.load_responders``'s
    frame (one row per layer and id). Returned columns (numbers only): inc_row (row of ``incidents``),
    lon, lat, hour (of the rolling time), measured_s, unit_row (row of ``responders`` without
    repeated layer and id).
    """
    skipped: dict[str, int] = {}
    rolled = pd.to_datetime(incidents["dispatched_at"], errors="coerce")
    arrived = pd.to_datetime(incidents["arrived_at"], errors="coerce")
    timed = (rolled.notna() & arrived.notna()).to_numpy()
    _skip(skipped, "no_times", ~timed)
    measured = (arrived - rolled).dt.total_seconds().to_numpy(dtype=np.float64)
    after = timed & (measured > 0)
    _skip(skipped, "not_after", timed & ~after)
    unit_row, named = first_due_rows(incidents["units"], responders.drop_duplicates(["layer", "id"]))
    _skip(skipped, "no_unit", after & ~named)
    _skip(skipped, "unit_unmatched", after & named & (unit_row < 0))
    keep = after & (unit_row >= 0)
    calls = pd.DataFrame({
        "inc_row": np.flatnonzero(keep),
        "lon": incidents["lon"].to_numpy(dtype=np.float64)[keep],
        "lat": incidents["lat"].to_numpy(dtype=np.float64)[keep],
        "hour": rolled.dt.hour.to_numpy()[keep].astype(np.int64),
        "measured_s": measured[keep],
        "unit_row": unit_row[keep],
    })
    return calls, skipped


def model_calls(
    calls: pd.DataFrame, responders: pd.DataFrame, graph: RoadGraph, classes: EdgeClasses | None,
    settings: Settings, skipped: dict[str, int],
) -> pd.DataFrame:
    """Add free_flow_s, modelled_s (at the settings' factor), ratio and class_code (into
    ``classes.labels``); drop (and count in ``skipped``) calls that cannot be placed on the network
    or have no route."""
    snap_d = settings.snap_distance_m
    resp = responders.drop_duplicates(["layer", "id"]).reset_index(drop=True)
    resp_snap = graph.snap(resp["lon"].to_numpy(np.float64), resp["lat"].to_numpy(np.float64), snap_d)
    rows = calls["unit_row"].to_numpy()
    unit_ok, unit_node = resp_snap.ok[rows], resp_snap.node[rows]
    call_snap = graph.snap(calls["lon"].to_numpy(np.float64), calls["lat"].to_numpy(np.float64), snap_d)
    _skip(skipped, "unit_off_road", ~unit_ok)
    _skip(skipped, "call_off_road", unit_ok & ~call_snap.ok)
    ok = unit_ok & call_snap.ok
    same = ok & (unit_node == call_snap.node)
    _skip(skipped, "same_node", same)
    ok &= ~same
    factor = settings.urban_slowdown_factor
    out = calls[ok].reset_index(drop=True)
    layer_code = pd.factorize(resp["layer"].astype(object))[0][rows[ok]]
    # the model at the current factor is free_flow / factor; bound each unit's search by its slowest call
    modelled, last = route_times(graph, unit_node[ok], call_snap.node[ok], out["measured_s"].to_numpy() / factor,
                                 layer_code)
    routed = np.isfinite(modelled)
    _skip(skipped, "no_route", ~routed)
    out = out[routed].reset_index(drop=True)
    modelled, last, call_nodes = modelled[routed], last[routed], call_snap.node[ok][routed]
    out["modelled_s"] = modelled
    out["free_flow_s"] = modelled * factor
    out["ratio"] = out["measured_s"].to_numpy() / modelled
    out["class_code"] = (classes.lookup(last, call_nodes, graph.n_nodes) if classes is not None
                         else np.zeros(len(out), dtype=np.int64))
    return out


# --------------------------------------------------------------------------- fit


def fit_factor(measured_s: np.ndarray, free_flow_s: np.ndarray) -> float:
    """The slow-down factor minimising Σ |log measured − log(free_flow / f)|: exp(median log(free_flow / measured))."""
    log_ratio = np.log(np.asarray(free_flow_s, dtype=np.float64) / np.asarray(measured_s, dtype=np.float64))
    return float(np.exp(np.median(log_ratio)))


def error_figures(measured_s: np.ndarray, modelled_s: np.ndarray) -> dict[str, float]:
    """p50/p90 (nearest rank) of |measured − modelled| seconds."""
    err = np.abs(np.asarray(measured_s, dtype=np.float64) - np.asarray(modelled_s, dtype=np.float64))
    return {f"p{round(p * 100)}_s": nearest_rank(err, p) for p in PERCENTILES}


@dataclass(frozen=True, eq=False)
class Calibration:
    """Modelled vs measured travel of the calls used, the fitted factor and the errors before/after.

    ``calls`` has ``CALL_COLUMNS`` (modelled_s and ratio at ``factor_before``); ``skipped`` counts
    calls left out per ``SKIP_REASONS`` key; ``by_class``/``by_town``/``by_hour`` give calls and
    the nearest-rank p50/p90 of the ratio.
    """

    calls: pd.DataFrame
    skipped: dict[str, int]
    factor_before: float
    factor: float
    error_before: dict[str, float]
    error_after: dict[str, float]
    by_class: pd.DataFrame = field(repr=False)
    by_town: pd.DataFrame = field(repr=False)
    by_hour: pd.DataFrame = field(repr=False)

    @property
    def used(self) -> int:
        """Number of calls the fit used."""
        return len(self.calls)

    def to_dict(self) -> dict[str, Any]:
        """Plain figures for JSON (``onemap calibrate --json``)."""
        return {
            "calls_used": self.used,
            "calls_skipped": {k: {"calls": v, "reason": SKIP_REASONS[k]} for k, v in self.skipped.items()},
            "factor_before": self.factor_before,
            "factor": round(self.factor, 4),
            "loss": "least absolute deviation of log travel times (factor = exp(median log(free_flow / measured)))",
            "percentiles": "nearest rank",
            "error_before_s": self.error_before,
            "error_after_s": self.error_after,
            "ratio_by_road_class": self.by_class,
            "ratio_by_town": self.by_town,
            "ratio_by_hour": self.by_hour,
        }


def calibrate(
    incidents: pd.DataFrame, responders: pd.DataFrame, graph: RoadGraph, classes: EdgeClasses | None,
    settings: Settings,
) -> Calibration:
    """Measured vs modelled travel of ``incidents`` and the slow-down factor that fits them best.

    Raises ``ValidationError`` when no call can be used (the message counts each reason).
    """
    calls, skipped = measured_calls(incidents, responders)
    calls = model_calls(calls, responders, graph, classes, settings, skipped)
    if len(calls) == 0:
        reasons = "; ".join(f"{n} {SKIP_REASONS[k]}" for k, n in skipped.items()) or "no incidents"
        raise ValidationError(f"no call can calibrate the road model: {reasons}")
    measured, free = calls["measured_s"].to_numpy(), calls["free_flow_s"].to_numpy()
    factor = fit_factor(measured, free)
    ratio, inc_row = calls["ratio"].to_numpy(), calls["inc_row"].to_numpy()
    town_code, towns = pd.factorize(np.asarray(incidents["town"].to_numpy(dtype=object)[inc_row], dtype=object))
    towns = np.append(np.asarray(towns, dtype=object), NO_TOWN)
    town_code = np.where(town_code < 0, len(towns) - 1, town_code)
    class_labels = classes.labels if classes is not None else np.array([UNKNOWN_CLASS], dtype=object)
    return Calibration(
        calls=_call_table(calls, incidents, responders, towns[town_code], class_labels), skipped=skipped,
        factor_before=settings.urban_slowdown_factor, factor=factor,
        error_before=error_figures(measured, calls["modelled_s"].to_numpy()),
        error_after=error_figures(measured, free / factor),
        by_class=grouped_percentiles(calls["class_code"].to_numpy(), class_labels, ratio, "road_class"),
        by_town=grouped_percentiles(town_code, towns, ratio, "town"),
        by_hour=grouped_percentiles(calls["hour"].to_numpy(), np.arange(24), ratio, "hour"),
    )


def _call_table(calls: pd.DataFrame, incidents: pd.DataFrame, responders: pd.DataFrame, town: np.ndarray,
                class_labels: np.ndarray) -> pd.DataFrame:
    """The per-call table (``CALL_COLUMNS``); text columns stay object arrays (no string conversion)."""
    resp = responders.drop_duplicates(["layer", "id"]).reset_index(drop=True)
    unit_row = calls["unit_row"].to_numpy()

    def text(values: np.ndarray) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=object), dtype=object)

    return pd.DataFrame({
        "incident_id": text(incidents["id"].to_numpy(dtype=object)[calls["inc_row"].to_numpy()]),
        "unit_layer": text(resp["layer"].to_numpy(dtype=object)[unit_row]),
        "unit_id": text(resp["id"].to_numpy(dtype=object)[unit_row]),
        "unit_name": text(resp["name"].to_numpy(dtype=object)[unit_row]),
        "town": text(town), "hour": calls["hour"].to_numpy(),
        "road_class": text(class_labels[calls["class_code"].to_numpy()]),
        "measured_s": calls["measured_s"].to_numpy(), "free_flow_s": calls["free_flow_s"].to_numpy(),
        "modelled_s": calls["modelled_s"].to_numpy(), "ratio": calls["ratio"].to_numpy(),
    })


def _incidents(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    present = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'incident'").fetchall()}
    missing = [c for c in INCIDENT_COLUMNS if c not in present and c != "town"]
    if missing:
        raise ValidationError(f"the incident table lacks {missing}; re-import incidents with 出动时间/到场时间/出动力量")
    select = ", ".join(f'"{c}"' if c in present else f'NULL AS "{c}"' for c in INCIDENT_COLUMNS)
    return con.execute(f"SELECT {select} FROM incident").df()


def calibrate_store(con: duckdb.DuckDBPyConnection, settings: Settings) -> Calibration:
    """``calibrate`` on the database: its incidents, stations and micro stations, and roads.

    Clear errors (``ValidationError`` / ``NetworkError``) when there are no incidents with
    rolling and arrival times, no stations or micro stations, or no roads.
    """
    incidents = _incidents(con)
    timed = incidents["dispatched_at"].notna() & incidents["arrived_at"].notna()
    if not timed.any():
        raise ValidationError(
            f"no incident has both 出动时间 (dispatched_at) and 到场时间 (arrived_at) ({len(incidents)} incidents); "
            "import a dispatch export with `onemap ingest incident FILE`")
    responders = units.load_responders(con)
    if len(responders) == 0:
        raise ValidationError("no stations or micro stations in the database: import fire_station / micro_station")
    graph = load_graph(con, settings)
    if graph is None:
        raise NetworkError("no roads in the database: import them with `onemap roads FILE`")
    return calibrate(incidents, responders, graph, load_edge_classes(con, graph), settings)


# --------------------------------------------------------------------------- settings file


WRITTEN_KEYS: tuple[str, ...] = ("urban_slowdown_factor", "road_calibration_calls", "road_calibration_date")
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_COMMENT_MARK = "# onemap calibrate"


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _section_of_lines(lines: list[str]) -> list[str | None]:
    """Table each line belongs to (None = top level; array tables ``[[x]]`` count as their own)."""
    current: str | None = None
    out = []
    for line in lines:
        m = _HEADER.match(line)
        if m and not line.lstrip().startswith("[["):
            current = m.group(1)
        elif line.lstrip().startswith("[["):
            current = "[[" + line.strip()
        out.append(current)
    return out


def updated_settings_text(text: str, values: dict[str, Any], comment: str) -> str:
    """The TOML ``text`` with ``values`` set in its ``[onemap]`` table (or top level when it has none).

    Existing lines of those keys are replaced in place, earlier ``# onemap calibrate`` comments
    go, and one comment line is put above the first key; every other line stays as it was.
    """
    parsed = tomllib.loads(text)
    table = "onemap" if isinstance(parsed.get("onemap"), dict) else None
    lines = text.splitlines()
    sections = _section_of_lines(lines)
    pattern = re.compile(r"^\s*(" + "|".join(map(re.escape, values)) + r")\s*=")
    kept, where = [], None
    for line, section in zip(lines, sections, strict=True):
        if section == table and line.lstrip().startswith(_COMMENT_MARK):
            continue
        if section == table and pattern.match(line):
            where = len(kept) if where is None else where
            continue
        kept.append(line)
    if where is None:
        where = next((i + 1 for i, s in enumerate(_section_of_lines(kept))
                      if table is not None and s == table), None)
        if where is None:  # top level: before the first table header
            where = next((i for i, line in enumerate(kept) if _HEADER.match(line) or line.lstrip().startswith("[[")),
                         len(kept))
    block = [f"{_COMMENT_MARK} {comment}"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    out = kept[:where] + block + kept[where:]
    return "\n".join(out) + "\n"


def write_calibration(path: str | os.PathLike[str], calibration: Calibration, today: date | None = None) -> Path:
    """Write the fitted factor and its marker (calls, date) into the settings TOML ``path``.

    The file is created when missing; other settings and comments are kept (checked: the file
    parsed before and after differs only in the written keys, and it loads as settings), else
    ``ConfigError`` and the file is left as it was. Written through a temporary file and rename.
    """
    p = Path(path)
    if p.exists() and not p.is_file():
        raise ConfigError(f"settings file {p} is not a file")
    try:
        text = p.read_text(encoding="utf-8") if p.exists() else ""
        before = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"settings file {p}: cannot read it as TOML ({exc}); nothing written") from exc
    day = (today or date.today()).isoformat()
    values = {"urban_slowdown_factor": round(calibration.factor, 4),
              "road_calibration_calls": int(calibration.used), "road_calibration_date": day}
    comment = (f"{day}: urban_slowdown_factor fitted to {calibration.used} measured calls "
               f"(was {calibration.factor_before:g})")
    new_text = updated_settings_text(text, values, comment)
    _check_only_written(p, before, tomllib.loads(new_text), values)
    try:
        Settings().with_overrides(**_flat(tomllib.loads(new_text)))
    except ConfigError as exc:
        raise ConfigError(f"settings file {p}: {exc}; nothing written") from exc
    tmp = p.with_name(f".{p.name}.calibrate.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, p)
    return p


def _flat(parsed: dict[str, Any]) -> dict[str, Any]:
    table = parsed.get("onemap", parsed)
    return dict(table) if isinstance(table, dict) else {}


def _check_only_written(p: Path, before: dict[str, Any], after: dict[str, Any], values: dict[str, Any]) -> None:
    """ConfigError unless ``after`` is ``before`` with exactly ``values`` set in its settings table."""
    expected = dict(before)
    if isinstance(before.get("onemap"), dict):
        expected["onemap"] = {**before["onemap"], **values}
    else:
        expected.update(values)
    if after != expected:
        raise ConfigError(
            f"settings file {p}: cannot set {sorted(values)} without changing other lines "
            "(a key written in an unusual form?); nothing written — set urban_slowdown_factor by hand")
