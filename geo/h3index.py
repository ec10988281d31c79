"""Points and polygons to H3 cells, vectorised.

The finest cell is computed once (h3ronpy, the H3 C core, split across threads since it
releases the GIL); coarser cells are derived by bit arithmetic on the 64-bit index:
set the resolution field and fill the digits below it with 7 (H3 index layout, h3geo.org
"H3 Index Representations").
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from h3ronpy.vector import cells_to_coordinates, cells_to_wkb_polygons, coordinates_to_cells

_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF) << _RES_SHIFT
_MIN_CHUNK = 100_000
_CHUNKS_PER_WORKER = 4


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def cells_at(lon: np.ndarray, lat: np.ndarray, res: int) -> np.ndarray:
    """H3 cells (uint64) of points at one resolution, using every core for large arrays."""
    lon = np.ascontiguousarray(lon, dtype=np.float64)
    lat = np.ascontiguousarray(lat, dtype=np.float64)
    n = len(lon)
    workers = _threads()
    if n < 2 * _MIN_CHUNK or workers == 1:
        return np.asarray(coordinates_to_cells(lat, lon, res), dtype=np.uint64)
    # A few chunks per worker: when another process takes a core, the other thread keeps
    # taking chunks instead of waiting for one big half.
    n_chunks = min(workers * _CHUNKS_PER_WORKER, max(workers, n // _MIN_CHUNK))
    bounds = np.linspace(0, n, n_chunks + 1, dtype=np.int64)
    out = np.empty(n, dtype=np.uint64)

    def work(i: int) -> None:
        a, b = bounds[i], bounds[i + 1]
        out[a:b] = np.asarray(coordinates_to_cells(lat[a:b], lon[a:b], res), dtype=np.uint64)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(work, range(n_chunks)))
    return out


def parent_cells(cells: np.ndarray, res: int) -> np.ndarray:
    """Parents at ``res`` of cells of a finer resolution, by bit arithmetic (0 stays 0)."""
    cells = np.asarray(cells, dtype=np.uint64)
    digits_below = 15 - res
    fill = np.uint64((1 << (3 * digits_below)) - 1) if digits_below else np.uint64(0)
    out = (cells & ~_RES_MASK) | (np.uint64(res) << _RES_SHIFT) | fill
    out[cells == 0] = 0
    return out


def index_points(
    lon: np.ndarray,
    lat: np.ndarray,
    resolutions: Sequence[int] = (7, 8, 9, 10),
    exact: bool = False,
) -> dict[int, np.ndarray]:
    """H3 cells of points at every resolution in ``resolutions``.

    By default the finest cell is computed once and the coarser ones are its parents
    (bit arithmetic): the cells nest exactly, so counts roll up (a res-8 count is the sum
    of its res-9 children). H3 parents only approximately contain their children's area:
    for about 6-7 % of points the parent differs from ``h3.latlng_to_cell`` at that
    resolution (points near the coarse cell's edge). ``exact=True`` computes every
    resolution directly instead (one H3 call per resolution, about 3x slower for four).
    """
    finest = max(resolutions)
    if exact:
        return {r: cells_at(lon, lat, r) for r in resolutions}
    fine = cells_at(lon, lat, finest)
    return {r: (fine if r == finest else parent_cells(fine, r)) for r in resolutions}


def cell_column(res: int) -> str:
    """Name of the stored column of H3 cells at ``res``."""
    return f"h3_r{res}"


def polygon_cover(geometries: Iterable[shapely.Geometry], res: int) -> pd.DataFrame:
    """Cells whose centre lies inside each polygon: frame of (row, cell) pairs.

    ``row`` is the position of the polygon in ``geometries``. One H3 call per polygon:
    polygons are few (grids, areas), so the loop is per polygon, not per cell.
    """
    rows: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    for i, geom in enumerate(geometries):
        if geom is None or geom.is_empty:
            continue
        shape = h3.geo_to_h3shape(shapely.geometry.mapping(geom))
        found = [h3.str_to_int(c) for c in h3.h3shape_to_cells(shape, res)]
        cells.append(np.asarray(found, dtype=np.uint64))
        rows.append(np.full(len(found), i, dtype=np.int64))
    if not cells:
        return pd.DataFrame(
            {"row": np.array([], dtype=np.int64), "cell": np.array([], dtype=np.uint64)}
        )
    return pd.DataFrame({"row": np.concatenate(rows), "cell": np.concatenate(cells)})


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) of cell centres."""
    batch = pa.record_batch(cells_to_coordinates(np.asarray(cells, dtype=np.uint64)))
    return batch.column("lng").to_numpy(), batch.column("lat").to_numpy()


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Cell hexagons as shapely polygons (lon/lat), vectorised."""
    wkb = pa.array(cells_to_wkb_polygons(np.asarray(cells, dtype=np.uint64)))
    return shapely.from_wkb(wkb.to_numpy(zero_copy_only=False))
