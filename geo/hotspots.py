"""Getis-Ord Gi* hotspots on H3 cells with k-ring neighbours.

Method: Getis & Ord (1992), Ord & Getis (1995): the Gi* statistic with binary weights
(the focal cell included), its analytical z-score as ArcGIS "Hot Spot Analysis" and
``esda.G_Local(star=True, transform="B")`` report it, two-sided normal p-values, and the
Benjamini-Hochberg (1995) false-discovery-rate correction. The neighbour structure is one
``scipy.sparse`` matrix built from a vectorised ``grid_disk`` (h3ronpy).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy import sparse, stats

from geo import h3index, store
from geo.aggregate import Filter, SnapshotCache, cells_to_hex, count_by_cell
from geo.errors import ValidationError
from geo.settings import Settings
from geo.store import COVER_RESOLUTIONS, cover_table

BIN_NAMES: dict[int, str] = {
    3: "hot_99", 2: "hot_95", 1: "hot_90", 0: "not_significant", -1: "cold_90", -2: "cold_95", -3: "cold_99",
}
BIN_ZH: dict[int, str] = {
    3: "热点(99%)", 2: "热点(95%)", 1: "热点(90%)", 0: "不显著", -1: "冷点(90%)", -2: "冷点(95%)", -3: "冷点(99%)",
}


def k_ring_weights(cells: np.ndarray, k: int, star: bool = True) -> sparse.csr_array:
    """Binary k-ring contiguity among ``cells``: w_ij = 1 when j is within k rings of i.

    Parameters
    ----------
    cells
        Distinct H3 cells (uint64) of one resolution; the matrix rows follow this order.
    k
        Ring distance (``h3.grid_disk``); k = 1 gives the 6 touching cells.
    star
        Keep the focal cell (w_ii = 1, as Gi* needs); False drops the diagonal (Gi).

    Neighbours that are not in ``cells`` are dropped (the study area ends there).
    """
    cells = np.asarray(cells, dtype=np.uint64)
    n = len(cells)
    if k < 0:
        raise ValidationError(f"k-ring distance must be ≥ 0, got {k}")
    if len(np.unique(cells)) != n:
        raise ValidationError("k_ring_weights: `cells` must be distinct")
    if n == 0:
        return sparse.csr_array((0, 0), dtype=np.float64)
    disks = pa.array(h3ronpy.grid_disk(cells, k, flatten=False))
    offsets = disks.offsets.to_numpy()
    found = disks.flatten().to_numpy().astype(np.uint64)
    rows = np.repeat(np.arange(n), np.diff(offsets))
    order = np.argsort(cells)
    sorted_cells = cells[order]
    pos = np.searchsorted(sorted_cells, found)
    pos[pos == n] = 0
    inside = sorted_cells[pos] == found
    rows, cols = rows[inside], order[pos[inside]]
    if not star:
        keep = rows != cols
        rows, cols = rows[keep], cols[keep]
    data = np.ones(len(rows), dtype=np.float64)
    return sparse.csr_array((data, (rows, cols)), shape=(n, n))


def bh_adjust(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: q_(i) = min_{j ≥ i} m·p_(j)/j, capped at 1."""
    p = np.asarray(p, dtype=np.float64)
    m = len(p)
    if m == 0:
        return p.copy()
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def confidence_bins(z: np.ndarray, p: np.ndarray, levels: list[float], strict: bool = True) -> np.ndarray:
    """ArcGIS Gi_Bin: ±1/±2/±3 for each confidence level reached (sign of z), 0 otherwise."""
    z = np.asarray(z, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    reached = np.zeros(len(p), dtype=np.int8)
    for level in sorted(levels):
        alpha = 1.0 - level
        reached += (p < alpha) if strict else (p <= alpha)
    return (reached * np.sign(z)).astype(np.int8)


def weight_sums(weights: sparse.sparray) -> tuple[np.ndarray, np.ndarray]:
    """Row sums Σ_j w_ij and Σ_j w_ij² of a weights matrix (what Gi* needs besides w·x)."""
    wi = np.asarray(weights.sum(axis=1)).ravel()
    s1 = np.asarray(weights.multiply(weights).sum(axis=1)).ravel()
    return wi, s1


def gi_star_z(
    values: np.ndarray, weights: sparse.sparray, sums: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Analytical Gi* z-scores (Ord & Getis 1995; ArcGIS GiZScore) for any weights with w_ii set.

    z_i = (Σ_j w_ij x_j − x̄ Σ_j w_ij) / (S √((n Σ_j w_ij² − (Σ_j w_ij)²)/(n − 1))), with x̄ and
    S the mean and (population) standard deviation over all n cells. ``values`` may be 2-D
    (cells × periods): each column is its own study (one Gi* map per month). Undefined z
    (all values equal, or a neighbourhood that is the whole study area) is reported as 0.
    ``sums`` = ``weight_sums(weights)`` when already known.
    """
    x = np.asarray(values, dtype=np.float64)
    one_d = x.ndim == 1
    x2 = x[:, None] if one_d else x
    n = x2.shape[0]
    if n < 2:
        return np.zeros(x.shape)
    wi, s1 = sums if sums is not None else weight_sums(weights)
    wi, s1 = wi[:, None], s1[:, None]
    wx = weights @ x2
    xbar = x2.mean(axis=0)[None, :]
    s = np.sqrt(np.maximum((x2 * x2).mean(axis=0)[None, :] - xbar * xbar, 0.0))
    den = s * np.sqrt(np.maximum(n * s1 - wi * wi, 0.0) / (n - 1))
    num = wx - xbar * wi
    z = np.zeros(x2.shape)
    ok = den > 1e-12 * np.maximum(1.0, np.abs(xbar))
    np.divide(num, den, out=z, where=ok)
    return z[:, 0] if one_d else z


def gi_star(
    cells: np.ndarray,
    values: np.ndarray,
    k: int | None = None,
    settings: Settings | None = None,
    weights: sparse.sparray | None = None,
) -> pd.DataFrame:
    """Gi* hotspots of ``values`` on ``cells``.

    Parameters
    ----------
    cells, values
        One value (count) per distinct H3 cell; include zero cells of the study area.
    k
        k-ring neighbours (default ``settings.hotspot_k_ring``); ignored when ``weights`` given.
    weights
        Prebuilt weights with the diagonal set (from ``k_ring_weights(cells, k)``).

    Returns
    -------
    DataFrame ``cell, h3, count, n_neighbours, z, p, q, bin, bin_fdr, significant`` in the order of ``cells``:
    two-sided p, BH q-values, ArcGIS bins without and with FDR correction, ``significant`` = q ≤ hotspot_fdr_alpha.
    """
    settings = settings or Settings()
    cells = np.asarray(cells, dtype=np.uint64)
    values = np.asarray(values, dtype=np.float64)
    if len(cells) != len(values):
        raise ValidationError(f"gi_star: {len(cells)} cells but {len(values)} values")
    if weights is None:
        weights = k_ring_weights(cells, settings.hotspot_k_ring if k is None else k, star=True)
    first = {"cell": cells, "h3": cells_to_hex(cells), "count": values}
    return _gi_frame(first, np.diff(sparse.csr_array(weights).indptr), gi_star_z(values, weights), settings)


def _gi_frame(first: dict[str, np.ndarray], n_neighbours: np.ndarray, z: np.ndarray, settings: Settings) -> pd.DataFrame:
    """The Gi* table: the ``first`` columns, then n_neighbours, z, p, BH q, ArcGIS bins and significance."""
    p = 2.0 * stats.norm.sf(np.abs(z))
    q = bh_adjust(p)
    levels = list(settings.hotspot_confidence_levels)
    return pd.DataFrame({
        **first,
        "n_neighbours": n_neighbours,
        "z": z,
        "p": p,
        "q": q,
        "bin": confidence_bins(z, p, levels, strict=True),
        "bin_fdr": confidence_bins(z, q, levels, strict=False),
        "significant": q <= settings.hotspot_fdr_alpha,
    })


def _gi_table(prep: _Prepared, values: np.ndarray, settings: Settings) -> pd.DataFrame:
    """The hotspot table of ``values`` on prepared cells (with lon, lat and integer counts)."""
    z = gi_star_z(values, prep.weights, (prep.wi, prep.s1))
    first = {"cell": prep.cells, "h3": prep.h3, "lon": prep.lon, "lat": prep.lat, "count": values.astype(np.int64)}
    return _gi_frame(first, prep.n_neighbours, z, settings)


def _cover_cells(con: duckdb.DuckDBPyConnection, layer: str, ids_sql: str, params: list, res: int) -> np.ndarray:
    """Cells at ``res`` covering the polygons of ``layer`` selected by ``ids_sql`` (parents of finer covers)."""
    table = cover_table(layer)
    available = [r for r in COVER_RESOLUTIONS if r >= res]
    if not available:
        return np.array([], dtype=np.uint64)
    src = min(available)
    sql = f"SELECT DISTINCT cell FROM {table} WHERE res = ? AND id IN ({ids_sql})"
    cells = con.execute(sql, [src, *params]).fetchnumpy()["cell"]
    cells = np.asarray(cells, dtype=np.uint64)
    if src != res:
        cells = np.unique(h3index.parent_cells(cells, res))
    return cells


def _polygon_area(con: duckdb.DuckDBPyConnection, res: int, flt: Filter) -> tuple[np.ndarray, str]:
    """The polygon part of ``study_cells``: cells and source, or an empty array and ``""``."""
    if flt.has_area:
        clauses, params = [], []
        for values, col in ((flt.towns, "town"), (flt.communities, "community"), (flt.grids, "id")):
            if values:
                clauses.append(f'"{col}" IN ({", ".join("?" for _ in values)})')
                params.extend(values)
        cells = _cover_cells(con, "grid", f"SELECT id FROM grid WHERE {' AND '.join(clauses)}", params, res)
        if len(cells):
            return cells, "grid"
    else:
        has_district = con.execute("SELECT count(*) FROM admin_area WHERE level = ?", ["区县"]).fetchone()[0]
        ids_sql = "SELECT id FROM admin_area" + (" WHERE level = ?" if has_district else "")
        cells = _cover_cells(con, "admin_area", ids_sql, ["区县"] if has_district else [], res)
        if len(cells):
            return cells, "admin_area"
        cells = _cover_cells(con, "grid", "SELECT id FROM grid", [], res)
        if len(cells):
            return cells, "grid"
    return np.array([], dtype=np.uint64), ""


def _hull(counted: np.ndarray, k: int) -> np.ndarray:
    """The cells with counts and their k-ring."""
    if not len(counted):
        return np.asarray(counted, dtype=np.uint64)
    ring = pa.array(h3ronpy.grid_disk(counted, k, flatten=True)).to_numpy().astype(np.uint64)
    return np.unique(ring)


def study_cells(
    con: duckdb.DuckDBPyConnection,
    res: int,
    flt: Filter | None = None,
    layer: str = "hazard",
    k: int = 1,
) -> tuple[np.ndarray, str]:
    """The cells at ``res`` a hotspot analysis runs over, and where they came from.

    In order: the grid polygons of the filter's area (``grid``); the district's
    admin-area polygons (level 区县, else all admin areas: ``admin_area``); all grid
    polygons (``grid``); else the cells with counts and their k-ring (``k_ring_hull``).
    Polygon covers are the stored H3 covers (cell centre inside); coarser resolutions
    are the parents of the res-9 cover.
    """
    flt = flt or Filter()
    cells, source = _polygon_area(con, res, flt)
    if source:
        return cells, source
    counted = count_by_cell(con, layer, res, flt)["cell"].to_numpy(dtype=np.uint64)
    return _hull(counted, k), "k_ring_hull"


@dataclass(frozen=True)
class _Prepared:
    """What Gi* needs of a set of cells besides the counts: weights, their row sums, labels."""

    cells: np.ndarray  # sorted, distinct
    weights: sparse.csr_array
    wi: np.ndarray  # Σ_j w_ij
    s1: np.ndarray  # Σ_j w_ij²
    n_neighbours: np.ndarray
    h3: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


def _prepare(cells: np.ndarray, k: int) -> _Prepared:
    weights = k_ring_weights(cells, k, star=True)
    wi, s1 = weight_sums(weights)
    lon, lat = h3index.cell_centres(cells) if len(cells) else (np.array([]), np.array([]))
    prep = _Prepared(cells=cells, weights=weights, wi=wi, s1=s1, n_neighbours=np.diff(weights.indptr),
                     h3=cells_to_hex(cells), lon=np.asarray(lon, dtype=np.float64), lat=np.asarray(lat, dtype=np.float64))
    for arr in (prep.cells, prep.wi, prep.s1, prep.n_neighbours, prep.h3, prep.lon, prep.lat):
        arr.setflags(write=False)  # shared between calls: read-only
    return prep


# Study areas with their weights, per (snapshot, layer, res, k, area criteria): an ingest
# swaps in a new snapshot, which gets its own entries. Counts are never kept.
_AREAS: SnapshotCache[tuple[_Prepared, str] | None] = SnapshotCache(maxsize=16, name="hotspot study areas")


def _cell_counts(con: duckdb.DuckDBPyConnection, layer: str, res: int, flt: Filter) -> tuple[np.ndarray, np.ndarray]:
    """Distinct cells at ``res`` (uint64, in no order) with rows passing ``flt``, and their counts."""
    if res not in store.POINT_RESOLUTIONS:
        raise ValidationError(f"H3 resolution {res} is not stored; use one of {store.POINT_RESOLUTIONS}")
    where, params = flt.sql(layer)
    got = store.cell_aggregates(con, layer, res, "count(*) AS n", where, params)
    return np.asarray(got["cell"], dtype=np.uint64), np.asarray(got["n"], dtype=np.float64)


@dataclass(frozen=True)
class HotspotResult:
    """A Gi* hotspot map: the per-cell table and how it was made."""

    table: pd.DataFrame
    res: int
    k: int
    study_area: str
    n_cells: int
    total: int

    def summary(self) -> dict[str, int]:
        """Cells per FDR-corrected bin (``hot_99`` … ``cold_99``)."""
        return summary(self.table)


def summary(table: pd.DataFrame) -> dict[str, int]:
    """Number of cells per ``bin_fdr`` value, named as in ``BIN_NAMES``."""
    counts = table["bin_fdr"].value_counts()
    return {name: int(counts.get(b, 0)) for b, name in BIN_NAMES.items()}


def hotspots(
    con: duckdb.DuckDBPyConnection,
    flt: Filter | None = None,
    res: int | None = None,
    k: int | None = None,
    settings: Settings | None = None,
    layer: str = "hazard",
) -> HotspotResult:
    """Gi* hotspots of ``layer`` rows passing ``flt`` on H3 cells at ``res`` over the study area.

    Counts come from the stored ``h3_r<res>`` column, counted anew on every call; zero-count
    cells of the study area (``study_cells``) take part; cells with counts outside it are
    added. A polygon study area, its k-ring weights and cell labels are built once per
    snapshot, resolution, k and area criteria and reused.
    """
    settings = settings or Settings()
    flt = flt or Filter()
    res = settings.hotspot_resolution if res is None else res
    k = settings.hotspot_k_ring if k is None else k
    counted, counts = _cell_counts(con, layer, res, flt)

    def build() -> tuple[_Prepared, str] | None:
        cells, source = _polygon_area(con, res, flt)
        return (_prepare(cells, k), source) if source else None

    area_key = ("area", res, k, flt.towns, flt.communities, flt.grids)
    cached = _AREAS.get(con, area_key, build)
    if cached is None:  # no polygons: the hull of this call's counted cells
        prep, source = _prepare(_hull(np.sort(counted), k), k), "k_ring_hull"
    else:
        prep, source = cached
        pos = np.searchsorted(prep.cells, counted)
        inside = (pos < len(prep.cells)) & (prep.cells[np.minimum(pos, len(prep.cells) - 1)] == counted) \
            if len(prep.cells) else np.zeros(len(counted), dtype=bool)
        if not inside.all():  # counts outside the study area join it, with their own weights
            outside = np.sort(counted[~inside])
            area = prep.cells
            extended = _AREAS.get(
                con,
                (*area_key, "with", outside.tobytes()),
                lambda: (_prepare(np.union1d(area, outside), k), source),
            )
            assert extended is not None
            prep = extended[0]
    cells = prep.cells
    values = np.zeros(len(cells))
    values[np.searchsorted(cells, counted)] = counts
    table = _gi_table(prep, values, settings)
    return HotspotResult(table=table, res=res, k=k, study_area=source, n_cells=len(cells), total=int(values.sum()))
