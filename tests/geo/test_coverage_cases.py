"""Hand-built road networks and scenes shared by the coverage, water, siting and dispatch tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from geo.network import graph_from_tables
from geo.settings import Settings

LAT0 = 31.0
LON0 = 121.2
M_PER_DEG_LON = 111_320.0 * np.cos(
    np.radians(LAT0)
)  # close enough for placing points ~ metres apart
M_PER_DEG_LAT = 110_574.0

# 36 km/h with no slow-down: 10 m/s, so 100 m of road takes exactly 10 s
SETTINGS = Settings().with_overrides(urban_slowdown_factor=1.0, snap_distance_m=200.0)


def lonlat(
    east_m: float | np.ndarray, north_m: float | np.ndarray = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """lon/lat of a point ``east_m``/``north_m`` metres from (LON0, LAT0)."""
    east, north = np.broadcast_arrays(
        np.asarray(east_m, dtype=float), np.asarray(north_m, dtype=float)
    )
    return LON0 + east / M_PER_DEG_LON, LAT0 + north / M_PER_DEG_LAT


def line_tables(
    n: int, step_m: float = 100.0, speed_kmh: float = 36.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A straight two-way road of ``n`` nodes ``step_m`` apart running east."""
    lon, lat = lonlat(np.arange(n) * step_m)
    nodes = pd.DataFrame(
        {"node_id": np.arange(n, dtype=np.int64), "lon": lon, "lat": np.full(n, LAT0)}
    )
    u = np.arange(n - 1)
    edges = pd.DataFrame(
        {
            "u": np.concatenate([u, u + 1]),
            "v": np.concatenate([u + 1, u]),
            "length_m": step_m,
            "speed_kmh": speed_kmh,
        }
    )
    return nodes, edges


def line_graph(n: int, step_m: float = 100.0, settings: Settings = SETTINGS):
    nodes, edges = line_tables(n, step_m)
    return graph_from_tables(nodes, edges, settings)
