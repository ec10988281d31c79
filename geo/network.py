"""Road network: import (OSM PBF or GIS lines), speeds, one-way, the sparse graph and snapping.

Edges are stored DIRECTED (one row per direction of travel) in ``road_edges`` with the
road's free-flow ``speed_kmh`` (OSM ``maxspeed`` when present, else the class table
``Settings.road_speeds_kmh``). Appliance travel time is applied when the graph is loaded:
``seconds = length_m / (speed_kmh × urban_slowdown_factor / 3.6)``, so changing the
slow-down factor needs no re-import.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree

from geo import h3index
from geo.cache import BoundedCache
from geo.errors import ConfigError, NetworkError, ReadError
from geo.settings import Settings
from geo.store import COVER_RESOLUTIONS

MIN_EDGE_SECONDS = (
    1e-6  # a zero-length edge still is an edge (csgraph drops true zeros in some ops)
)
_FORWARD = {"yes", "true", "1", "f", "ft"}
_BACKWARD = {"-1", "reverse", "t", "tf"}
_ROUNDABOUT = re.compile(r'"junction"\s*:\s*"(?:roundabout|circular)"')


# --------------------------------------------------------------------------- speeds


def edge_speeds(highway: Any, maxspeed: Any, settings: Settings) -> np.ndarray:
    """Free-flow speed (km/h) per edge: numeric ``maxspeed`` if given, else the class table.

    ``maxspeed`` like ``"50"``, ``"50 km/h"``, ``"30 mph"`` is read; ``"none"``, ``"RU:urban"``
    and missing values fall back to ``Settings.road_speeds_kmh[highway]`` (``*_link`` uses
    its parent class; unknown classes use ``default``).
    """
    table = settings.road_speeds_kmh
    hw = pd.Series(np.asarray(highway, dtype=object)).astype("string").fillna("").str.lower()
    hw = hw.str.replace(r"_link$", "", regex=True)
    if "default" not in table:
        raise ConfigError(f"road_speeds_kmh needs a 'default' speed; it has {sorted(table)}")
    default = float(table["default"])
    by_class = (
        hw.map({k: float(v) for k, v in table.items()}).astype("float64").fillna(default).to_numpy()
    )
    ms = pd.Series(np.asarray(maxspeed, dtype=object)).astype("string").str.lower()
    number = pd.to_numeric(
        ms.str.extract(r"^\s*(\d+(?:\.\d+)?)", expand=False), errors="coerce"
    ).astype("Float64")
    number = number.where(~ms.str.contains("mph", na=False), number * 1.609344)
    given = number.to_numpy(dtype="float64", na_value=np.nan)
    return np.where(np.isfinite(given) & (given > 0), given, by_class)


def _oneway_flags(oneway: Any, roundabout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forward allowed, backward allowed) per way from OSM / Geofabrik ``oneway`` values."""
    ow = (
        pd.Series(np.asarray(oneway, dtype=object))
        .astype("string")
        .fillna("")
        .str.strip()
        .str.lower()
    )
    forward_only = ow.isin(_FORWARD).to_numpy() | (
        roundabout & ~ow.isin(_BACKWARD | {"no", "false", "0", "b"}).to_numpy()
    )
    backward_only = ow.isin(_BACKWARD).to_numpy()
    return ~backward_only, ~forward_only


# --------------------------------------------------------------------------- reading


def _directed(
    u: np.ndarray,
    v: np.ndarray,
    length_m: np.ndarray,
    speed: np.ndarray,
    highway: np.ndarray,
    name: np.ndarray,
    forward: np.ndarray,
    backward: np.ndarray,
    lines: np.ndarray,
) -> pd.DataFrame:
    """One row per allowed direction of travel."""
    oneway = ~(forward & backward)
    f = pd.DataFrame(
        {
            "u": u[forward],
            "v": v[forward],
            "length_m": length_m[forward],
            "speed_kmh": speed[forward],
            "highway": highway[forward],
            "name": name[forward],
            "oneway": oneway[forward],
            "geom": shapely.to_wkt(lines[forward], rounding_precision=7),
        }
    )
    b = pd.DataFrame(
        {
            "u": v[backward],
            "v": u[backward],
            "length_m": length_m[backward],
            "speed_kmh": speed[backward],
            "highway": highway[backward],
            "name": name[backward],
            "oneway": oneway[backward],
            "geom": shapely.to_wkt(shapely.reverse(lines[backward]), rounding_precision=7),
        }
    )
    out = pd.concat([f, b], ignore_index=True)
    out["u"] = out["u"].astype("int64")
    out["v"] = out["v"].astype("int64")
    return out


def _read_pbf(path: Path, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    import pyrosm

    try:
        osm = pyrosm.OSM(str(path))
        nodes, edges = osm.get_network(network_type="driving", nodes=True)
    except Exception as exc:  # pyrosm raises bare exceptions on bad files
        raise ReadError(f"{path}: cannot read the OSM PBF file ({exc})") from exc
    if edges is None or len(edges) == 0:
        raise ReadError(f"{path}: no drivable roads found (pyrosm network_type='driving')")

    def col(name: str) -> np.ndarray:
        return (
            edges[name].to_numpy(dtype=object)
            if name in edges
            else np.full(len(edges), None, dtype=object)
        )

    tags = (
        edges["tags"].astype("string").fillna("")
        if "tags" in edges
        else pd.Series([""] * len(edges))
    )
    roundabout = tags.str.contains(_ROUNDABOUT).to_numpy()
    if "junction" in edges:
        roundabout |= (
            edges["junction"]
            .astype("string")
            .isin(["roundabout", "circular"])
            .fillna(False)
            .to_numpy()
        )
    forward, backward = _oneway_flags(col("oneway"), roundabout)
    highway = col("highway")
    speed = edge_speeds(highway, col("maxspeed"), settings)
    table = _directed(
        edges["u"].to_numpy(np.int64),
        edges["v"].to_numpy(np.int64),
        edges["length"].to_numpy(np.float64),
        speed,
        highway,
        col("name"),
        forward,
        backward,
        edges.geometry.to_numpy(),
    )
    node_frame = pd.DataFrame(
        {
            "node_id": nodes["id"].to_numpy(np.int64),
            "lon": nodes["lon"].to_numpy(np.float64),
            "lat": nodes["lat"].to_numpy(np.float64),
        }
    )
    return node_frame, table


_HIGHWAY_COLS = ("highway", "fclass", "road_class", "class", "type", "道路等级", "等级")
_MAXSPEED_COLS = ("maxspeed", "max_speed", "speed", "限速")
_ONEWAY_COLS = ("oneway", "one_way", "单行", "单向")
_NAME_COLS = ("name", "名称", "路名", "道路名称")


def _pick(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    lower = {str(c).lower(): c for c in frame.columns}
    for n in names:
        if n.lower() in lower:
            return frame[lower[n.lower()]].to_numpy(dtype=object)
    return np.full(len(frame), None, dtype=object)


def _read_lines(
    path: Path, settings: Settings, crs: str | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GeoPackage / Shapefile / GeoJSON lines, split at every vertex (shared vertices join roads)."""
    import geopandas as gpd

    from geo import crs as crsmod

    try:
        frame = gpd.read_file(path)
    except Exception as exc:
        raise ReadError(f"{path}: cannot read road lines ({exc})") from exc
    frame = frame[frame.geometry.notna()].explode(index_parts=False, ignore_index=True)
    kinds = set(frame.geom_type.unique())
    if not kinds <= {"LineString"}:
        raise ReadError(f"{path}: road file must hold lines; found geometry types {sorted(kinds)}")
    if len(frame) == 0:
        raise ReadError(f"{path}: no road lines")
    source_crs = crs or (frame.crs.to_string() if frame.crs is not None else None)
    if source_crs is None:
        raise ReadError(
            f"{path}: the file has no CRS; pass --crs (wgs84, cgcs2000, gcj02, bd09 or EPSG:xxxx)"
        )
    coords, which = shapely.get_coordinates(frame.geometry.to_numpy(), return_index=True)
    lon, lat = crsmod.to_wgs84(coords[:, 0], coords[:, 1], source_crs)
    # nodes: distinct vertex positions (rounded to ~1 cm)
    uniq, node_of = np.unique(
        np.stack([np.round(lon, 7), np.round(lat, 7)], axis=1), axis=0, return_inverse=True
    )
    node_of = node_of.ravel()
    same_line = which[1:] == which[:-1]
    a = np.nonzero(same_line)[0]
    u, v = node_of[a], node_of[a + 1]
    line_of = which[a]
    seg = shapely.linestrings(
        np.stack([np.stack([lon[a], lat[a]], 1), np.stack([lon[a + 1], lat[a + 1]], 1)], 1)
    )
    tf = Transformer.from_crs(4326, _metric_crs(lon, lat), always_xy=True)
    x0, y0 = tf.transform(lon[a], lat[a])
    x1, y1 = tf.transform(lon[a + 1], lat[a + 1])
    length = np.hypot(np.asarray(x1) - x0, np.asarray(y1) - y0)
    keep = u != v
    highway = _pick(frame, _HIGHWAY_COLS)[line_of]
    speed = edge_speeds(highway, _pick(frame, _MAXSPEED_COLS)[line_of], settings)
    forward, backward = _oneway_flags(
        _pick(frame, _ONEWAY_COLS)[line_of], np.zeros(len(a), dtype=bool)
    )
    m = keep
    table = _directed(
        u[m],
        v[m],
        length[m],
        speed[m],
        highway[m],
        _pick(frame, _NAME_COLS)[line_of][m],
        forward[m],
        backward[m],
        seg[m],
    )
    nodes = pd.DataFrame(
        {"node_id": np.arange(len(uniq), dtype=np.int64), "lon": uniq[:, 0], "lat": uniq[:, 1]}
    )
    return nodes, table


def read_roads(
    path: str | os.PathLike[str], settings: Settings | None = None, crs: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drivable roads of a file as (nodes, directed edges) frames ready for the store.

    ``.pbf``: OSM via pyrosm ``get_network("driving")``. ``.gpkg``/``.shp``/``.geojson``:
    lines with optional columns highway/fclass, maxspeed, oneway (yes/-1 or Geofabrik F/T/B)
    and name; lines are joined where they share a vertex. ``crs`` overrides the file's CRS.
    """
    settings = settings or Settings()
    p = Path(path)
    if not p.exists():
        raise ReadError(f"road file {p} not found")
    suffix = "".join(p.suffixes[-2:]).lower()
    if suffix.endswith(".pbf"):
        nodes, edges = _read_pbf(p, settings)
    elif p.suffix.lower() in {".gpkg", ".shp", ".geojson", ".json", ".fgb"}:
        nodes, edges = _read_lines(p, settings, crs)
    else:
        raise ReadError(
            f"{p}: unknown road file type {p.suffix!r}; use an OSM .pbf, .gpkg, .shp or .geojson"
        )
    used = np.unique(np.concatenate([edges["u"].to_numpy(), edges["v"].to_numpy()]))
    nodes = nodes[nodes["node_id"].isin(used)].drop_duplicates("node_id").reset_index(drop=True)
    cells = h3index.index_points(
        nodes["lon"].to_numpy(), nodes["lat"].to_numpy(), COVER_RESOLUTIONS
    )
    for res, column in cells.items():
        nodes[h3index.cell_column(res)] = column
    return nodes, edges


def import_roads(
    path: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
    crs: str | None = None,
) -> dict[str, Any]:
    """Read a road file and replace ``road_nodes``/``road_edges`` in the store; returns counts."""
    from geo import store

    settings = settings or Settings()
    nodes, edges = read_roads(path, settings, crs)
    with store.writer(db) as con:
        store.write_table(con, "road_nodes", nodes)
        store.write_table(con, "road_edges", edges)
    return {
        "file": str(path),
        "nodes": len(nodes),
        "directed_edges": len(edges),
        "oneway_edges": int(edges["oneway"].sum()),
        "road_km": round(
            float(
                edges.loc[~edges["oneway"], "length_m"].sum() / 2
                + edges.loc[edges["oneway"], "length_m"].sum()
            )
            / 1000,
            3,
        ),
        "speed_kmh_by_class": {
            str(k): float(v)
            for k, v in edges.groupby(edges["highway"].astype(str))["speed_kmh"].median().items()
        },
    }


# --------------------------------------------------------------------------- graph


# A pyproj Transformer holds about 30 KB (RSS growth measured over 200 of them): the
# estimate counted against the cache's byte budget.
_TRANSFORMER_BYTES = 30 * 1024
_TRANSFORMERS: BoundedCache[Transformer] = BoundedCache(
    "pyproj transformers", max_entries=32, sizer=lambda _: _TRANSFORMER_BYTES)


def transformer(crs: str) -> Transformer:
    """WGS-84 → ``crs`` transformer (cached: building one takes milliseconds)."""
    found, held = _TRANSFORMERS.lookup(None, crs)
    if found and held is not None:
        return held
    return _TRANSFORMERS.put(None, crs, Transformer.from_crs(4326, crs, always_xy=True))


def _metric_crs(lon: np.ndarray, lat: np.ndarray) -> str:
    lon0 = float(np.nanmean(lon)) if len(lon) else 0.0
    lat0 = float(np.nanmean(lat)) if len(lat) else 0.0
    return f"+proj=tmerc +lat_0={lat0:.4f} +lon_0={lon0:.4f} +k=1 +datum=WGS84 +units=m +no_defs"


@dataclass(frozen=True)
class Snap:
    """Points placed on the network: ``node`` is -1 where farther than the snap distance."""

    node: np.ndarray
    distance_m: np.ndarray
    ok: np.ndarray


@dataclass(frozen=True, eq=False)
class RoadGraph:
    """Directed road graph: CSR matrices of travel seconds and metres, node coordinates, KD-tree.

    Graph node ``i`` is the store's ``node_ids[i]``; ``x, y`` are metres in ``crs`` (a local
    transverse Mercator projection) used for snapping and straight-line distances.
    """

    node_ids: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    x: np.ndarray
    y: np.ndarray
    crs: str
    seconds: sp.csr_array
    metres: sp.csr_array
    walk_metres: sp.csr_array
    tree: cKDTree
    _cells: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def reverse_seconds(self) -> sp.csr_array:
        """Travel seconds with every edge reversed (searches *towards* a point), cached."""
        if "reverse" not in self._cache:
            self._cache["reverse"] = self.seconds.T.tocsr()
        return self._cache["reverse"]

    def max_out_seconds(self) -> np.ndarray:
        """Longest outgoing edge (s) of every node (0 for dead ends), cached."""
        if "maxout" not in self._cache:
            self._cache["maxout"] = np.asarray(self.seconds.max(axis=1).toarray()).ravel()
        return self._cache["maxout"]

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        """Number of directed edges (after removing self-loops and slower parallel edges)."""
        return int(self.seconds.nnz)

    def project(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """lon/lat → metres in the graph's local projection."""
        x, y = transformer(self.crs).transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def snap(self, lon: np.ndarray, lat: np.ndarray, max_distance_m: float) -> Snap:
        """Nearest node of each point; points farther than ``max_distance_m`` get node -1."""
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
        if len(lon) == 0:
            return Snap(
                np.array([], dtype=np.int64),
                np.array([], dtype=np.float64),
                np.array([], dtype=bool),
            )
        x, y = self.project(lon, lat)
        valid = np.isfinite(x) & np.isfinite(y)
        dist = np.full(len(lon), np.inf)
        node = np.full(len(lon), -1, dtype=np.int64)
        if valid.any():
            d, i = self.tree.query(np.column_stack([x[valid], y[valid]]))
            dist[valid] = d
            node[valid] = i
        ok = dist <= max_distance_m
        return Snap(np.where(ok, node, -1), dist, ok)

    def cells(self, res: int) -> np.ndarray:
        """H3 cell (uint64) of every node at ``res``."""
        if res not in self._cells:
            self._cells[res] = h3index.cells_at(self.lon, self.lat, res)
        return self._cells[res]

    def path(self, predecessors: np.ndarray, target: int) -> np.ndarray:
        """Node indices from the search's source to a reached ``target`` (check its distance first).

        Loops once per node of one route (a route has hundreds of nodes, not millions).
        """
        if target < 0:
            return np.array([], dtype=np.int64)
        out = [int(target)]
        cur = int(target)
        while predecessors[cur] >= 0:
            cur = int(predecessors[cur])
            out.append(cur)
        return np.asarray(out[::-1], dtype=np.int64)

    def path_lonlat(self, nodes: np.ndarray) -> list[list[float]]:
        """[[lon, lat], ...] of a node path (for a GeoJSON LineString)."""
        return np.column_stack([self.lon[nodes], self.lat[nodes]]).round(7).tolist()


def graph_from_tables(
    nodes: pd.DataFrame, edges: pd.DataFrame, settings: Settings | None = None
) -> RoadGraph:
    """Build the graph from ``nodes(node_id, lon, lat)`` and directed ``edges(u, v, length_m, speed_kmh)``.

    Self-loops are dropped; of parallel edges the fastest is kept (and the shortest for the
    undirected walking graph).
    """
    settings = settings or Settings()
    if len(nodes) == 0 or len(edges) == 0:
        raise NetworkError("the road network is empty; import roads with `onemap roads FILE`")
    ids = nodes["node_id"].to_numpy(np.int64)
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    if len(ids_sorted) > 1 and (ids_sorted[1:] == ids_sorted[:-1]).any():
        dup = ids_sorted[1:][ids_sorted[1:] == ids_sorted[:-1]][:5]
        raise NetworkError(f"road_nodes has duplicate node_id values, e.g. {dup.tolist()}")
    lon = nodes["lon"].to_numpy(np.float64)[order]
    lat = nodes["lat"].to_numpy(np.float64)[order]
    u_raw = edges["u"].to_numpy(np.int64)
    v_raw = edges["v"].to_numpy(np.int64)
    u = np.searchsorted(ids_sorted, u_raw)
    v = np.searchsorted(ids_sorted, v_raw)
    u_ok = (u < len(ids_sorted)) & (ids_sorted[np.minimum(u, len(ids_sorted) - 1)] == u_raw)
    v_ok = (v < len(ids_sorted)) & (ids_sorted[np.minimum(v, len(ids_sorted) - 1)] == v_raw)
    if not (u_ok & v_ok).all():
        bad = np.nonzero(~(u_ok & v_ok))[0]
        msg = (
            f"road_edges: {len(bad)} edge(s) refer to nodes missing from road_nodes, e.g. row {int(bad[0])} "
            f"(u={int(u_raw[bad[0]])}, v={int(v_raw[bad[0]])}); re-import the roads"
        )
        raise NetworkError(msg)
    length = edges["length_m"].to_numpy(np.float64)
    speed = edges["speed_kmh"].to_numpy(np.float64)
    bad = ~(np.isfinite(speed) & (speed > 0)) | ~(np.isfinite(length) & (length >= 0))
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        msg = (
            f"road_edges row {i}: speed_kmh={float(speed[i])}, length_m={float(length[i])}; speeds must be > 0 and "
            f"lengths ≥ 0 ({int(bad.sum())} bad rows)"
        )
        raise NetworkError(msg)
    seconds = np.maximum(length / (speed * settings.urban_slowdown_factor / 3.6), MIN_EDGE_SECONDS)
    n = len(ids_sorted)
    keep = u != v
    u, v, seconds, length = (
        u[keep],
        v[keep],
        seconds[keep],
        np.maximum(length[keep], MIN_EDGE_SECONDS),
    )
    sec_m = _dedupe_csr(u, v, seconds, length, n)
    walk = _dedupe_csr(
        np.concatenate([u, v]), np.concatenate([v, u]), np.concatenate([length, length]), None, n
    )[0]
    crs = _metric_crs(lon, lat)
    tf = Transformer.from_crs(4326, crs, always_xy=True)
    x, y = tf.transform(lon, lat)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return RoadGraph(
        ids_sorted, lon, lat, x, y, crs, sec_m[0], sec_m[1], walk, cKDTree(np.column_stack([x, y]))
    )


def _dedupe_csr(
    u: np.ndarray, v: np.ndarray, w: np.ndarray, w2: np.ndarray | None, n: int
) -> tuple[sp.csr_array, sp.csr_array | None]:
    """CSR matrices keeping, per (u, v), the row with the smallest ``w`` (``w2`` follows it)."""
    key = u.astype(np.int64) * n + v
    order = np.lexsort((w, key))
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    sel = order[first]
    a = sp.csr_array((w[sel], (u[sel], v[sel])), shape=(n, n))
    b = sp.csr_array((w2[sel], (u[sel], v[sel])), shape=(n, n)) if w2 is not None else None
    return a, b


def load_graph(con: Any, settings: Settings | None = None) -> RoadGraph | None:
    """The road graph of the store, or None when no roads were imported."""
    n = con.execute("SELECT count(*) FROM road_nodes").fetchone()[0]
    if n == 0:
        return None
    nodes = con.execute("SELECT node_id, lon, lat FROM road_nodes").df()
    edges = con.execute("SELECT u, v, length_m, speed_kmh FROM road_edges").df()
    return graph_from_tables(nodes, edges, settings)


# --------------------------------------------------------------------------- positions on edges


@dataclass(frozen=True)
class EdgePositions:
    """Points placed on the undirected road edges (not on nodes).

    Point ``i`` lies on the edge ``u[i]``–``v[i]`` (graph node indices, ``u < v``) of
    ``length_m[i]`` road metres, ``offset_m[i]`` metres from ``u``; ``distance_m`` is its
    straight-line distance to that edge. ``ok`` is False (and ``u = v = -1``) where the
    nearest edge is farther than the snap distance.
    """

    u: np.ndarray
    v: np.ndarray
    offset_m: np.ndarray
    length_m: np.ndarray
    distance_m: np.ndarray
    ok: np.ndarray


def undirected_edges(graph: RoadGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(u, v, metres)`` of each undirected edge once (``u < v``), from ``walk_metres``."""
    coo = sp.triu(graph.walk_metres, k=1, format="coo")
    return coo.row.astype(np.int64), coo.col.astype(np.int64), coo.data.astype(np.float64)


def locate_on_edges(
    graph: RoadGraph, x: np.ndarray, y: np.ndarray, max_distance_m: float
) -> EdgePositions:
    """Project points (metres in ``graph.crs``) onto their nearest road edge.

    Each edge is the straight segment between its two nodes (roads are imported split at
    every vertex); the offset along it is the projected fraction times the edge's road
    length. Vectorised: shapely 2 ``STRtree.query_nearest`` and ``line_locate_point``.
    """
    x = np.atleast_1d(np.asarray(x, dtype=np.float64))
    y = np.atleast_1d(np.asarray(y, dtype=np.float64))
    u, v, metres = undirected_edges(graph)
    n = len(x)
    out_u, out_v = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    offset, length, dist = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.inf)
    valid = np.isfinite(x) & np.isfinite(y)
    if len(u) and valid.any():
        # built per call (~0.1 s for 10k edges), not kept alive on the cached graph
        ends_u = np.column_stack([graph.x[u], graph.y[u]])
        ends_v = np.column_stack([graph.x[v], graph.y[v]])
        segments = shapely.linestrings(np.stack([ends_u, ends_v], axis=1))
        tree = shapely.STRtree(segments)
        rows = np.nonzero(valid)[0]
        points = shapely.points(x[rows], y[rows])
        (which, edge), d = tree.query_nearest(
            points, max_distance=max_distance_m, return_distance=True, all_matches=False
        )
        at = rows[which]
        frac = np.nan_to_num(
            shapely.line_locate_point(segments[edge], points[which], normalized=True), nan=0.0
        )
        out_u[at], out_v[at] = u[edge], v[edge]
        offset[at], length[at], dist[at] = np.clip(frac, 0.0, 1.0) * metres[edge], metres[edge], d
    ok = out_u >= 0
    return EdgePositions(out_u, out_v, offset, length, dist, ok)
