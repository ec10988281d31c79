"""Dispatch assist (一图作战): what the wall shows when a call comes in.

For a point: the nearest responders *of each kind* by ETA (turnout + road travel) with
their routes, the nearest working hydrants and usable water sources by road (walking)
distance, and the key place there with its open hazards.

Joint dispatch (统一调度) sends every kind of force, so the picture lists
``Settings.dispatch_per_kind`` responders of each dispatch group (micro stations; each
fire-station kind: 消防救援站, 政府专职消防队, ...; see ``SPLIT_BY_KIND``), all ordered by ETA.
A single top-N by ETA would fill up with the many micro stations and hide every fire
station. One Dijkstra on the reversed graph from the incident gives every node's travel
time *to* the incident and, through the predecessors, each responder's route; one bounded
Dijkstra on the undirected metre graph finds the water. Water with no road path within
``dispatch_water_search_m`` is not "nearest along roads" and is left out; a responder
with no road path to the point is left out and the result's note says which kinds none
reach. A point beyond the snap distance falls back to straight lines (mode "radius",
said in the note).

Availability (issue 15): a responder is on duty (执勤), out on another call (出警中: named
by a still-open incident, ``geo.units.busy_units``) or out of service (暂停执勤: its
``duty_status``). Each kind lists its ``dispatch_per_kind`` nearest *available* units, and
every busy or out-of-service unit nearer than the last of them is listed too, marked, so
the commander sees why it is not sent. The call being dispatched never makes its own
units busy. ``CallContext`` (``load_context``) carries what the scene does not: duty
status, busy units, the key places' pre-plan fields (预案: storeys, occupants, hazmat,
contact, phone) and the vulnerable residents (特殊群体) counted within
``dispatch_vulnerable_radius_m`` of the call in a straight line. Personal fields
(``LayerSpec.personal_fields``) are masked (``geo.personal``) unless ``show_personal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo import jsonsafe, personal, units
from geo.coverage_inputs import Scene
from geo.errors import ValidationError
from layers.incident import OPEN_STATUSES
from layers.registry import LAYERS

SPLIT_BY_KIND: tuple[str, ...] = ("fire_station",)
"""Responder layers whose stored ``kind`` makes a dispatch group of its own (消防救援站,
政府专职消防队, 乡镇消防队, 企业专职消防队 are different forces). Micro stations of every kind
(社区, 重点单位, 高配版) answer the same "1-3-5" call and form one group."""

RESPONDER_COLUMNS = [
    "rank",
    "group",
    "group_rank",
    "id",
    "name",
    "layer",
    "kind",
    "eta_s",
    "turnout_s",
    "travel_s",
    "distance_m",
    "within_target",
    "available",
    "availability",
    "busy_incident",
    "busy_since",
    "route",
]
ON_DUTY, BUSY, OUT_OF_SERVICE = "on_duty", "busy", "out_of_service"
AVAILABILITY_ZH: dict[str, str] = {ON_DUTY: "执勤", BUSY: "出警中", OUT_OF_SERVICE: "暂停执勤"}
OUT_OF_SERVICE_STATUSES: tuple[str, ...] = ("暂停执勤",)
"""``duty_status`` values of a unit that is not dispatched (``layers.base.DUTY_STATUS``; ingest maps
停用, 维修, 离岗, 不可用 to 暂停执勤)."""
PLACE_FIELDS = ("id", "name", "category", "inspection_class", "town", "community", "grid_id", "lon", "lat")
PREPLAN_FIELDS: tuple[str, ...] = (
    "address", "risk_level", "last_inspection", "storeys", "occupants", "hazmat", "contact", "phone",
)
"""Key-place fields beyond the scene's that the picture shows (预案 fields of ``layers/key_place.py``)."""
VULNERABLE_FIELDS: tuple[str, ...] = (
    "id", "name", "category", "risk_level", "mobility", "age", "phone", "carer", "address", "last_visit",
    "lon", "lat",
)
VULNERABLE_COLUMNS: list[str] = ["id", "distance_m", *[f for f in VULNERABLE_FIELDS if f != "id"]]
HAZARD_FIELDS = (
    "id", "category", "severity", "status", "supervision", "discovered_at", "deadline",
    "description", "place_id", "lon", "lat",
)


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """Responders of each kind by ETA, water reachable by road, the key place and its open hazards.

    ``responders`` has ``RESPONDER_COLUMNS``: ``rank`` is the order by ETA over the whole
    picture, ``group`` the dispatch group (``dispatch_groups``) and ``group_rank`` the
    order among the *available* units of the group (1 = the one to send; 0 for a busy or
    out-of-service unit listed only because it is nearer). ``availability`` is ``on_duty``,
    ``busy`` (``busy_incident`` names the open call, ``busy_since`` its rolling time) or
    ``out_of_service``. ``note`` says what the picture cannot show (straight-line fallback,
    kinds that no road reaches, kinds with no available unit).

    ``key_place`` carries the pre-plan fields (``PREPLAN_FIELDS``) when a ``CallContext`` was
    given; ``vulnerable`` (``VULNERABLE_COLUMNS``) the residents within
    ``vulnerable_radius_m`` (straight-line metres), nearest first. Personal fields are masked
    unless ``personal_shown``.
    """

    mode: str
    lon: float
    lat: float
    node: int
    snap_m: float
    responders: pd.DataFrame
    hydrants: pd.DataFrame
    water_sources: pd.DataFrame
    key_place: dict[str, Any] | None
    hazards: pd.DataFrame
    note: str = ""
    vulnerable: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({c: [] for c in VULNERABLE_COLUMNS}))
    vulnerable_radius_m: float = float("nan")
    personal_shown: bool = False
    availability_known: bool = False


@dataclass(frozen=True, eq=False)
class CallContext:
    """What the store knows around a call beyond the scene, read at ``as_of``.

    ``duty``: layer, id, duty_status of every station and micro station; ``busy``:
    ``geo.units.busy_units`` (layer, unit_id, incident_id, since) of the calls open at
    ``as_of``; ``places``: key-place id and ``PREPLAN_FIELDS``; ``vulnerable``: the
    vulnerable residents (``VULNERABLE_FIELDS``).
    """

    as_of: datetime
    duty: pd.DataFrame
    busy: pd.DataFrame
    places: pd.DataFrame
    vulnerable: pd.DataFrame


def _columns_of(con: Any, table: str) -> set[str]:
    rows = con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table]).fetchall()
    return {r[0] for r in rows}


def _select(con: Any, table: str, wanted: tuple[str, ...], where: str = "", params: list[Any] | None = None) -> pd.DataFrame:
    """``wanted`` columns of ``table`` (a column the table lacks comes back as None; no table: no rows)."""
    have = _columns_of(con, table)
    if not have:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})
    select = ", ".join(f'"{c}"' if c in have else f'NULL AS "{c}"' for c in wanted)
    return con.execute(f'SELECT {select} FROM "{table}" {where}', params or []).df()


def _open_incidents(con: Any, as_of: datetime) -> pd.DataFrame:
    """Incidents naming units that may still be open at ``as_of`` (``units.open_at`` decides).

    The SQL only narrows the rows read (an open status, or no status and not cleared yet).
    """
    wanted = ("id", "units", "reported_at", "dispatched_at", "cleared_at", "status")
    if not {"id", "units", "reported_at", "status", "cleared_at"} <= _columns_of(con, "incident"):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in wanted})
    marks = ", ".join("?" for _ in OPEN_STATUSES)
    where = (f"WHERE units IS NOT NULL AND reported_at <= ? AND (status IN ({marks}) "
             "OR (status IS NULL AND (cleared_at IS NULL OR cleared_at > ?)))")
    return _select(con, "incident", wanted, where, [as_of, *OPEN_STATUSES, as_of])


def load_context(con: Any, as_of: datetime | None = None) -> CallContext:
    """Duty status, busy units, pre-plan fields and vulnerable residents from the store ``con``."""
    moment = as_of or datetime.now()
    responders = units.load_responders(con)
    busy = units.busy_units(_open_incidents(con, moment), responders, moment)
    duty = responders[["layer", "id", "duty_status"]].reset_index(drop=True)
    places = _select(con, "key_place", ("id", *PREPLAN_FIELDS))
    vulnerable = _select(con, "vulnerable_person", VULNERABLE_FIELDS)
    return CallContext(moment, duty, busy, places, vulnerable)


@dataclass(frozen=True)
class _Point:
    """The incident placed in the scene: projected metres, road node and how it was placed."""

    x: float
    y: float
    node: int
    snap_m: float
    mode: str
    note: str


def dispatch_groups(responders: pd.DataFrame) -> np.ndarray:
    """Dispatch group of each responder: its layer, or ``layer:kind`` for ``SPLIT_BY_KIND`` layers.

    A fire station with no stored kind stays in the group ``fire_station``.
    """
    layer = responders["layer"].astype(str).to_numpy(dtype=object)
    if "kind" not in responders or len(responders) == 0:
        return layer
    kind = responders["kind"].to_numpy(dtype=object)
    has_kind = np.array([isinstance(k, str) and k.strip() != "" for k in kind], dtype=bool)
    split = np.isin(layer, SPLIT_BY_KIND) & has_kind
    out = layer.copy()
    out[split] = layer[split] + ":" + np.array([str(k).strip() for k in kind[split]], dtype=object)
    return out


def group_label(group: str, lang: str = "zh") -> str:
    """Words for a dispatch group: the stored kind (消防救援站, ...), else the layer's name."""
    layer, _, kind = group.partition(":")
    if kind:
        return kind
    spec = LAYERS.get(layer)
    if spec is None:
        return layer
    return spec.zh if lang == "zh" else spec.en


def pick_per_group(groups: np.ndarray, eta_s: np.ndarray, ids: np.ndarray, per_group: int) -> np.ndarray:
    """Indices of the ``per_group`` smallest finite ETAs of each group, ordered by ETA (then id).

    Vectorised: one sort by (group, ETA, id), the position within each group, one sort back.
    """
    finite = np.flatnonzero(np.isfinite(eta_s))
    if len(finite) == 0:
        return finite
    order = finite[np.lexsort((ids[finite], eta_s[finite], groups[finite]))]
    g = groups[order]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    pos = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    kept = order[pos < per_group]
    return kept[np.lexsort((ids[kept], eta_s[kept]))]


def _place_point(scene: Scene, lon: float, lat: float) -> _Point:
    """Project the incident and snap it to the road graph (or fall back to straight lines)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        msg = f"dispatch point lon={lon!r}, lat={lat!r}: coordinates must be finite numbers (WGS-84 degrees)"
        raise ValidationError(msg)
    s = scene.settings
    x0, y0 = scene.project([lon], [lat])
    if not (np.isfinite(x0[0]) and np.isfinite(y0[0])):
        msg = f"dispatch point lon={lon}, lat={lat} cannot be placed on the map; check the CRS and the order lon, lat"
        raise ValidationError(msg)
    g = scene.graph
    if scene.mode != "network" or g is None:
        return _Point(float(x0[0]), float(y0[0]), -1, float("nan"), "radius", "")
    snap = g.snap([lon], [lat], s.snap_distance_m)
    snap_m = float(snap.distance_m[0])
    if snap.ok[0]:
        return _Point(float(x0[0]), float(y0[0]), int(snap.node[0]), snap_m, "network", "")
    note = (
        f"point is {snap_m:.0f} m from the road network (snap distance {s.snap_distance_m:.0f} m); "
        "times are straight-line estimates"
    )
    return _Point(float(x0[0]), float(y0[0]), -1, snap_m, "radius", note)


def _reach_note(groups: np.ndarray, listed: np.ndarray, mode: str) -> str:
    """What the picture lacks: no responder at all, or kinds that no road reaches."""
    how = "along roads" if mode == "network" else "in a straight line"
    if len(groups) == 0:
        return "no responder reaches this point: no active responder is stored"
    if len(listed) == 0:
        return f"no responder reaches this point {how} (a one-way or unconnected road?)"
    missing = sorted(set(groups.tolist()) - set(listed.tolist()))
    if not missing:
        return ""
    return f"no {', '.join(group_label(m) for m in missing)} reaches this point {how}"


def _routes(
    scene: Scene, resp: pd.DataFrame, picked: np.ndarray, pred: np.ndarray | None,
    straight_m: np.ndarray, lon: float, lat: float,
) -> tuple[list[list[list[float]]], list[float]]:
    """Route (responder → incident, lon/lat) and its length in metres, per picked responder."""
    g = scene.graph
    rlon, rlat = resp["lon"].to_numpy(np.float64), resp["lat"].to_numpy(np.float64)
    rnode = resp["node"].to_numpy(np.int64) if "node" in resp else np.full(len(resp), -1)
    routes: list[list[list[float]]] = []
    dists: list[float] = []
    for i in picked:  # one route per listed responder (a few per kind, not per node)
        start = [float(rlon[i]), float(rlat[i])]
        if pred is not None and g is not None:
            path = g.path(pred, int(rnode[i]))[::-1]
            routes.append([start, *g.path_lonlat(path), [lon, lat]])
            dists.append(float(np.asarray(g.metres[path[:-1], path[1:]]).sum()) if len(path) > 1 else 0.0)
        else:
            routes.append([start, [lon, lat]])
            dists.append(float(straight_m[i]))
    return routes, dists


def availability(resp: pd.DataFrame, context: CallContext | None, incident_id: str | None = None) -> pd.DataFrame:
    """Per responder row: ``availability``, ``busy_incident``, ``busy_since`` (all on duty without a context).

    Busy = named by a call open at ``context.as_of`` other than ``incident_id`` (the earliest
    such call when several name it); out of service = a ``duty_status`` in
    ``OUT_OF_SERVICE_STATUSES``. A unit both busy and out of service shows as busy (it is out).
    """
    n = len(resp)
    state = np.full(n, ON_DUTY, dtype=object)
    incident = np.full(n, None, dtype=object)
    since = np.full(n, None, dtype=object)
    if context is not None and n:
        key = (resp["layer"].astype(str) + "\x1f" + resp["id"].astype(str)).to_numpy(dtype=object)
        duty = context.duty.dropna(subset=["id"])
        duty_of = dict(zip(duty["layer"].astype(str) + "\x1f" + duty["id"].astype(str), duty["duty_status"], strict=True))
        state[np.isin(np.array([duty_of.get(k) for k in key], dtype=object), OUT_OF_SERVICE_STATUSES)] = OUT_OF_SERVICE
        busy = context.busy
        if incident_id is not None:
            busy = busy[busy["incident_id"].astype(str) != str(incident_id)]
        busy = busy.sort_values("since", kind="stable").drop_duplicates(["layer", "unit_id"])
        bkey = busy["layer"].astype(str) + "\x1f" + busy["unit_id"].astype(str)
        calls = dict(zip(bkey, zip(busy["incident_id"], busy["since"], strict=True), strict=True))
        for i, k in enumerate(key):
            if k in calls:
                state[i], (incident[i], since[i]) = BUSY, calls[k]
    return pd.DataFrame({"availability": state, "busy_incident": incident, "busy_since": since})


def pick_available(
    groups: np.ndarray, eta_s: np.ndarray, ids: np.ndarray, available: np.ndarray, per_group: int
) -> np.ndarray:
    """Indices listed, ordered by ETA: the ``per_group`` nearest available units of each group, and
    every unavailable one no farther than the last of them (of a group with no available
    unit: its ``per_group`` nearest), so the picture shows why a nearer unit is not sent."""
    av = np.flatnonzero(available)
    first = av[pick_per_group(groups[av], eta_s[av], ids[av], per_group)]
    horizon = pd.Series(eta_s[first]).groupby(groups[first]).max() if len(first) else pd.Series(dtype=float)
    out = np.flatnonzero(~available & np.isfinite(eta_s))
    limit = pd.Series(groups[out], dtype=object).map(horizon).to_numpy(np.float64)
    nearer = out[eta_s[out] <= limit]
    orphans = out[np.isnan(limit)]
    orphans = orphans[pick_per_group(groups[orphans], eta_s[orphans], ids[orphans], per_group)]
    kept = np.concatenate([first, nearer, orphans]).astype(np.int64)
    return kept[np.lexsort((ids[kept], eta_s[kept]))]


def _availability_note(listed: pd.DataFrame) -> str:
    """Kinds listed with no available unit (every one near is busy or out of service)."""
    if listed.empty:
        return ""
    has = listed.groupby("group", sort=False)["available"].any()
    missing = [group_label(g) for g in has.index[~has.to_numpy(dtype=bool)]]
    return f"no available {', '.join(missing)} (busy or out of service)" if missing else ""


def _responders(
    scene: Scene, resp: pd.DataFrame, at: _Point, lon: float, lat: float, per_kind: int, avail: pd.DataFrame
) -> tuple[pd.DataFrame, str]:
    """The picked responders (``RESPONDER_COLUMNS``) and the reach note."""
    s = scene.settings
    n = len(resp)
    straight = np.hypot(resp["x"].to_numpy() - at.x, resp["y"].to_numpy() - at.y) if n else np.zeros(0)
    turnout = resp["turnout_s"].to_numpy(np.float64) if n else np.zeros(0)
    pred = None
    if at.mode == "network" and scene.graph is not None:
        dist, pred = dijkstra(scene.graph.reverse_seconds(), indices=at.node, return_predecessors=True)
        rn = resp["node"].to_numpy(np.int64) if n else np.zeros(0, dtype=np.int64)
        travel = np.where(rn >= 0, dist[np.maximum(rn, 0)], np.inf)
    else:
        travel = straight / (s.radius_mode_speed_kmh / 3.6)
    eta = turnout + travel
    groups = dispatch_groups(resp) if n else np.zeros(0, dtype=object)
    ids = resp["id"].astype(str).to_numpy(dtype=object) if n else np.zeros(0, dtype=object)
    available = (avail["availability"] == ON_DUTY).to_numpy(dtype=bool)
    picked = pick_available(groups, eta, ids, available, per_kind)
    out = resp.iloc[picked][["id", "name", "layer", "kind"]].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(picked) + 1))
    out.insert(1, "group", groups[picked])
    rank_among_available = out.assign(a=available[picked]).groupby(["group", "a"], sort=False).cumcount() + 1
    out.insert(2, "group_rank", np.where(available[picked], rank_among_available.to_numpy(), 0))
    out["eta_s"] = np.round(eta[picked], 1)
    out["turnout_s"] = turnout[picked]
    out["travel_s"] = np.round(travel[picked], 1)
    routes, dists = _routes(scene, resp, picked, pred, straight, lon, lat)
    out["distance_m"] = np.round(np.asarray(dists, dtype=np.float64), 1)
    out["within_target"] = eta[picked] <= resp["target_s"].to_numpy(np.float64)[picked] if n else []
    out["available"] = available[picked]
    for column in ("availability", "busy_incident", "busy_since"):
        out[column] = avail[column].to_numpy(dtype=object)[picked] if n else []
    out["route"] = routes
    notes = (_reach_note(groups, groups[picked], at.mode), _availability_note(out))
    return out[RESPONDER_COLUMNS], "; ".join(t for t in notes if t)


def _water(
    frame: pd.DataFrame, at: _Point, walk: np.ndarray | None, n: int, extra: list[str]
) -> pd.DataFrame:
    """The ``n`` nearest usable sites by road metres (straight metres in radius mode).

    In network mode a site with no road path within the search distance is left out:
    it is not "nearest along roads". ``road_m`` is None in radius mode.
    """
    cols = [c for c in ["id", "name", "status", *extra, "lon", "lat"] if c in frame]
    if len(frame) == 0:
        return pd.DataFrame({c: [] for c in [*cols, "road_m", "straight_m"]})
    straight = np.hypot(frame["x"].to_numpy() - at.x, frame["y"].to_numpy() - at.y)
    usable = frame["working"].to_numpy(dtype=bool)
    if walk is None:
        road = np.full(len(frame), np.nan)
        idx = np.flatnonzero(usable)
        top = idx[np.argsort(straight[idx], kind="stable")[:n]]
    else:
        fn = frame["node"].to_numpy(np.int64)
        road = np.where(fn >= 0, walk[np.maximum(fn, 0)], np.inf)
        road = road + frame["snap_m"].to_numpy(np.float64) + at.snap_m
        idx = np.flatnonzero(usable & np.isfinite(road))
        top = idx[np.lexsort((straight[idx], road[idx]))[:n]]
    out = frame.iloc[top][cols].reset_index(drop=True)
    out["road_m"] = np.round(road[top], 1)
    out["straight_m"] = np.round(straight[top], 1)
    return out


def _place_and_hazards(scene: Scene, at: _Point) -> tuple[dict[str, Any] | None, pd.DataFrame]:
    """The key place within ``dispatch_place_radius_m`` and the open hazards there or of it."""
    radius = scene.settings.dispatch_place_radius_m
    hz = scene.hazards
    open_hz = hz[hz["open"].to_numpy(dtype=bool)] if len(hz) else hz
    near = np.zeros(len(open_hz), dtype=bool)
    if len(open_hz):
        near = np.hypot(open_hz["x"].to_numpy() - at.x, open_hz["y"].to_numpy() - at.y) <= radius
    place: dict[str, Any] | None = None
    kp = scene.key_places
    if len(kp):
        d, i = cKDTree(np.column_stack([kp["x"].to_numpy(), kp["y"].to_numpy()])).query([at.x, at.y])
        if d <= radius:
            row = kp.iloc[int(i)]
            place = {k: jsonsafe.plain(v) for k, v in row.items() if k in PLACE_FIELDS}
            place["distance_m"] = round(float(d), 1)
            if len(open_hz):
                near |= open_hz["place_id"].to_numpy(dtype=object) == str(row["id"])
    cols = [c for c in HAZARD_FIELDS if c in open_hz]
    hazards = open_hz.iloc[np.flatnonzero(near)][cols].reset_index(drop=True) if len(open_hz) else open_hz
    return place, hazards


def _plain_value(layer: str, name: str, value: Any) -> Any:
    """A stored value as plain JSON data; a ``date`` field as its ISO date (no midnight time)."""
    fields = {f.name: f for f in LAYERS[layer].fields}
    if name in fields and fields[name].type == "date" and value is not None and not pd.isna(value):
        return pd.Timestamp(value).date().isoformat()
    return jsonsafe.plain(value)


def _preplan(place: dict[str, Any] | None, context: CallContext | None, show_personal: bool) -> dict[str, Any] | None:
    """The key place with its pre-plan fields (``PREPLAN_FIELDS``; personal ones masked unless shown)."""
    if place is None or context is None:
        return place
    rows = context.places[context.places["id"].astype(str) == str(place["id"])]
    extra = {k: _plain_value("key_place", k, rows.iloc[0][k]) if len(rows) else None for k in PREPLAN_FIELDS}
    if not show_personal:
        extra = personal.mask_record(extra, LAYERS["key_place"].personal_fields)
    return {**place, **extra}


def _vulnerable(scene: Scene, at: _Point, context: CallContext | None, show_personal: bool) -> pd.DataFrame:
    """Vulnerable residents within ``dispatch_vulnerable_radius_m`` (straight line), nearest first."""
    frame = context.vulnerable if context is not None else pd.DataFrame({c: [] for c in VULNERABLE_FIELDS})
    frame = frame[pd.to_numeric(frame["lon"], errors="coerce").notna() & pd.to_numeric(frame["lat"], errors="coerce").notna()]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in VULNERABLE_COLUMNS})
    x, y = scene.project(frame["lon"].to_numpy(np.float64), frame["lat"].to_numpy(np.float64))
    metres = np.hypot(x - at.x, y - at.y)
    inside = np.flatnonzero(metres <= scene.settings.dispatch_vulnerable_radius_m)
    ids = frame["id"].astype(str).to_numpy(dtype=object)
    inside = inside[np.lexsort((ids[inside], metres[inside]))]
    out = frame.iloc[inside].reset_index(drop=True).assign(distance_m=np.round(metres[inside], 1))[VULNERABLE_COLUMNS]
    out["last_visit"] = pd.Series([_plain_value("vulnerable_person", "last_visit", v) for v in out["last_visit"]], dtype=object)
    return out if show_personal else personal.mask_frame(out, LAYERS["vulnerable_person"].personal_fields)


def vulnerable_counts(people: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Counts of the listed residents by category and by risk level (most first, then by name;
    residents with no level count under None, last among equals)."""

    def count(column: str) -> list[dict[str, Any]]:
        values = [v if isinstance(v, str) and v else None for v in people[column]]
        tally: dict[str | None, int] = {}
        for v in values:
            tally[v] = tally.get(v, 0) + 1
        ordered = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0] is None, kv[0] or ""))
        return [{column: k, "count": n} for k, n in ordered]

    return {"by_category": count("category"), "by_risk": count("risk_level")}


def dispatch(
    scene: Scene,
    lon: float,
    lat: float,
    per_kind: int | None = None,
    n_water: int = 3,
    responders: pd.DataFrame | None = None,
    context: CallContext | None = None,
    incident_id: str | None = None,
    show_personal: bool = False,
) -> DispatchResult:
    """Responders of each kind by ETA with availability and routes, water, place, pre-plan, vulnerable residents.

    Parameters
    ----------
    scene
        The loaded scene (``coverage_inputs.load_scene``).
    lon, lat
        The incident, WGS-84 degrees (finite).
    per_kind
        Available responders listed per dispatch group; default ``Settings.dispatch_per_kind``.
    n_water
        Hydrants and water sources listed (each).
    responders
        Overrides the scene's responder set (e.g. a what-if engine's active ones).
    context
        Duty status, busy units, pre-plan fields and vulnerable residents (``load_context``);
        without it every unit counts as on duty and there is no pre-plan or resident list.
    incident_id
        The call being dispatched: its own units are not counted busy.
    show_personal
        Show personal fields (names, phones) unmasked; the default masks them.

    Returns
    -------
    DispatchResult
        Damaged / low-pressure / out-of-service hydrants, unusable water sources and water
        with no road path are left out.

    Raises
    ------
    ValidationError
        For coordinates that are not finite or cannot be projected, or ``per_kind`` < 1.
    """
    per_kind = scene.settings.dispatch_per_kind if per_kind is None else per_kind
    if isinstance(per_kind, bool) or not isinstance(per_kind, (int, np.integer)) or per_kind < 1:
        msg = f"responders per kind must be a whole number ≥ 1, got {per_kind!r}"
        raise ValidationError(msg)
    if not isinstance(show_personal, (bool, np.bool_)):
        msg = f"show_personal must be True or False, got {show_personal!r}"
        raise ValidationError(msg)
    resp = (scene.responders if responders is None else responders).reset_index(drop=True)
    if "kind" not in resp:
        resp = resp.assign(kind=None)
    at = _place_point(scene, float(lon), float(lat))
    avail = availability(resp, context, incident_id)
    out, reach = _responders(scene, resp, at, float(lon), float(lat), int(per_kind), avail)
    walk = None
    if at.mode == "network" and scene.graph is not None:
        walk = dijkstra(scene.graph.walk_metres, indices=at.node, limit=scene.settings.dispatch_water_search_m)
    hydrants = _water(scene.hydrants, at, walk, n_water, ["hydrant_type", "pipe_diameter_mm", "pressure_mpa"])
    waters = _water(scene.water_sources, at, walk, n_water, ["kind", "capacity_m3"])
    place, hazards = _place_and_hazards(scene, at)
    note = "; ".join(t for t in (at.note, reach) if t)
    return DispatchResult(
        at.mode, float(lon), float(lat), at.node, at.snap_m, out, hydrants, waters,
        _preplan(place, context, show_personal), hazards, note,
        vulnerable=_vulnerable(scene, at, context, show_personal),
        vulnerable_radius_m=float(scene.settings.dispatch_vulnerable_radius_m),
        personal_shown=bool(show_personal),
        availability_known=context is not None,
    )


def to_json(result: DispatchResult) -> dict[str, Any]:
    """Strict-JSON data of a dispatch result (schema in the README, "JSON output")."""
    return jsonsafe.plain(
        {
            "mode": result.mode,
            "lon": result.lon,
            "lat": result.lat,
            "snap_m": None if not math.isfinite(result.snap_m) else round(result.snap_m, 1),
            "note": result.note,
            "availability_known": result.availability_known,
            "personal": "shown" if result.personal_shown else "masked",
            "responders": result.responders,
            "hydrants": result.hydrants,
            "water_sources": result.water_sources,
            "key_place": result.key_place,
            "hazards": result.hazards,
            "vulnerable": {
                "radius_m": result.vulnerable_radius_m,
                "distance": "straight_line",
                "total": len(result.vulnerable),
                **vulnerable_counts(result.vulnerable),
                "people": result.vulnerable,
            },
        }
    )
