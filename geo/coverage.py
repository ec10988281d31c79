"""Travel-time coverage of responders: one multi-source Dijkstra per responder type.

For each responder layer (micro stations, fire stations) one call of
``scipy.sparse.csgraph.dijkstra(indices=sources, min_only=True)`` gives every road node its
travel time from the nearest responder of that layer and which responder it is; the
layer's turnout is added (ETA = turnout + travel). Cells take the ETA of the road node
nearest to their centre (see ``geo.coverage_inputs``). In radius mode (no roads) ETA =
turnout + straight-line distance / ``radius_mode_speed_kmh``. Every result says its mode.

``CoverageEngine`` keeps the per-node state and applies what-if edits incrementally:
adding a responder runs a Dijkstra from it alone, bounded by a limit that doubles until no
improved node lies at the frontier (a node can only improve through improved nodes, so the
bounded search is exact); removing one re-runs Dijkstra only over the nodes it served,
seeded from their boundary with the boundary's current times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from h3.api import basic_int as h3i
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from geo.coverage_inputs import Scene, layer_timing
from geo.errors import NetworkError, ValidationError
from geo.settings import Settings
from geo.water import WaterBlindSpots

AREA_RES = 10  # figures and first-due areas use the finer cells
LEVELS = {"town": "town", "community": "community", "grid": "grid_id"}


# --------------------------------------------------------------------------- passes


def multi_source_times(
    seconds: sp.csr_array, source_nodes: np.ndarray, offsets_s: np.ndarray, limit: float = np.inf
) -> tuple[np.ndarray, np.ndarray]:
    """ETA (offset + travel) of every node from its best source, and that source's position.

    One ``dijkstra(min_only=True)`` pass per distinct offset (responders of one layer
    share their turnout, so one pass per layer). Unreached nodes get ``inf`` and -1.
    """
    n = seconds.shape[0]
    eta = np.full(n, np.inf)
    which = np.full(n, -1, dtype=np.int64)
    source_nodes = np.asarray(source_nodes, dtype=np.int64)
    offsets_s = np.asarray(offsets_s, dtype=np.float64)
    for offset in np.unique(offsets_s):
        pos = np.nonzero(offsets_s == offset)[0]
        nodes = source_nodes[pos]
        dist, _, src = dijkstra(
            seconds, indices=nodes, min_only=True, return_predecessors=True, limit=limit
        )
        # map a source node to the first responder standing there
        owner = np.full(n, -1, dtype=np.int64)
        owner[nodes[::-1]] = pos[::-1]
        t = dist + offset
        better = t < eta
        eta[better] = t[better]
        which[better] = owner[src[better]]
    return eta, which


def radius_times(
    x: np.ndarray,
    y: np.ndarray,
    rx: np.ndarray,
    ry: np.ndarray,
    offsets_s: np.ndarray,
    speed_kmh: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Straight-line ETA = offset + distance / speed from the best responder (KD-tree per offset)."""
    eta = np.full(len(x), np.inf)
    which = np.full(len(x), -1, dtype=np.int64)
    if len(rx) == 0 or len(x) == 0:
        return eta, which
    pts = np.column_stack([x, y])
    for offset in np.unique(offsets_s):
        pos = np.nonzero(offsets_s == offset)[0]
        d, i = cKDTree(np.column_stack([rx[pos], ry[pos]])).query(pts)
        t = offset + d / (speed_kmh / 3.6)
        better = t < eta
        eta[better] = t[better]
        which[better] = pos[i[better]]
    return eta, which


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class CoverageResult:
    """Coverage of one responder set.

    ``cells``: res 9 and 10 cells with ``eta_s`` (best over layers, inf = unreached),
    ``responder_id``/``responder_layer`` (who is first), ``covered`` (reached within the
    target of some layer), and ``eta_<layer>``/``first_<layer>`` (responder id) per layer.
    ``key_places``: the same per place. ``node_eta``/``node_first`` (per layer, position in
    ``responders``) exist in network mode.
    """

    mode: str
    settings: Settings
    layers: tuple[str, ...]
    targets_s: dict[str, float]
    turnouts_s: dict[str, float]
    responders: pd.DataFrame
    unsnapped: pd.DataFrame
    cells: pd.DataFrame
    key_places: pd.DataFrame
    node_eta: dict[str, np.ndarray] | None = None
    node_first: dict[str, np.ndarray] | None = None
    scene: Scene | None = field(default=None, repr=False)


def _combine(
    scene: Scene,
    responders: pd.DataFrame,
    layers: tuple[str, ...],
    eta: dict[str, np.ndarray],
    first: dict[str, np.ndarray],
    frame: pd.DataFrame,
    targets: dict[str, float],
) -> pd.DataFrame:
    """Add per-layer and combined ETA, first responder and covered flag to cells or places."""
    out = frame.copy()
    ids = responders["id"].to_numpy(dtype=object)
    best = np.full(len(out), np.inf)
    best_id = np.full(len(out), None, dtype=object)
    best_layer = np.full(len(out), None, dtype=object)
    covered = np.zeros(len(out), dtype=bool)
    for layer in layers:
        e, f = eta[layer], first[layer]
        out[f"eta_{layer}"] = e
        rid = np.where(f >= 0, ids[np.maximum(f, 0)] if len(ids) else None, None)
        out[f"first_{layer}"] = rid
        better = e < best
        best[better] = e[better]
        best_id[better] = rid[better]
        best_layer[better] = layer
        covered |= e <= targets[layer]
    out["eta_s"] = best
    out["responder_id"] = best_id
    out["responder_layer"] = best_layer
    out["covered"] = covered
    return out


def _carry(values: np.ndarray, nodes: np.ndarray, fill: float | int) -> np.ndarray:
    """Values of ``nodes`` (-1 → fill)."""
    return np.where(nodes >= 0, values[np.maximum(nodes, 0)], fill)


def _result_from_nodes(
    scene: Scene,
    responders: pd.DataFrame,
    node_eta: dict[str, np.ndarray],
    node_first: dict[str, np.ndarray],
    layers: tuple[str, ...],
    targets: dict[str, float],
    turnouts: dict[str, float],
) -> CoverageResult:
    cell_nodes = scene.cells["node"].to_numpy(np.int64)
    place_nodes = scene.key_places["node"].to_numpy(np.int64)
    ce = {k: _carry(v, cell_nodes, np.inf) for k, v in node_eta.items()}
    cf = {k: _carry(v, cell_nodes, -1).astype(np.int64) for k, v in node_first.items()}
    pe = {k: _carry(v, place_nodes, np.inf) for k, v in node_eta.items()}
    pf = {k: _carry(v, place_nodes, -1).astype(np.int64) for k, v in node_first.items()}
    cells = _combine(scene, responders, layers, ce, cf, scene.cells, targets)
    places = _combine(scene, responders, layers, pe, pf, scene.key_places, targets)
    return CoverageResult(
        "network",
        scene.settings,
        layers,
        targets,
        turnouts,
        responders,
        scene.unsnapped,
        cells,
        places,
        node_eta,
        node_first,
        scene,
    )


def _layer_info(
    scene: Scene, responders: pd.DataFrame
) -> tuple[tuple[str, ...], dict[str, float], dict[str, float]]:
    layers = tuple(sorted(set(responders["layer"]), key=lambda s: (s != "micro_station", s)))
    targets, turnouts = {}, {}
    for layer in layers:
        turnouts[layer], targets[layer] = layer_timing(layer, scene.settings)
    return layers, targets, turnouts


def compute_coverage(scene: Scene, responders: pd.DataFrame | None = None) -> CoverageResult:
    """Coverage of the scene's responders (or of a subset/variant with the same columns)."""
    resp = (scene.responders if responders is None else responders).reset_index(drop=True)
    layers, targets, turnouts = _layer_info(scene, resp)
    if scene.mode == "radius":
        speed = scene.settings.radius_mode_speed_kmh
        eta_c, first_c, eta_p, first_p = {}, {}, {}, {}
        for layer in layers:
            sel = np.nonzero((resp["layer"] == layer).to_numpy())[0]
            rx, ry = resp["x"].to_numpy()[sel], resp["y"].to_numpy()[sel]
            off = resp["turnout_s"].to_numpy(np.float64)[sel]
            e, w = radius_times(
                scene.cells["x"].to_numpy(), scene.cells["y"].to_numpy(), rx, ry, off, speed
            )
            eta_c[layer], first_c[layer] = e, np.where(w >= 0, sel[np.maximum(w, 0)], -1)
            e, w = radius_times(
                scene.key_places["x"].to_numpy(),
                scene.key_places["y"].to_numpy(),
                rx,
                ry,
                off,
                speed,
            )
            eta_p[layer], first_p[layer] = e, np.where(w >= 0, sel[np.maximum(w, 0)], -1)
        cells = _combine(scene, resp, layers, eta_c, first_c, scene.cells, targets)
        places = _combine(scene, resp, layers, eta_p, first_p, scene.key_places, targets)
        return CoverageResult(
            "radius",
            scene.settings,
            layers,
            targets,
            turnouts,
            resp,
            scene.unsnapped,
            cells,
            places,
            None,
            None,
            scene,
        )
    assert scene.graph is not None
    node_eta, node_first = {}, {}
    for layer in layers:
        sel = np.nonzero((resp["layer"] == layer).to_numpy())[0]
        e, w = multi_source_times(
            scene.graph.seconds,
            resp["node"].to_numpy(np.int64)[sel],
            resp["turnout_s"].to_numpy(np.float64)[sel],
        )
        node_eta[layer] = e
        node_first[layer] = np.where(w >= 0, sel[np.maximum(w, 0)], -1)
    return _result_from_nodes(scene, resp, node_eta, node_first, layers, targets, turnouts)


# --------------------------------------------------------------------------- figures


def _area_cells(result: CoverageResult, built_up_only: bool = True) -> pd.DataFrame:
    cells = result.cells[result.cells["res"] == AREA_RES]
    return cells[cells["built_up"]] if built_up_only else cells


def _summary_arrays(
    mode: str,
    n_resp: int,
    n_unsnapped: int,
    targets: dict[str, float],
    area: np.ndarray,
    weight: np.ndarray,
    cell_eta: dict[str, np.ndarray],
    place_eta: dict[str, np.ndarray],
    n_places: int,
) -> dict[str, Any]:
    """District figures from arrays of the built-up res-10 cells and the key places."""
    cov = np.zeros(len(area), dtype=bool)
    pcov = np.zeros(n_places, dtype=bool)
    per_layer = {}
    total = float(area.sum())
    for layer, target in targets.items():
        ok = cell_eta[layer] <= target
        cov |= ok
        pcov |= place_eta[layer] <= target
        per_layer[f"area_share_{layer}"] = (
            round(float(area[ok].sum()) / total, 4) if total else None
        )
    covered = float(area[cov].sum())
    wsum = float(weight.sum())
    wcov = float(weight[cov].sum())
    return {
        "mode": mode,
        "responders": int(n_resp),
        "unsnapped": int(n_unsnapped),
        "area_km2": round(total, 4),
        "covered_km2": round(covered, 4),
        "area_share": round(covered / total, 4) if total else None,
        "places": int(n_places),
        "places_covered": int(pcov.sum()),
        "places_share": round(float(pcov.mean()), 4) if n_places else None,
        "weight": round(wsum, 3),
        "weight_covered": round(wcov, 3),
        "weight_share": round(wcov / wsum, 4) if wsum else None,
        **per_layer,
    }


def _in_towns(frame: pd.DataFrame, town: str | None, towns: Sequence[str] | None) -> pd.DataFrame:
    """Rows of ``frame`` in ``town`` and in ``towns`` (each None: no restriction; no ``town`` column: none)."""
    for keep in ([town] if town is not None else None, towns):
        if keep is not None:
            frame = frame[frame["town"].isin(list(keep))] if "town" in frame else frame.iloc[0:0]
    return frame


def summary(result: CoverageResult, town: str | None = None, towns: Sequence[str] | None = None) -> dict[str, Any]:
    """District-wide figures (or one town's): built-up area, key places and demand weight reached in time.

    ``town`` restricts the cells and key places to that town (the report of one town), ``towns``
    to those towns (a town user's scope); the figures are otherwise the same
    (``area_share_<layer>``: share of built-up res-10 area that layer reaches within its target,
    ``area_share``: any layer).
    """
    cells = _in_towns(_area_cells(result), town, towns)
    places = _in_towns(result.key_places, town, towns)
    targets = {layer: result.targets_s[layer] for layer in result.layers}
    return _summary_arrays(
        result.mode,
        len(result.responders),
        len(result.unsnapped),
        targets,
        cells["area_km2"].to_numpy(np.float64),
        cells["weight"].to_numpy(np.float64),
        {layer: cells[f"eta_{layer}"].to_numpy(np.float64) for layer in targets},
        {layer: places[f"eta_{layer}"].to_numpy(np.float64) for layer in targets},
        len(places),
    )


def blind_spot_summary(blind: WaterBlindSpots, town: str | None = None,
                       towns: Sequence[str] | None = None) -> dict[str, Any]:
    """The one hydrant blind-spot figure of the wall, the report and the CLI.

    Over the built-up res-``AREA_RES`` cells (those of ``town`` when given), the same cells
    as ``summary``'s area shares: ``area_km2``, ``blind_km2`` (cells whose centre is farther
    than ``radius_m`` from every working hydrant), ``blind_share`` (None without built-up
    area), ``blind_cells``; and ``places`` / ``blind_places`` for the key places.
    """
    cells = _in_towns(blind.cells[blind.cells["res"] == AREA_RES], town, towns)
    places = _in_towns(blind.key_places, town, towns)
    area = float(cells["area_km2"].sum())
    blind_area = float(cells.loc[cells["blind"], "area_km2"].sum())
    return {
        "radius_m": float(blind.radius_m),
        "area_km2": round(area, 4),
        "blind_km2": round(blind_area, 4),
        "blind_share": round(blind_area / area, 4) if area else None,
        "blind_cells": int(cells["blind"].sum()),
        "places": len(places),
        "blind_places": int(places["blind"].sum()) if len(places) else 0,
    }


def figures(result: CoverageResult, level: str = "town") -> pd.DataFrame:
    """Per town / community / grid: share of built-up area, key places (per class) and weight reached."""
    if level not in LEVELS:
        raise ValidationError(f"level {level!r} unknown; use one of {list(LEVELS)}")
    col = LEVELS[level]
    cells = _area_cells(result).copy()
    cells["cov_km2"] = np.where(cells["covered"], cells["area_km2"], 0.0)
    cells["cov_w"] = np.where(cells["covered"], cells["weight"], 0.0)
    key = cells[col].fillna("(未分配)")
    g = cells.groupby(key).agg(
        area_km2=("area_km2", "sum"),
        covered_km2=("cov_km2", "sum"),
        weight=("weight", "sum"),
        weight_covered=("cov_w", "sum"),
    )
    places = result.key_places.copy()
    pkey = (
        places[col].fillna("(未分配)")
        if col in places
        else pd.Series("(未分配)", index=places.index)
    )
    pg = places.groupby(pkey).agg(places=("covered", "size"), places_covered=("covered", "sum"))
    out = g.join(pg, how="outer").fillna(0.0)
    for cls in ("1", "2", "3"):
        sel = places["inspection_class"].astype(str) == cls
        cg = places[sel].groupby(pkey[sel])["covered"].mean()
        out[f"class{cls}_share"] = cg.reindex(out.index)
    out["area_share"] = out["covered_km2"] / out["area_km2"].where(out["area_km2"] > 0)
    out["places_share"] = out["places_covered"] / out["places"].where(out["places"] > 0)
    out["weight_share"] = out["weight_covered"] / out["weight"].where(out["weight"] > 0)
    out.index.name = "name"
    out = out.reset_index()
    out.insert(0, "level", level)
    out["places"] = out["places"].astype(int)
    out["places_covered"] = out["places_covered"].astype(int)
    return out.sort_values("area_share", na_position="last").reset_index(drop=True)


def first_due_areas(result: CoverageResult, layer: str = "fire_station") -> pd.DataFrame:
    """Area each responder of ``layer`` reaches first among its layer, checked against 建标152.

    All cells (not only built-up) count, at res 10. ``limit_km2`` comes from
    ``Settings.station_area_limits_km2[station_class]`` (None when the class has no limit).
    """
    resp = result.responders[result.responders["layer"] == layer]
    cells = result.cells[result.cells["res"] == AREA_RES]
    col = f"first_{layer}"
    if col not in cells:
        areas = pd.Series(dtype=float)
        counts = pd.Series(dtype=float)
    else:
        reached = cells[cells[col].notna()]
        areas = reached.groupby(col)["area_km2"].sum()
        counts = reached.groupby(col)["covered"].size()
    limits = result.settings.station_area_limits_km2
    out = pd.DataFrame(
        {
            "id": resp["id"].to_numpy(),
            "name": resp["name"].to_numpy(),
            "layer": layer,
            "station_class": resp["station_class"].to_numpy(),
        }
    )
    out["area_km2"] = out["id"].map(areas).fillna(0.0).round(4)
    out["cells"] = out["id"].map(counts).fillna(0).astype(int)
    out["limit_km2"] = out["station_class"].map(
        lambda c: limits.get(c) if isinstance(c, str) else None
    )
    out["over_limit"] = out["limit_km2"].notna() & (
        out["area_km2"] > out["limit_km2"].fillna(np.inf)
    )
    return out.sort_values("area_km2", ascending=False).reset_index(drop=True)


def _neighbour_pairs(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of cells in ``cells`` (sorted) that are H3 neighbours."""
    disk = pa.array(h3ronpy.grid_disk(cells, 1, flatten=False))
    offsets = disk.offsets.to_numpy()
    values = disk.values.to_numpy().astype(np.uint64)
    src = np.repeat(np.arange(len(cells)), np.diff(offsets))
    pos = np.searchsorted(cells, values)
    pos = np.minimum(pos, len(cells) - 1)
    hit = cells[pos] == values
    return src[hit], pos[hit]


def uncovered_clusters(result: CoverageResult, top: int = 10, towns: Sequence[str] | None = None) -> pd.DataFrame:
    """Connected groups of uncovered built-up cells, ranked by demand weight, then area.

    Cells at ``Settings.coverage_cluster_res`` (of ``towns`` only when given: a cluster ends at
    their border); neighbours by H3 adjacency; each cluster has its cells, km², weight, key
    places uncovered in it, the mean centre, the town that holds most of it, its worst ETA and
    its outline (GeoJSON geometry).
    """
    res = result.settings.coverage_cluster_res
    cells = _in_towns(result.cells[
        (result.cells["res"] == res) & result.cells["built_up"] & ~result.cells["covered"]
    ], None, towns)
    cols = [
        "rank",
        "cells",
        "area_km2",
        "weight",
        "places",
        "lon",
        "lat",
        "town",
        "worst_eta_s",
        "geometry",
    ]
    if len(cells) == 0:
        return pd.DataFrame({c: [] for c in cols})
    cells = cells.sort_values("cell").reset_index(drop=True)
    arr = cells["cell"].to_numpy(np.uint64)
    i, j = _neighbour_pairs(arr)
    adj = sp.csr_array((np.ones(len(i)), (i, j)), shape=(len(arr), len(arr)))
    _, label = connected_components(adj, directed=False)
    cells["cluster"] = label
    places = result.key_places
    col = f"h3_r{res}"
    if len(places) and col in places:
        up = places[~places["covered"]]
        pos = np.minimum(np.searchsorted(arr, up[col].to_numpy(np.uint64)), len(arr) - 1)
        hit = arr[pos] == up[col].to_numpy(np.uint64)
        pcount = pd.Series(label[pos[hit]]).value_counts()
    else:
        pcount = pd.Series(dtype=int)
    g = cells.groupby("cluster").agg(
        cells=("cell", "size"),
        area_km2=("area_km2", "sum"),
        weight=("weight", "sum"),
        lon=("lon", "mean"),
        lat=("lat", "mean"),
        worst_eta_s=("eta_s", "max"),
    )
    g["places"] = g.index.map(pcount).fillna(0).astype(int)
    towns = (
        cells.dropna(subset=["town"])
        .groupby("cluster")["town"]
        .agg(lambda s: s.value_counts().index[0])
    )
    g["town"] = g.index.map(towns)
    g = g.sort_values(["weight", "area_km2"], ascending=False).head(top)
    members = cells.groupby("cluster")["cell"].apply(lambda s: s.to_numpy(np.uint64))
    g["geometry"] = [h3i.cells_to_geo([int(c) for c in members[k]]) for k in g.index]
    g["rank"] = np.arange(1, len(g) + 1)
    g["area_km2"] = g["area_km2"].round(4)
    return g.reset_index(drop=True)[cols]


def isochrones(
    result: CoverageResult,
    minutes: list[float] | None = None,
    layer: str | None = None,
    res: int = AREA_RES,
    towns: Sequence[str] | None = None,
) -> dict[float, dict[str, Any] | None]:
    """Areas reached within each number of minutes (ETA incl. turnout) as GeoJSON geometries.

    The union of the cells (all cells at ``res``) whose ETA is within the minutes, dissolved
    by H3 (``cells_to_geo``); ``layer`` restricts to one responder layer, ``towns`` to the
    cells of those towns. None when empty.
    """
    minutes = list(minutes if minutes is not None else result.settings.isochrone_minutes)
    cells = _in_towns(result.cells[result.cells["res"] == res], None, towns)
    eta = cells["eta_s"] if layer is None else cells[f"eta_{layer}"]
    out: dict[float, dict[str, Any] | None] = {}
    for m in minutes:
        sel = cells.loc[(eta <= m * 60.0).to_numpy(), "cell"].to_numpy(np.uint64)
        out[float(m)] = h3i.cells_to_geo([int(c) for c in sel]) if len(sel) else None
    return out


# --------------------------------------------------------------------------- what-if


@dataclass(frozen=True, eq=False)
class WhatIf:
    """One what-if edit: figures before and after and their difference."""

    action: str
    responder_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    diff: dict[str, float]
    changed_nodes: int
    _engine: Any = field(default=None, repr=False)

    @property
    def result(self) -> CoverageResult:
        """The full coverage result after the edit (built on first access, from the engine's state)."""
        return self._engine.result


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in after.items():
        b = before.get(k)
        if isinstance(v, (int, float)) and isinstance(b, (int, float)) and not isinstance(v, bool):
            out[k] = round(v - b, 6)
    return out


class CoverageEngine:
    """Coverage with incremental add / move / remove of responders (network or radius mode).

    Parameters
    ----------
    scene
        The scene; its responders are the starting set.
    """

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._base = scene.responders.reset_index(drop=True).copy()
        self._new_rows: list[dict[str, Any]] = []
        self._ids = [str(i) for i in self._base["id"]]
        self._layer = np.asarray(self._base["layer"], dtype=object)
        self._node = self._base["node"].to_numpy(np.int64).copy()
        self._turnout = self._base["turnout_s"].to_numpy(np.float64).copy()
        self._active = np.ones(len(self._base), dtype=bool)
        self._frame: pd.DataFrame | None = None
        self._result: CoverageResult | None = compute_coverage(scene, self.responders)
        self.node_eta = {k: v.copy() for k, v in (self._result.node_eta or {}).items()}
        self.node_first = {k: v.copy() for k, v in (self._result.node_first or {}).items()}
        cells = scene.cells
        self._area_mask = ((cells["res"] == AREA_RES) & cells["built_up"]).to_numpy()
        self._area = cells["area_km2"].to_numpy(np.float64)[self._area_mask]
        self._weight = cells["weight"].to_numpy(np.float64)[self._area_mask]
        self._cell_node = cells["node"].to_numpy(np.int64)[self._area_mask]
        self._place_node = scene.key_places["node"].to_numpy(np.int64)
        self._cell_order = np.argsort(self._cell_node, kind="stable")
        self._place_order = np.argsort(self._place_node, kind="stable")
        self._cell_eta = {k: _carry(v, self._cell_node, np.inf) for k, v in self.node_eta.items()}
        self._place_eta = {k: _carry(v, self._place_node, np.inf) for k, v in self.node_eta.items()}
        self._summary = summary(self._result)
        if scene.graph is not None and scene.mode == "network":
            scene.graph.reverse_seconds()  # built once here, so no edit pays for it
            scene.graph.max_out_seconds()

    @property
    def result(self) -> CoverageResult:
        """Coverage of the current responder set (frames rebuilt lazily after edits)."""
        if self._result is None:
            self._result = self._rebuild()
        return self._result

    def summary(self) -> dict[str, Any]:
        """District figures of the current responder set (cheap: from arrays)."""
        return self._summary

    @property
    def responders(self) -> pd.DataFrame:
        """Every responder the engine has seen (rows keep their position), with ``active``."""
        if self._frame is None or len(self._frame) != len(self._ids):
            frame = (
                pd.concat([self._base, pd.DataFrame(self._new_rows)], ignore_index=True)
                if self._new_rows
                else self._base.copy()
            )
            self._frame = frame
        self._frame["active"] = self._active
        return self._frame

    def _active_frame(self) -> pd.DataFrame:
        resp = self.responders
        return resp[resp["active"]]

    def _layers(self) -> tuple[tuple[str, ...], dict[str, float], dict[str, float]]:
        present = set(self._layer[self._active]) | set(self.node_eta)
        layers = tuple(sorted(present, key=lambda s: (s != "micro_station", s)))
        targets, turnouts = {}, {}
        for layer in layers:
            turnouts[layer], targets[layer] = layer_timing(layer, self.scene.settings)
        return layers, targets, turnouts

    def _rebuild(self) -> CoverageResult:
        scene = self.scene
        if scene.mode == "radius":
            return compute_coverage(scene, self._active_frame())
        layers, targets, turnouts = self._layers()
        res = _result_from_nodes(
            scene, self.responders, self.node_eta, self.node_first, layers, targets, turnouts
        )
        return replace(res, responders=self._active_frame().reset_index(drop=True))

    @staticmethod
    def _members(order: np.ndarray, keys: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Positions whose node is in ``nodes`` (``order`` sorts ``keys``), without touching the rest."""
        sorted_keys = keys[order]
        lo = np.searchsorted(sorted_keys, nodes, "left")
        hi = np.searchsorted(sorted_keys, nodes, "right")
        n = hi - lo
        if n.sum() == 0:
            return np.zeros(0, dtype=np.int64)
        start = np.repeat(lo - (np.cumsum(n) - n), n)
        return order[start + np.arange(int(n.sum()))]

    def _carry_changed(self, changed: dict[str, np.ndarray]) -> None:
        """Carry new node times to the cells and places of the changed nodes only."""
        n = len(self._cell_node)
        for layer, nodes in changed.items():
            if len(nodes) == 0:
                continue
            self._cell_eta.setdefault(layer, np.full(n, np.inf))
            self._place_eta.setdefault(layer, np.full(len(self._place_node), np.inf))
            c = self._members(self._cell_order, self._cell_node, nodes)
            self._cell_eta[layer][c] = self.node_eta[layer][self._cell_node[c]]
            q = self._members(self._place_order, self._place_node, nodes)
            self._place_eta[layer][q] = self.node_eta[layer][self._place_node[q]]

    def _summarise(self, changed: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.scene.mode == "radius":
            return summary(self.result)
        layers, targets, _ = self._layers()
        n = self.scene.graph.n_nodes
        for layer in layers:
            self.node_eta.setdefault(layer, np.full(n, np.inf))
            self.node_first.setdefault(layer, np.full(n, -1, dtype=np.int64))
            self._cell_eta.setdefault(layer, np.full(len(self._cell_node), np.inf))
            self._place_eta.setdefault(layer, np.full(len(self._place_node), np.inf))
        self._carry_changed(changed)
        return _summary_arrays(
            "network",
            int(self._active.sum()),
            len(self.scene.unsnapped),
            targets,
            self._area,
            self._weight,
            self._cell_eta,
            self._place_eta,
            len(self._place_node),
        )

    def _commit(self, action: str, rid: str, changed: dict[str, np.ndarray]) -> WhatIf:
        before = self._summary
        self._result = None
        self._summary = self._summarise(changed)
        after = self._summary
        n_changed = int(sum(len(v) for v in changed.values()))
        return WhatIf(action, rid, before, after, _diff(before, after), n_changed, self)

    def _row_of(self, rid: str) -> int:
        hit = [i for i, x in enumerate(self._ids) if x == str(rid) and self._active[i]]
        if len(hit) == 0:
            known = [x for i, x in enumerate(self._ids) if self._active[i]][:10]
            raise ValidationError(
                f"responder {rid!r} not found among active responders (e.g. {known})"
            )
        return int(hit[0])

    # -- add
    def _add_nodes(self, row: int) -> np.ndarray:
        g = self.scene.graph
        assert g is not None
        layer = self._layer[row]
        s = int(self._node[row])
        offset = float(self._turnout[row])
        old = self.node_eta.setdefault(layer, np.full(g.n_nodes, np.inf))
        first = self.node_first.setdefault(layer, np.full(g.n_nodes, -1, dtype=np.int64))
        if not offset < old[s]:
            return np.zeros(0, dtype=np.int64)
        maxout = g.max_out_seconds()
        gap = old[s] - offset
        target = layer_timing(layer, self.scene.settings)[1]
        limit = max(gap if np.isfinite(gap) else 2.0 * target, 1.0)
        while True:
            dist = dijkstra(g.seconds, indices=s, limit=limit)
            reached = np.flatnonzero(
                dist <= limit
            )  # the only O(n) step; the rest is on the reached part
            d = dist[reached]
            better = offset + d < old[reached]
            frontier = better & (d + maxout[reached] > limit)
            if not frontier.any() or limit > 1e9:
                break
            limit *= 2.0
        improved = reached[better]
        old[improved] = offset + d[better]
        first[improved] = row
        return improved

    def add(
        self,
        rid: str,
        lon: float,
        lat: float,
        layer: str = "micro_station",
        name: str | None = None,
        station_class: str | None = None,
    ) -> WhatIf:
        """Add a responder at lon/lat; returns the new figures and the difference."""
        turnout, target = layer_timing(layer, self.scene.settings)
        x, y = self.scene.project([lon], [lat])
        node = -1
        snap_m = np.nan
        if self.scene.mode == "network":
            snap = self.scene.graph.snap([lon], [lat], self.scene.settings.snap_distance_m)
            if not snap.ok[0]:
                msg = (
                    f"new responder {rid!r} at ({lon}, {lat}) is {snap.distance_m[0]:.0f} m from the road network "
                    f"(snap distance {self.scene.settings.snap_distance_m:.0f} m); move it next to a road"
                )
                raise NetworkError(msg)
            node, snap_m = int(snap.node[0]), float(snap.distance_m[0])
        row = len(self._ids)
        new = {
            "id": str(rid),
            "name": name or str(rid),
            "layer": layer,
            "kind": None,
            "station_class": station_class,
            "lon": float(lon),
            "lat": float(lat),
            "x": float(x[0]),
            "y": float(y[0]),
            "node": node,
            "snap_m": snap_m,
            "turnout_s": turnout,
            "target_s": target,
            "active": True,
        }
        self._new_rows.append(new)
        self._ids.append(str(rid))
        self._layer = np.append(self._layer, np.array([layer], dtype=object))
        self._node = np.append(self._node, np.int64(node))
        self._turnout = np.append(self._turnout, float(turnout))
        self._active = np.append(self._active, True)
        changed = {layer: self._add_nodes(row)} if self.scene.mode == "network" else {}
        return self._commit("add", str(rid), changed)

    # -- remove
    def _remove_nodes(self, row: int) -> np.ndarray:
        g = self.scene.graph
        assert g is not None
        layer = self._layer[row]
        eta, first = self.node_eta[layer], self.node_first[layer]
        area = np.nonzero(first == row)[0]
        if len(area) == 0:
            return area
        in_area = np.zeros(g.n_nodes, dtype=bool)
        in_area[area] = True
        rev = g.reverse_seconds()[area]
        boundary = np.unique(rev.indices)
        boundary = boundary[~in_area[boundary] & np.isfinite(eta[boundary])]
        # other responders of the layer standing inside the area
        inside = np.nonzero(
            (self._layer == layer)
            & self._active
            & (np.arange(len(self._ids)) != row)
            & (self._node >= 0)
        )[0]
        inside = inside[in_area[self._node[inside]]]
        nodes = np.concatenate([area, boundary])
        sub = g.seconds[nodes][:, nodes].tocoo()
        k = len(nodes)
        local = np.full(g.n_nodes, -1, dtype=np.int64)
        local[nodes] = np.arange(k)
        seed_local = np.concatenate([local[boundary], local[self._node[inside]]])
        seed_time = np.concatenate([eta[boundary], self._turnout[inside]])
        seed_owner = np.concatenate([first[boundary], inside])
        eta[area] = np.inf
        first[area] = -1
        if len(seed_local) == 0:
            return area
        base = float(seed_time.min())
        w = seed_time - base + 1.0  # +1 s keeps the virtual edges non-zero; subtracted below
        rows = np.concatenate([sub.row, np.full(len(seed_local), k)])
        cols = np.concatenate([sub.col, seed_local])
        data = np.concatenate([sub.data, w])
        aug = sp.csr_array((data, (rows, cols)), shape=(k + 1, k + 1))
        dist, pred = dijkstra(aug, indices=k, return_predecessors=True)
        # owner of each node: the seed its path leaves the virtual node through (pointer doubling)
        parent = np.where((pred == k) | (pred < 0), np.arange(k + 1), pred)
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        owner_local = np.full(k + 1, -1, dtype=np.int64)
        order = np.argsort(w, kind="stable")  # several seeds on one node: the earliest wins
        owner_local[seed_local[order][::-1]] = seed_owner[order][::-1]
        la = local[area]
        t = dist[la] - 1.0 + base
        reached = np.isfinite(t)
        eta[area[reached]] = t[reached]
        first[area[reached]] = owner_local[parent[la[reached]]]
        return area

    def remove(self, rid: str) -> WhatIf:
        """Remove a responder; only the nodes it served are recomputed."""
        row = self._row_of(rid)
        self._active[row] = False
        changed = (
            {self._layer[row]: self._remove_nodes(row)} if self.scene.mode == "network" else {}
        )
        return self._commit("remove", str(rid), changed)

    def move(self, rid: str, lon: float, lat: float) -> WhatIf:
        """Move a responder: remove it, then add it at the new place (both incremental)."""
        row = self._row_of(rid)
        if self.scene.mode == "network":
            snap = self.scene.graph.snap([lon], [lat], self.scene.settings.snap_distance_m)
            if not snap.ok[0]:
                msg = (
                    f"cannot move {rid!r} to ({lon}, {lat}): {snap.distance_m[0]:.0f} m from the road network "
                    f"(snap distance {self.scene.settings.snap_distance_m:.0f} m)"
                )
                raise NetworkError(msg)
        before = self._summary
        nb = len(self._base)
        old = self._base.loc[row].to_dict() if row < nb else dict(self._new_rows[row - nb])
        self._active[row] = False
        removed = 0
        if self.scene.mode == "network":
            area = self._remove_nodes(row)
            self._carry_changed({old["layer"]: area})
            removed = len(area)
        whatif = self.add(rid, lon, lat, old["layer"], old.get("name"), old.get("station_class"))
        return WhatIf(
            "move",
            str(rid),
            before,
            whatif.after,
            _diff(before, whatif.after),
            removed + whatif.changed_nodes,
            self,
        )
