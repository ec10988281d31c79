"""H3 indexing: vectorised cells equal the h3 library's, parents by bit arithmetic, covers."""

from __future__ import annotations

import h3
import numpy as np
import shapely

from geo import h3index


def test_cells_and_parents_equal_h3() -> None:
    rng = np.random.default_rng(7)
    n = 250_000  # above the threshold where the array is split across threads
    lon, lat = rng.uniform(121.0, 121.5, n), rng.uniform(30.8, 31.2, n)
    cells = h3index.index_points(lon, lat, (7, 8, 9, 10))
    pick = rng.choice(n, 400, replace=False)
    for i in pick:
        own = h3.latlng_to_cell(lat[i], lon[i], 10)
        assert int(cells[10][i]) == h3.str_to_int(own)
        for res in (7, 8, 9):
            assert int(cells[res][i]) == h3.str_to_int(h3.cell_to_parent(own, res))
    exact = h3index.index_points(lon[pick], lat[pick], (7, 8), exact=True)
    for j, i in enumerate(pick):
        assert int(exact[7][j]) == h3.str_to_int(h3.latlng_to_cell(lat[i], lon[i], 7))


def test_parent_of_missing_cell_stays_zero() -> None:
    assert h3index.parent_cells(np.array([0], dtype=np.uint64), 7).tolist() == [0]


def test_polygon_cover_centres_inside() -> None:
    poly = shapely.box(121.20, 31.00, 121.23, 31.03)
    cover = h3index.polygon_cover([None, poly], 9)
    assert set(cover["row"]) == {1}
    lon, lat = h3index.cell_centres(cover["cell"].to_numpy())
    assert shapely.contains_xy(poly, lon, lat).all()
    hexes = h3index.cell_polygons(cover["cell"].to_numpy()[:3])
    assert all(h.geom_type == "Polygon" and len(h.exterior.coords) == 7 for h in hexes)
