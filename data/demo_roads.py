"""A generated road network inside the district: a jittered street lattice, dense where built up.

The lattice has the block size of the built-up core (~200 m). A lattice line is a road
where its index is a multiple of the local spacing level (1 in the core, 2 in the rest of
the built-up area, 4 on the urban fringe, 8 in the countryside); because the levels are
powers of two, every coarse road continues through the finer zones, which keeps the
network connected. In built-up parts lines whose index is a multiple of 16/8/4 are primary,
secondary and tertiary roads (64/32/16 in the countryside). Side streets in old centres are one-way, alternating direction. Edges
leaving the boundary are dropped and only the largest strongly connected part is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from data.demo_names import unique_words
from data.demo_space import Space
from geo import h3index
from geo.settings import Settings


@dataclass
class Roads:
    """Nodes (metres and lon/lat) and undirected edges of the demo network."""

    x: np.ndarray
    y: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    u: np.ndarray  # undirected edges: node positions
    v: np.ndarray
    highway: np.ndarray
    name: np.ndarray
    oneway: np.ndarray  # True: only u → v may be travelled
    length_m: np.ndarray

    def nodes_frame(self) -> pd.DataFrame:
        """``road_nodes`` rows: node_id, lon, lat, h3_r9, h3_r10."""
        cells = h3index.index_points(self.lon, self.lat, (9, 10))
        return pd.DataFrame({"node_id": np.arange(len(self.x), dtype=np.int64), "lon": self.lon, "lat": self.lat,
                             "h3_r9": cells[9], "h3_r10": cells[10]})

    def edges_frame(self, settings: Settings) -> pd.DataFrame:
        """DIRECTED ``road_edges`` rows: one per direction of travel, geometry as WKT lon/lat."""
        two = ~self.oneway
        u = np.concatenate([self.u, self.v[two]])
        v = np.concatenate([self.v, self.u[two]])
        hw = np.concatenate([self.highway, self.highway[two]])
        speeds = settings.road_speeds_kmh
        speed = np.array([speeds.get(h, speeds["default"]) for h in np.unique(hw)])[np.unique(hw, return_inverse=True)[1]]
        coords = np.stack([np.column_stack([self.lon[u], self.lat[u]]), np.column_stack([self.lon[v], self.lat[v]])], axis=1)
        lines = shapely.linestrings(coords)
        return pd.DataFrame({
            "u": u.astype(np.int64), "v": v.astype(np.int64),
            "length_m": np.concatenate([self.length_m, self.length_m[two]]),
            "speed_kmh": speed.astype(np.float64),
            "highway": hw.astype(object),
            "name": np.concatenate([self.name, self.name[two]]).astype(object),
            "oneway": np.concatenate([self.oneway, self.oneway[two]]),
            "geom": shapely.to_wkt(lines, rounding_precision=7),
        })


def _valuation2(idx: np.ndarray, cap: int = 6) -> np.ndarray:
    """Largest power of two dividing each index (as an exponent), capped; 0 counts as ``cap``."""
    idx = np.abs(idx.astype(np.int64))
    out = np.zeros(idx.shape, dtype=np.int64)
    for e in range(1, cap + 1):
        out[(idx % (1 << e)) == 0] = e
    return out


def _level(space: Space, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spacing level (1, 2, 4, 8 blocks) of the street lattice at each location."""
    u = space.urban(x, y)
    thr = space.profile.built_up_threshold
    lvl = np.full(u.shape, 8, dtype=np.int64)
    lvl[u >= thr / 3] = 4
    lvl[u >= thr] = 2
    lvl[u >= min(1.0, thr * 1.4)] = 1
    return lvl


def _highway(line_idx: np.ndarray, built_up: np.ndarray) -> np.ndarray:
    val = _valuation2(line_idx)
    # Built-up: primary every 16 blocks, secondary every 8, tertiary every 4.
    # Countryside: primary every 64 blocks, secondary every 32, tertiary every 16.
    shift = np.where(built_up, 0, 2)
    hw = np.where(built_up, "residential", "unclassified").astype(object)
    hw[val - shift >= 2] = "tertiary"
    hw[val - shift >= 3] = "secondary"
    hw[val - shift >= 4] = "primary"
    return hw


def make_roads(space: Space, rng: np.random.Generator) -> Roads:
    """The demo road network (vectorised over lattice nodes and edges)."""
    p = space.profile
    b = p.block_m
    theta = np.deg2rad(rng.uniform(-p.road_rotation_deg, p.road_rotation_deg))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    bcoords = shapely.get_coordinates(space.boundary) @ rot  # into the lattice frame (inverse rotation)
    (umin, vmin), (umax, vmax) = bcoords.min(axis=0), bcoords.max(axis=0)
    i0, j0 = int(np.floor(vmin / b)) - 1, int(np.floor(umin / b)) - 1
    rows = np.arange(i0, int(np.ceil(vmax / b)) + 2)
    cols = np.arange(j0, int(np.ceil(umax / b)) + 2)
    ny, nx = len(rows), len(cols)
    uu, vv = np.meshgrid(cols * b, rows * b)
    jit = rng.normal(0.0, p.road_jitter * b / 2, (2, ny, nx))
    lat_xy = np.stack([uu + jit[0], vv + jit[1]], axis=-1) @ rot.T
    X, Y = lat_xy[..., 0], lat_xy[..., 1]
    inside = space.inside(X.ravel(), Y.ravel()).reshape(ny, nx)
    node = np.arange(ny * nx).reshape(ny, nx)

    # Horizontal edges (along rows) and vertical edges (along columns).
    hx, hy = (X[:, :-1] + X[:, 1:]) / 2, (Y[:, :-1] + Y[:, 1:]) / 2
    vx, vy = (X[:-1, :] + X[1:, :]) / 2, (Y[:-1, :] + Y[1:, :]) / 2
    h_line = np.broadcast_to(rows[:, None], hx.shape)
    v_line = np.broadcast_to(cols[None, :], vx.shape)
    keep_h = (h_line % _level(space, hx, hy) == 0) & inside[:, :-1] & inside[:, 1:]
    keep_v = (v_line % _level(space, vx, vy) == 0) & inside[:-1, :] & inside[1:, :]
    u = np.concatenate([node[:, :-1][keep_h], node[:-1, :][keep_v]])
    v = np.concatenate([node[:, 1:][keep_h], node[1:, :][keep_v]])
    line = np.concatenate([h_line[keep_h], v_line[keep_v]])
    is_row = np.concatenate([np.ones(keep_h.sum(), bool), np.zeros(keep_v.sum(), bool)])
    mx, my = np.concatenate([hx[keep_h], vx[keep_v]]), np.concatenate([hy[keep_h], vy[keep_v]])
    built = space.built_up(mx, my)
    hw = _highway(line, built)
    # Some rural minor roads do not exist (the countryside is not a lattice).
    drop = (~built) & (_valuation2(line) < 4) & (rng.random(len(u)) < p.rural_drop_share)
    # Edges must stay inside the district (a straight edge can cut a bay of the boundary).
    segs = shapely.linestrings(np.stack([np.column_stack([X.ravel()[u], Y.ravel()[u]]),
                                         np.column_stack([X.ravel()[v], Y.ravel()[v]])], axis=1))
    ok = ~drop & shapely.contains(space.boundary, segs)  # prepared boundary: fast
    u, v, line, is_row, hw, mx, my = u[ok], v[ok], line[ok], is_row[ok], hw[ok], mx[ok], my[ok]

    # One-way side streets in old centres, alternating direction by line.
    oneway = (hw == "residential") & (space.old(mx, my) >= p.oneway_old_centre)
    flip = oneway & (line % 2 == 1)
    u, v = np.where(flip, v, u), np.where(flip, u, v)

    # Keep the largest strongly connected part (one-way streets count one way).
    n_all = ny * nx
    du = np.concatenate([u, v[~oneway]])
    dv = np.concatenate([v, u[~oneway]])
    graph = coo_matrix((np.ones(len(du)), (du, dv)), shape=(n_all, n_all)).tocsr()
    _, labels = connected_components(graph, directed=True, connection="strong")
    used = np.zeros(n_all, bool)
    used[u] = used[v] = True
    counts = np.bincount(labels[used], minlength=labels.max() + 1)
    main = counts.argmax()
    keep = (labels[u] == main) & (labels[v] == main)
    u, v, line, is_row, hw, oneway, mx, my = (a[keep] for a in (u, v, line, is_row, hw, oneway, mx, my))

    # Renumber nodes 0..n-1.
    ids, inv = np.unique(np.concatenate([u, v]), return_inverse=True)
    u, v = inv[: len(u)], inv[len(u):]
    x, y = X.ravel()[ids], Y.ravel()[ids]
    lon, lat = space.to_lonlat(x, y)
    length = np.hypot(x[u] - x[v], y[u] - y[v])

    # Names: one word per lattice line; the suffix follows the road class.
    lines_all = np.concatenate([rows, cols])
    words = np.asarray(unique_words(rng, len(lines_all)), dtype=object)
    key = np.where(is_row, line - rows[0], len(rows) + line - cols[0])
    old = space.old(mx, my) >= p.oneway_old_centre
    suffix = np.where(np.isin(hw, ["primary", "secondary"]) & ~is_row, "公路", "路").astype(object)
    suffix[(hw == "residential") & old] = "街"
    suffix[hw == "unclassified"] = "村道"
    name = (words[key] + suffix).astype(object)
    return Roads(x=x, y=y, lon=lon, lat=lat, u=u, v=v, highway=hw.astype(object), name=name,
                 oneway=oneway, length_m=length)
