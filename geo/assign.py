"""Exact assignment of points to grid polygons (point in polygon, not an H3 approximation).

Speed-up that stays exact: an H3 cell whose hexagon lies strictly inside one polygon (with
a small margin for the difference between H3's cell edges and straight lon/lat segments)
can only hold points of that polygon, so points in such interior cells are assigned by a
sorted-array lookup of their cell. Only points in border cells get the exact STRtree test.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from h3ronpy import ContainmentMode
from h3ronpy.vector import wkb_to_cells

from geo import h3index

ASSIGN_RES = (
    10  # H3 resolution of the interior-cell shortcut (a stored resolution: no recomputation)
)
EDGE_MARGIN_DEG = (
    1e-5  # ~1 m: H3 edges are not straight in lon/lat; keep a margin from polygon borders
)
MIN_POINTS_FOR_CELLS = (
    20_000  # below this, the plain STRtree is faster than building interior cells
)


def _strtree_assign(lon: np.ndarray, lat: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Exact assignment with shapely's STRtree (boundary counts as inside; lowest index wins)."""
    points = shapely.points(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    tree = shapely.STRtree(polygons)
    point_idx, poly_idx = tree.query(points, predicate="intersects")
    out = np.full(len(points), -1, dtype=np.int64)
    if len(point_idx):
        order = np.lexsort((poly_idx, point_idx))
        point_idx, poly_idx = point_idx[order], poly_idx[order]
        first = np.ones(len(point_idx), dtype=bool)
        first[1:] = point_idx[1:] != point_idx[:-1]
        out[point_idx[first]] = poly_idx[first]
    return out


def interior_cells(
    polygons: np.ndarray, res: int = ASSIGN_RES, dedupe: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """H3 cells lying entirely inside a polygon: (sorted cells, index of their polygon).

    Each polygon is shrunk by ``EDGE_MARGIN_DEG`` and filled with the cells whose whole
    boundary it contains (h3o ``ContainsBoundary``, vectorised over all polygons). Where
    polygons overlap and a cell is inside several, the lowest index is kept (the same rule
    as the exact test); ``dedupe=False`` keeps every (cell, polygon) pair.
    """
    polygons = np.asarray(polygons, dtype=object)
    ok = ~shapely.is_missing(polygons) & ~shapely.is_empty(polygons)
    shrunk = shapely.buffer(np.where(ok, polygons, None), -EDGE_MARGIN_DEG)
    shrunk = np.where(shapely.is_empty(shrunk), None, shrunk)
    keep = np.flatnonzero(~shapely.is_missing(shrunk))
    if not len(keep):
        return np.array([], dtype=np.uint64), np.array([], dtype=np.int64)
    wkb = shapely.to_wkb(shrunk[keep])

    def fill(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lists = pa.array(
            wkb_to_cells(
                pa.array(wkb[part], type=pa.binary()),
                res,
                containment_mode=ContainmentMode.ContainsBoundary,
            )
        )
        lengths = np.nan_to_num(pc.list_value_length(lists).to_numpy(zero_copy_only=False)).astype(
            np.int64
        )
        return pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.uint64), np.repeat(
            keep[part], lengths
        )

    # h3ronpy releases the GIL: fill the polygons in one chunk per core.
    chunks = [c for c in np.array_split(np.arange(len(keep)), h3index._threads()) if len(c)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        parts = list(pool.map(fill, chunks))
    cells = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    return lowest_index_per_cell(cells, rows) if dedupe else (cells, rows)


def lowest_index_per_cell(cells: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique cells, each with the lowest polygon index it belongs to."""
    cells = np.asarray(cells, dtype=np.uint64)
    rows = np.asarray(rows, dtype=np.int64)
    order = np.lexsort((rows, cells))
    cells, rows = cells[order], rows[order]
    first = np.ones(len(cells), dtype=bool)
    first[1:] = cells[1:] != cells[:-1]
    return cells[first], rows[first]


def points_in_polygons(
    lon: np.ndarray,
    lat: np.ndarray,
    polygons: np.ndarray,
    cells: np.ndarray | None = None,
    interior: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Index into ``polygons`` of the polygon containing each point, -1 where none does.

    A point on a shared border goes to the polygon with the lowest index. Exact: points in
    H3 cells strictly inside one polygon are looked up, all others are tested with the
    ``intersects`` predicate. ``cells`` are the points' H3 cells at ``ASSIGN_RES`` if known;
    ``interior`` is ``interior_cells(polygons)`` if known (the store keeps it with polygon layers).
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    polygons = np.asarray(polygons, dtype=object)
    n = len(lon)
    if (n < MIN_POINTS_FOR_CELLS and interior is None) or not len(polygons):
        return (
            _strtree_assign(lon, lat, polygons) if len(polygons) else np.full(n, -1, dtype=np.int64)
        )
    if cells is None:
        cells = h3index.cells_at(lon, lat, ASSIGN_RES)
    cells = np.asarray(cells, dtype=np.uint64)
    icells, ipoly = interior if interior is not None else interior_cells(polygons, ASSIGN_RES)
    out = np.full(n, -1, dtype=np.int64)
    if len(icells):
        pos = np.minimum(np.searchsorted(icells, cells), len(icells) - 1)
        hit = icells[pos] == cells
        out[hit] = ipoly[pos[hit]]
    else:
        hit = np.zeros(n, dtype=bool)
    rest = np.flatnonzero(~hit)
    if len(rest):
        out[rest] = _strtree_assign(lon[rest], lat[rest], polygons)
    return out
