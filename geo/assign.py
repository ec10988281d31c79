"""Exact assignment of points to grid polygons (point in polygon, not an H3 approximation)."""

from __future__ import annotations

import numpy as np
import shapely


def points_in_polygons(lon: np.ndarray, lat: np.ndarray, polygons: np.ndarray) -> np.ndarray:
    """Index into ``polygons`` of the polygon containing each point, -1 where none does.

    A point on a shared border goes to the polygon with the lowest index. Uses shapely's
    STRtree with the exact ``intersects`` predicate (boundary counts as inside).
    """
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
