"""Fire water: hydrant blind spots, hydrant spacing along roads, nearest water source per place.

GB 50974-2014 §7.2.5: municipal hydrants protect ≤ 150 m (``hydrant_protection_radius_m``)
and stand ≤ 120 m apart (``hydrant_max_spacing_m``). Only hydrants whose status is in
``Settings.hydrant_working_statuses`` count; damaged, low-pressure and out-of-service ones
do not.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from geo.coverage_inputs import Scene
from geo.network import (
    MIN_EDGE_SECONDS,
    EdgePositions,
    RoadGraph,
    locate_on_edges,
    undirected_edges,
)


FIRE_POOL = "消防水池"  # water_source kind (layers/water_source.py) held to fire_pool_min_m3


@dataclass(frozen=True, eq=False)
class WaterBlindSpots:
    """Built-up cells and key places beyond the protection radius of every working hydrant.

    ``cells``: built-up cells (res 9 and 10) with ``hydrant_m`` (straight line from the cell
    centre to the nearest working hydrant, inf when there is none), ``hydrant_id`` and
    ``blind``. ``key_places``: id, name, category, ..., ``hydrant_m``, ``hydrant_id``, ``blind``.
    """

    radius_m: float
    cells: pd.DataFrame
    key_places: pd.DataFrame

    @property
    def blind_cells(self) -> pd.DataFrame:
        """Only the blind cells."""
        return self.cells[self.cells["blind"]]

    @property
    def blind_places(self) -> pd.DataFrame:
        """Only the blind key places."""
        return self.key_places[self.key_places["blind"]]


def _nearest(frame: pd.DataFrame, sites: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Straight-line metres to the nearest site and that site's id (inf / None without sites)."""
    if len(sites) == 0 or len(frame) == 0:
        return np.full(len(frame), np.inf), np.full(len(frame), None, dtype=object)
    tree = cKDTree(np.column_stack([sites["x"].to_numpy(), sites["y"].to_numpy()]))
    d, i = tree.query(np.column_stack([frame["x"].to_numpy(), frame["y"].to_numpy()]))
    return d, sites["id"].to_numpy(dtype=object)[i]


def hydrant_blind_spots(scene: Scene) -> WaterBlindSpots:
    """Built-up cells (by centre) and key places farther than the protection radius from a working hydrant."""
    radius = scene.settings.hydrant_protection_radius_m
    working = (
        scene.hydrants[scene.hydrants["working"].astype(bool)]
        if len(scene.hydrants)
        else scene.hydrants
    )
    cells = scene.cells[scene.cells["built_up"]][
        [
            "cell",
            "res",
            "lon",
            "lat",
            "x",
            "y",
            "area_km2",
            "grid_id",
            "community",
            "town",
            "weight",
        ]
    ].copy()
    cells["hydrant_m"], cells["hydrant_id"] = _nearest(cells, working)
    cells["blind"] = cells["hydrant_m"] > radius
    places = scene.key_places.copy()
    places["hydrant_m"], places["hydrant_id"] = _nearest(places, working)
    places["blind"] = places["hydrant_m"] > radius
    return WaterBlindSpots(radius, cells.reset_index(drop=True), places.reset_index(drop=True))


def water_check(scene: Scene) -> pd.DataFrame:
    """Water points below their standard, where the figure is known.

    Hydrants whose ``pressure_mpa`` is under ``hydrant_min_pressure_mpa`` (GB 50974-2014
    §7.2.8; they do not count as working) and fire pools (消防水池) whose ``capacity_m3`` is
    under ``fire_pool_min_m3`` (seed 003). A missing pressure or capacity is not flagged.
    Columns: layer, id, name, kind, status, value, limit, problem.
    """
    s = scene.settings
    hyd, ws = scene.hydrants, scene.water_sources
    low = hyd[hyd["low_pressure"].to_numpy(bool)] if len(hyd) else hyd  # the scene's rule
    pressure = pd.to_numeric(low.get("pressure_mpa", pd.Series(np.nan, low.index)), errors="coerce")
    capacity = pd.to_numeric(ws.get("capacity_m3", pd.Series(np.nan, ws.index)), errors="coerce")
    small = ws[((ws["kind"] == FIRE_POOL) & (capacity < s.fire_pool_min_m3)).to_numpy()]
    parts = [
        pd.DataFrame(
            {
                "layer": "hydrant",
                "id": low["id"],
                "name": low["name"],
                "kind": None,
                "status": low["status"],
                "value": pressure,
                "limit": s.hydrant_min_pressure_mpa,
                "problem": f"pressure below {s.hydrant_min_pressure_mpa:g} MPa (GB 50974 §7.2.8)",
            }
        ),
        pd.DataFrame(
            {
                "layer": "water_source",
                "id": small["id"],
                "name": small["name"],
                "kind": small["kind"],
                "status": small["status"],
                "value": capacity[small.index],
                "limit": s.fire_pool_min_m3,
                "problem": f"fire pool under {s.fire_pool_min_m3:g} m³ (seed 003)",
            }
        ),
    ]
    cols = ["layer", "id", "name", "kind", "status", "value", "limit", "problem"]
    parts = [p[cols] for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _graph_voronoi(walk: sp.csr_array, site_nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Road metres from the nearest site and which site (position in ``site_nodes``)."""
    dist, _, src = dijkstra(walk, indices=site_nodes, min_only=True, return_predecessors=True)
    owner = np.full(walk.shape[0], -1, dtype=np.int64)
    owner[site_nodes[::-1]] = np.arange(len(site_nodes))[::-1]
    return dist, np.where(src >= 0, owner[np.maximum(src, 0)], -1)


def _split_at_points(
    graph: RoadGraph, at: EdgePositions
) -> tuple[sp.csr_array, np.ndarray]:
    """Undirected walking graph with each located point inserted as a node on its edge.

    An edge ``u``–``v`` holding points at offsets o1 ≤ o2 ≤ … becomes the chain
    u–p1–p2–…–v with lengths o1, o2 − o1, …, L − ok, so the road distance between
    two points on one edge is their offset difference and any other is offset + shortest
    node-to-node path + offset. Returns the graph and the node index of every point.
    """
    u, v, metres = undirected_edges(graph)
    n, m = graph.n_nodes, len(at.u)
    order = np.lexsort((at.offset_m, at.v, at.u))
    eu, ev, off, length = at.u[order], at.v[order], at.offset_m[order], at.length_m[order]
    new_node = n + np.arange(m)
    first = np.ones(m, dtype=bool)
    first[1:] = (eu[1:] != eu[:-1]) | (ev[1:] != ev[:-1])
    last = np.ones(m, dtype=bool)
    last[:-1] = first[1:]
    prev_node = np.where(first, eu, np.r_[-1, new_node[:-1]])
    prev_off = np.where(first, 0.0, np.r_[0.0, off[:-1]])
    a = np.r_[prev_node, new_node[last]]
    b = np.r_[new_node, ev[last]]
    w = np.r_[off - prev_off, length[last] - off[last]]
    split = np.isin(u * n + v, eu * n + ev)
    a, b, w = np.r_[u[~split], a], np.r_[v[~split], b], np.r_[metres[~split], w]
    w = np.maximum(w, MIN_EDGE_SECONDS)  # csgraph ignores zero-length links
    size = n + m
    walk = sp.csr_array((np.r_[w, w], (np.r_[a, b], np.r_[b, a])), shape=(size, size))
    node_of = np.empty(m, dtype=np.int64)
    node_of[order] = new_node
    return walk, node_of


def _network_spacing(scene: Scene, working: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Neighbouring hydrant pairs (rows of the returned ids) and their road gaps."""
    graph = scene.graph
    assert graph is not None
    at = locate_on_edges(
        graph,
        working["x"].to_numpy(np.float64),
        working["y"].to_numpy(np.float64),
        scene.settings.snap_distance_m,
    )
    ids = working["id"].to_numpy(dtype=object)[at.ok]
    on = EdgePositions(*(arr[at.ok] for arr in dataclasses.astuple(at)))
    if len(ids) < 2:
        return pd.DataFrame({"a": [], "b": [], "spacing_m": []}), ids
    walk, site_nodes = _split_at_points(graph, on)
    dist, owner = _graph_voronoi(walk, site_nodes)
    coo = sp.triu(walk, format="coo")
    u, v, w = coo.row, coo.col, coo.data
    ou, ov = owner[u], owner[v]
    cross = (ou >= 0) & (ov >= 0) & (ou != ov)
    length = dist[u[cross]] + w[cross] + dist[v[cross]]
    lo, hi = np.minimum(ou[cross], ov[cross]), np.maximum(ou[cross], ov[cross])
    frame = pd.DataFrame({"a": lo, "b": hi, "spacing_m": length})
    return frame.groupby(["a", "b"], as_index=False)["spacing_m"].min(), ids


def hydrant_spacing(scene: Scene) -> pd.DataFrame:
    """Neighbouring working hydrants and their spacing along roads; ``over_limit`` beyond 120 m.

    Network mode: each hydrant is placed on its nearest road edge (within
    ``snap_distance_m``) at its offset along that edge, not moved to a node; the edge is
    split there. Hydrants then divide the (undirected) roads into graph-Voronoi regions
    (each point of road goes to its nearest hydrant along roads); two hydrants are
    neighbours when a road joins their regions, and their spacing is the shortest road path
    between them through such a road (Mehlhorn 1988): on one street, the gaps between
    consecutive hydrants. Radius mode: the nearest other hydrant in a straight line.
    Columns: a_id, b_id, spacing_m, over_limit, mode.
    """
    limit = scene.settings.hydrant_max_spacing_m
    cols = ["a_id", "b_id", "spacing_m", "over_limit", "mode"]
    hyd = scene.hydrants
    working = hyd[hyd["working"].astype(bool)].reset_index(drop=True) if len(hyd) else hyd
    if len(working) < 2:
        return pd.DataFrame({c: [] for c in cols})
    ids = working["id"].to_numpy(dtype=object)
    if scene.mode == "radius" or scene.graph is None:
        tree = cKDTree(np.column_stack([working["x"].to_numpy(), working["y"].to_numpy()]))
        d, i = tree.query(np.column_stack([working["x"].to_numpy(), working["y"].to_numpy()]), k=2)
        a, b = np.arange(len(working)), i[:, 1]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        frame = pd.DataFrame({"a": lo, "b": hi, "spacing_m": d[:, 1]}).drop_duplicates(["a", "b"])
        mode = "radius"
    else:
        frame, ids = _network_spacing(scene, working)
        mode = "network"
    out = pd.DataFrame(
        {
            "a_id": ids[frame["a"].to_numpy(np.int64)],
            "b_id": ids[frame["b"].to_numpy(np.int64)],
            "spacing_m": frame["spacing_m"].to_numpy(np.float64).round(2),
        }
    )
    out["over_limit"] = out["spacing_m"] > limit
    out["mode"] = mode
    return out.sort_values("spacing_m", ascending=False).reset_index(drop=True)[cols]


def nearest_water(scene: Scene) -> pd.DataFrame:
    """Nearest usable water source of each key place, with its kind and capacity.

    Network mode: along roads (undirected; place and source snap distances added);
    radius mode: straight line. Sources with a status outside
    ``water_source_working_statuses`` are skipped (no status counts as usable).
    ``below_min`` flags a fire pool with a known capacity under ``fire_pool_min_m3``.
    Columns: place_id, place_name, source_id, source_name, kind, capacity_m3, road_m,
    below_min, straight_m.
    """
    places = scene.key_places
    ws = scene.water_sources
    usable = ws[ws["working"].astype(bool)].reset_index(drop=True) if len(ws) else ws
    out = pd.DataFrame(
        {"place_id": places["id"].to_numpy(), "place_name": places["name"].to_numpy()}
    )
    if len(usable) == 0 or len(places) == 0:
        for c in ("source_id", "source_name", "kind", "capacity_m3", "road_m", "straight_m"):
            out[c] = None if c in ("source_id", "source_name", "kind") else np.nan
        out.insert(len(out.columns) - 1, "below_min", False)
        return out
    if scene.mode == "network" and scene.graph is not None and (usable["node"] >= 0).any():
        on = usable[usable["node"] >= 0].reset_index(drop=True)
        nodes = on["node"].to_numpy(np.int64)
        site_nodes, first = np.unique(nodes, return_index=True)
        dist, owner = _graph_voronoi(scene.graph.walk_metres, site_nodes)
        pn = places["node"].to_numpy(np.int64)
        ok = pn >= 0
        who = np.where(ok, owner[np.maximum(pn, 0)], -1)
        src_row = np.where(who >= 0, first[np.maximum(who, 0)], -1)
        road = np.where(
            who >= 0,
            dist[np.maximum(pn, 0)]
            + places["snap_m"].to_numpy(np.float64)
            + on["snap_m"].to_numpy(np.float64)[np.maximum(src_row, 0)],
            np.inf,
        )
        pick = on
    else:
        pick = usable
        tree = cKDTree(np.column_stack([usable["x"].to_numpy(), usable["y"].to_numpy()]))
        _, src_row = tree.query(np.column_stack([places["x"].to_numpy(), places["y"].to_numpy()]))
        road = np.full(len(places), np.nan)
    has = src_row >= 0
    r = np.maximum(src_row, 0)
    out["source_id"] = np.where(has, pick["id"].to_numpy(dtype=object)[r], None)
    out["source_name"] = np.where(has, pick["name"].to_numpy(dtype=object)[r], None)
    out["kind"] = np.where(has, pick["kind"].to_numpy(dtype=object)[r], None)
    out["capacity_m3"] = np.where(
        has, pd.to_numeric(pick["capacity_m3"], errors="coerce").to_numpy(np.float64)[r], np.nan
    )
    out["road_m"] = np.round(road, 1)
    out["below_min"] = (out["kind"] == FIRE_POOL).to_numpy() & (
        out["capacity_m3"].to_numpy(np.float64) < scene.settings.fire_pool_min_m3
    )
    straight = np.hypot(
        places["x"].to_numpy() - pick["x"].to_numpy()[r],
        places["y"].to_numpy() - pick["y"].to_numpy()[r],
    )
    out["straight_m"] = np.where(has, straight.round(1), np.nan)
    return out
