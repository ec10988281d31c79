"""Dispatch assist (一图作战): what the wall shows when a call comes in.

For a point: every responder ranked by ETA (turnout + road travel) with its route, the
nearest working hydrants and usable water sources by road (walking) distance, and the
key place there with its open hazards. One Dijkstra on the reversed graph from the
incident gives every node's travel time *to* the incident and, through the
predecessors, each responder's route; one bounded Dijkstra on the undirected metre graph
finds the water. A point beyond the snap distance falls back to straight lines (mode
"radius", said in the result).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo.coverage_inputs import Scene

RESPONDER_COLUMNS = [
    "rank",
    "id",
    "name",
    "layer",
    "eta_s",
    "turnout_s",
    "travel_s",
    "distance_m",
    "within_target",
    "route",
]


@dataclass(frozen=True, eq=False)
class DispatchResult:
    """Responders ranked by ETA, water nearby, the key place and its open hazards."""

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


def _water(
    frame: pd.DataFrame, road_m: np.ndarray, straight_m: np.ndarray, n: int, extra: list[str]
) -> pd.DataFrame:
    """The ``n`` nearest usable sites (by road metres, then straight metres); only they become rows."""
    cols = [c for c in ["id", "name", "status", *extra, "lon", "lat"] if c in frame]
    if len(frame) == 0:
        return pd.DataFrame({c: [] for c in [*cols, "road_m", "straight_m"]})
    idx = np.flatnonzero(frame["working"].to_numpy(dtype=bool))
    road = np.where(np.isfinite(road_m[idx]), road_m[idx], np.inf)
    top = idx[np.lexsort((straight_m[idx], road))[:n]]
    out = frame.iloc[top][cols].reset_index(drop=True)
    out["road_m"] = np.round(road_m[top], 1)
    out["straight_m"] = np.round(straight_m[top], 1)
    return out


def dispatch(
    scene: Scene,
    lon: float,
    lat: float,
    n_responders: int = 10,
    n_water: int = 3,
    responders: pd.DataFrame | None = None,
) -> DispatchResult:
    """Responders by ETA with routes, nearest working hydrants and water, key place and hazards.

    ``responders`` overrides the scene's responder set (e.g. a what-if engine's active ones).
    Damaged / low-pressure / out-of-service hydrants and unusable water sources are skipped.
    """
    s = scene.settings
    resp = (scene.responders if responders is None else responders).reset_index(drop=True)
    x0, y0 = scene.project([lon], [lat])
    x0, y0 = float(x0[0]), float(y0[0])
    g = scene.graph
    node, snap_m, mode, note = -1, float("nan"), "radius", ""
    if scene.mode == "network" and g is not None:
        snap = g.snap([lon], [lat], s.snap_distance_m)
        snap_m = float(snap.distance_m[0])
        if snap.ok[0]:
            node, mode = int(snap.node[0]), "network"
        else:
            note = (
                f"point is {snap_m:.0f} m from the road network (snap distance {s.snap_distance_m:.0f} m); "
                "times are straight-line estimates"
            )
    straight_r = (
        np.hypot(resp["x"].to_numpy() - x0, resp["y"].to_numpy() - y0) if len(resp) else np.zeros(0)
    )
    turnout = resp["turnout_s"].to_numpy(np.float64) if len(resp) else np.zeros(0)
    if mode == "network":
        dist, pred = dijkstra(g.reverse_seconds(), indices=node, return_predecessors=True)
        rn = resp["node"].to_numpy(np.int64)
        travel = np.where(rn >= 0, dist[np.maximum(rn, 0)], np.inf)
    else:
        travel = straight_r / (s.radius_mode_speed_kmh / 3.6)
    eta = turnout + travel
    finite = np.flatnonzero(np.isfinite(eta))
    ids = resp["id"].to_numpy(dtype=object).astype(str) if len(resp) else np.zeros(0, dtype=str)
    top = finite[np.lexsort((ids[finite], eta[finite]))[:n_responders]]
    out = resp.iloc[top][["id", "name", "layer"]].copy()
    out.index = top
    out["eta_s"] = eta[top]
    out["turnout_s"] = turnout[top]
    out["travel_s"] = travel[top]
    out["within_target"] = eta[top] <= resp["target_s"].to_numpy(np.float64)[top]
    rlon, rlat, rnode = (
        resp["lon"].to_numpy(np.float64),
        resp["lat"].to_numpy(np.float64),
        resp["node"].to_numpy(np.int64),
    )
    routes, dists = [], []
    for i in out.index:  # one route per listed responder (n_responders, not per node)
        if mode == "network":
            path = g.path(pred, int(rnode[i]))[::-1]  # responder → incident
            routes.append([[float(rlon[i]), float(rlat[i])], *g.path_lonlat(path), [lon, lat]])
            dists.append(
                float(np.asarray(g.metres[path[:-1], path[1:]]).sum()) if len(path) > 1 else 0.0
            )
        else:
            routes.append([[float(rlon[i]), float(rlat[i])], [lon, lat]])
            dists.append(float(straight_r[i]))
    out["distance_m"] = np.round(dists, 1)
    out["route"] = routes
    out["eta_s"] = out["eta_s"].round(1)
    out["travel_s"] = out["travel_s"].round(1)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    out = out.reset_index(drop=True)[RESPONDER_COLUMNS]

    # water: along roads (undirected, walking/hose), bounded by the search distance
    def road_and_straight(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if len(frame) == 0:
            return np.zeros(0), np.zeros(0)
        straight = np.hypot(frame["x"].to_numpy() - x0, frame["y"].to_numpy() - y0)
        if mode != "network":
            return np.full(len(frame), np.nan), straight
        fn = frame["node"].to_numpy(np.int64)
        road = np.where(
            fn >= 0, walk[np.maximum(fn, 0)] + frame["snap_m"].to_numpy(np.float64) + snap_m, np.inf
        )
        return road, straight

    walk = (
        dijkstra(g.walk_metres, indices=node, limit=s.dispatch_water_search_m)
        if mode == "network"
        else None
    )
    hyd_road, hyd_straight = road_and_straight(scene.hydrants)
    hydrants = _water(
        scene.hydrants,
        hyd_road,
        hyd_straight,
        n_water,
        ["hydrant_type", "pipe_diameter_mm", "pressure_mpa"],
    )
    ws_road, ws_straight = road_and_straight(scene.water_sources)
    waters = _water(scene.water_sources, ws_road, ws_straight, n_water, ["kind", "capacity_m3"])

    # the key place there and its open hazards
    place: dict[str, Any] | None = None
    hz = scene.hazards
    open_hz = hz[hz["open"].to_numpy(dtype=bool)] if len(hz) else hz
    near_hz = np.zeros(len(open_hz), dtype=bool)
    if len(open_hz):
        near_hz = (
            np.hypot(open_hz["x"].to_numpy() - x0, open_hz["y"].to_numpy() - y0)
            <= s.dispatch_place_radius_m
        )
    kp = scene.key_places
    if len(kp):
        d, i = cKDTree(np.column_stack([kp["x"].to_numpy(), kp["y"].to_numpy()])).query([x0, y0])
        if d <= s.dispatch_place_radius_m:
            row = kp.iloc[int(i)]
            keep = (
                "id",
                "name",
                "category",
                "inspection_class",
                "town",
                "community",
                "grid_id",
                "lon",
                "lat",
            )
            place = {k: _plain(v) for k, v in row.items() if k in keep}
            place["distance_m"] = round(float(d), 1)
            if len(open_hz):
                near_hz |= open_hz["place_id"].to_numpy(dtype=object) == str(row["id"])
    cols = [
        c
        for c in (
            "id",
            "category",
            "severity",
            "status",
            "supervision",
            "discovered_at",
            "deadline",
            "description",
            "place_id",
            "lon",
            "lat",
        )
        if c in open_hz
    ]
    hazards = (
        open_hz.iloc[np.flatnonzero(near_hz)][cols].reset_index(drop=True)
        if len(open_hz)
        else open_hz
    )
    return DispatchResult(
        mode, float(lon), float(lat), node, snap_m, out, hydrants, waters, place, hazards, note
    )


def _plain(v: Any) -> Any:
    """A JSON-friendly Python value (numpy scalars unwrapped, NaN → None, dates as ISO text)."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        return _plain(v.item())
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


def to_json(result: DispatchResult) -> dict[str, Any]:
    """A JSON-ready dict of a dispatch result (schema in the README, "JSON output")."""

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [
            {k: (v if isinstance(v, list) else _plain(v)) for k, v in r.items()}
            for r in frame.to_dict(orient="records")
        ]

    resp = records(result.responders)
    for r in resp:
        r["eta_s"] = None if r["eta_s"] is None or not np.isfinite(r["eta_s"]) else r["eta_s"]
    return {
        "mode": result.mode,
        "lon": result.lon,
        "lat": result.lat,
        "snap_m": None if np.isnan(result.snap_m) else round(result.snap_m, 1),
        "note": result.note,
        "responders": resp,
        "hydrants": records(result.hydrants),
        "water_sources": records(result.water_sources),
        "key_place": result.key_place,
        "hazards": records(result.hazards),
    }
