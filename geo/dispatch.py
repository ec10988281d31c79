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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo import jsonsafe
from geo.coverage_inputs import Scene
from geo.errors import ValidationError
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
    "route",
]
PLACE_FIELDS = ("id", "name", "category", "inspection_class", "town", "community", "grid_id", "lon", "lat")
HAZARD_FIELDS = (
    "id", "category", "severity", "status", "supervision", "discovered_at", "deadline",
    "description", "place_id", "lon", "lat",
)


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """Responders of each kind by ETA, water reachable by road, the key place and its open hazards.

    ``responders`` has ``RESPONDER_COLUMNS``: ``rank`` is the order by ETA over the whole
    picture, ``group`` the dispatch group (``dispatch_groups``) and ``group_rank`` the
    order within it (1 = the nearest of its kind). ``note`` says what the picture cannot
    show (straight-line fallback, kinds that no road reaches).
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


def _responders(
    scene: Scene, resp: pd.DataFrame, at: _Point, lon: float, lat: float, per_kind: int
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
    picked = pick_per_group(groups, eta, ids, per_kind)
    out = resp.iloc[picked][["id", "name", "layer", "kind"]].reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(picked) + 1))
    out.insert(1, "group", groups[picked])
    out.insert(2, "group_rank", out.groupby("group", sort=False).cumcount().to_numpy() + 1)
    out["eta_s"] = np.round(eta[picked], 1)
    out["turnout_s"] = turnout[picked]
    out["travel_s"] = np.round(travel[picked], 1)
    routes, dists = _routes(scene, resp, picked, pred, straight, lon, lat)
    out["distance_m"] = np.round(np.asarray(dists, dtype=np.float64), 1)
    out["within_target"] = eta[picked] <= resp["target_s"].to_numpy(np.float64)[picked] if n else []
    out["route"] = routes
    return out[RESPONDER_COLUMNS], _reach_note(groups, groups[picked], at.mode)


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


def dispatch(
    scene: Scene,
    lon: float,
    lat: float,
    per_kind: int | None = None,
    n_water: int = 3,
    responders: pd.DataFrame | None = None,
) -> DispatchResult:
    """Responders of each kind by ETA with routes, nearest working water by road, place and hazards.

    Parameters
    ----------
    scene
        The loaded scene (``coverage_inputs.load_scene``).
    lon, lat
        The incident, WGS-84 degrees (finite).
    per_kind
        Responders listed per dispatch group; default ``Settings.dispatch_per_kind``.
    n_water
        Hydrants and water sources listed (each).
    responders
        Overrides the scene's responder set (e.g. a what-if engine's active ones).

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
    resp = (scene.responders if responders is None else responders).reset_index(drop=True)
    if "kind" not in resp:
        resp = resp.assign(kind=None)
    at = _place_point(scene, float(lon), float(lat))
    out, reach = _responders(scene, resp, at, float(lon), float(lat), int(per_kind))
    walk = None
    if at.mode == "network" and scene.graph is not None:
        walk = dijkstra(scene.graph.walk_metres, indices=at.node, limit=scene.settings.dispatch_water_search_m)
    hydrants = _water(scene.hydrants, at, walk, n_water, ["hydrant_type", "pipe_diameter_mm", "pressure_mpa"])
    waters = _water(scene.water_sources, at, walk, n_water, ["kind", "capacity_m3"])
    place, hazards = _place_and_hazards(scene, at)
    note = "; ".join(t for t in (at.note, reach) if t)
    return DispatchResult(
        at.mode, float(lon), float(lat), at.node, at.snap_m, out, hydrants, waters, place, hazards, note
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
            "responders": result.responders,
            "hydrants": result.hydrants,
            "water_sources": result.water_sources,
            "key_place": result.key_place,
            "hazards": result.hazards,
        }
    )
