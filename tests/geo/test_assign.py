"""Exact point-in-grid assignment, with and without the interior-cell shortcut."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from geo import assign


def voronoi_grids(n: int, seed: int) -> np.ndarray:
    """Irregular grid polygons tiling a box, like real 网格 (Voronoi cells clipped to the box)."""
    rng = np.random.default_rng(seed)
    box = shapely.box(121.10, 30.95, 121.30, 31.10)
    seeds = shapely.multipoints(
        np.column_stack([rng.uniform(121.10, 121.30, n), rng.uniform(30.95, 31.10, n)])
    )
    cells = shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=box))
    return shapely.intersection(cells, box)


def test_matches_exact_sjoin_with_and_without_cells() -> None:
    polygons = voronoi_grids(120, seed=3)
    rng = np.random.default_rng(5)
    n = 60_000
    lon, lat = rng.uniform(121.09, 121.31, n), rng.uniform(30.94, 31.11, n)
    # Points exactly on shared borders and on vertices: the lowest polygon index wins.
    edge = shapely.get_coordinates(shapely.boundary(polygons[:20]))
    on_border = shapely.line_interpolate_point(
        shapely.boundary(polygons[:20]), 0.37, normalized=True
    )
    edge = np.vstack([edge, shapely.get_coordinates(on_border)])
    lon[: len(edge)], lat[: len(edge)] = edge[:, 0], edge[:, 1]
    fast = assign.points_in_polygons(lon, lat, polygons)
    plain = assign._strtree_assign(lon, lat, polygons)
    np.testing.assert_array_equal(fast, plain)
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    grid = gpd.GeoDataFrame({"k": np.arange(len(polygons))}, geometry=polygons, crs=4326)
    joined = gpd.sjoin(pts, grid, predicate="intersects", how="left").groupby(level=0)["k"].min()
    expected = joined.fillna(-1).astype(int).to_numpy()
    np.testing.assert_array_equal(fast, expected)
    assert (fast == -1).sum() > 0  # points outside every grid stay unassigned


def test_interior_cells_lie_inside_their_polygon() -> None:
    polygons = voronoi_grids(30, seed=1)
    cells, rows = assign.interior_cells(polygons)
    assert len(cells) > 100 and np.all(np.diff(cells.astype(np.float64)) >= 0)
    from geo import h3index

    hexes = h3index.cell_polygons(cells)
    assert shapely.within(hexes, polygons[rows]).all()
