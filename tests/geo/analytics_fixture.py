"""A hand-made district for the analytics tests: 2 towns, 3 communities, 4 grids, 11 hazards.

Every expected figure in the tests is worked out by hand from the rows below (see the
comments in each test). Written into a real DuckDB file through ``store.writer``.

Layout: four 0.01° squares side by side from lon 121.20 (G1) to 121.24 (G4), lat 31.00-31.01.
甲镇: 一村 (G1, G2), 二村 (G3); 乙镇: 三村 (G4). The district polygon spans 121.19-121.25 × 30.99-31.02.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import store

AS_OF = datetime(2025, 6, 30)
GRIDS = {  # id: (town, community, west lon)
    "G1": ("甲镇", "一村", 121.20),
    "G2": ("甲镇", "一村", 121.21),
    "G3": ("甲镇", "二村", 121.22),
    "G4": ("乙镇", "三村", 121.23),
}


def _centre(grid: str, dx: float = 0.0, dy: float = 0.0) -> shapely.Point:
    west = GRIDS[grid][2]
    return shapely.Point(west + 0.005 + dx, 31.005 + dy)


def _T(s: str | None) -> pd.Timestamp | None:
    return pd.Timestamp(s) if s else None


def _D(s: str | None) -> date | None:
    return date.fromisoformat(s) if s else None


# id, grid, severity, status, supervision, handled_by, discovered, closed, deadline, place
HAZARDS = [
    ("H1", "G1", "一般", "结案", "无", "网格", "2025-01-05 08:00", "2025-01-07 08:00", "2025-01-20", "P1"),
    ("H2", "G1", "一般", "结案", "无", "社区", "2025-02-01 00:00", "2025-02-11 00:00", "2025-02-05", "P1"),
    ("H3", "G2", "重大", "处置", "街镇挂牌", "街镇", "2025-03-01 00:00", None, "2025-04-30", "P2"),
    ("H4", "G2", "一般", "立案", "无", None, "2025-06-20 00:00", None, None, "P3"),
    ("H5", "G3", "一般", "结案", "区级挂牌", "网格", "2025-04-10 12:00", "2025-04-14 12:00", "2025-04-25", "P4"),
    ("H6", "G3", "重大", "结案", "无", "街镇", "2025-05-01 00:00", "2025-06-10 00:00", "2025-06-30", "P4"),
    ("H7", "G4", "一般", "发现", "无", None, "2025-05-20 00:00", None, None, "P5"),
    ("H8", "G4", "一般", "结案", "无", "网格", "2025-06-01 00:00", "2025-06-02 00:00", "2025-06-16", "P5"),
    ("H9", "G4", "重大", "结案", "区级挂牌", "区", "2025-06-25 00:00", "2025-07-05 00:00", "2025-08-24", "P6"),
    ("H10", "G4", "一般", "结案", "无", "社区", "2024-11-01 00:00", "2024-11-02 00:00", "2024-11-16", "P5"),
    ("H11", "G1", "一般", "发现", "无", None, "2025-07-10 00:00", None, None, "P1"),
]
CATEGORY = {"H1": "堵塞占用生命通道", "H2": "堵塞占用生命通道", "H5": "违规使用液化气"}
SOURCE = {"H3": "12345热线", "H9": "物联感知"}

# id, grid, class, last inspection
PLACES = [
    ("K1", "G1", 1, "2025-06-15"),
    ("K2", "G1", 1, "2025-05-01"),
    ("K3", "G2", 2, "2025-04-15"),
    ("K4", "G3", 3, None),
    ("K5", "G4", 1, "2025-05-30"),
    ("K6", "G4", 3, "2024-12-01"),
    ("K7", "G4", 2, None),
]

# id, grid, kind, source, reported
INCIDENTS = [
    ("I1", "G2", "烟感报警", "物联感知", "2025-06-25 08:00"),
    ("I2", "G4", "火灾", "119接警", "2025-06-25 13:00"),
    ("I3", "G1", "电动车充电报警", "物联感知", "2025-06-24 22:00"),
]


def _location(grid: str) -> dict[str, str]:
    town, community, _ = GRIDS[grid]
    return {"town": town, "community": community, "grid_id": grid}


def hazard_frame(
    rows: list[tuple] = HAZARDS, points: list[tuple[float, float]] | None = None
) -> gpd.GeoDataFrame:
    """The hazard rows as a canonical GeoDataFrame (at their grid's centre unless ``points`` given)."""
    recs, geoms = [], []
    for i, (hid, grid, sev, status, sup, handled, disc, closed, deadline, place) in enumerate(rows):
        recs.append({
            "id": hid, "category": CATEGORY.get(hid, "电动自行车违规停放充电"), "severity": sev, "status": status,
            "source": SOURCE.get(hid, "网格巡查"), "supervision": sup, "handled_by": handled,
            "discovered_at": _T(disc), "closed_at": _T(closed), "deadline": _D(deadline), "place_id": place,
            **_location(grid),
        })
        if points is not None:
            geoms.append(shapely.Point(*points[i]))
        else:
            geoms.append(_centre(grid, dx=0.0001 * (i % 3), dy=0.0001 * (i % 2)))
    frame = pd.DataFrame(recs)
    for col in ("discovered_at", "closed_at"):
        frame[col] = pd.to_datetime(frame[col])
    return gpd.GeoDataFrame(frame, geometry=geoms, crs=4326)


def build_fixture(path: Path) -> Path:
    """Write the hand-made district to the DuckDB file ``path``."""
    squares = [shapely.box(w, 31.0, w + 0.01, 31.01) for _, _, w in GRIDS.values()]
    grids = gpd.GeoDataFrame(
        {"id": list(GRIDS), "name": [f"网格{g}" for g in GRIDS],
         "town": [v[0] for v in GRIDS.values()], "community": [v[1] for v in GRIDS.values()]},
        geometry=squares, crs=4326,
    )
    district = gpd.GeoDataFrame(
        {"id": ["D1"], "name": ["测试区"], "level": ["区县"]},
        geometry=[shapely.box(121.19, 30.99, 121.25, 31.02)], crs=4326,
    )
    places = gpd.GeoDataFrame(
        pd.DataFrame([{"id": pid, "name": f"场所{pid}", "category": "住宅小区", "inspection_class": cls,
                       "last_inspection": _D(last), **_location(grid)} for pid, grid, cls, last in PLACES]),
        geometry=[_centre(grid, dy=0.002) for _, grid, _, _ in PLACES], crs=4326,
    )
    incidents = gpd.GeoDataFrame(
        pd.DataFrame([{"id": iid, "kind": kind, "source": src, "reported_at": pd.Timestamp(t), **_location(grid)}
                      for iid, grid, kind, src, t in INCIDENTS]),
        geometry=[_centre(grid, dy=-0.002) for _, grid, _, _, _ in INCIDENTS], crs=4326,
    )
    with store.writer(path, fresh=True) as con:
        store.write_layer(con, "admin_area", district)
        store.write_layer(con, "grid", grids)
        store.write_layer(con, "hazard", hazard_frame())
        store.write_layer(con, "key_place", places)
        store.write_layer(con, "incident", incidents)
    return path


def add_hazards(path: Path, rows: list[tuple], points: list[tuple[float, float]] | None = None,
                replace: bool = False) -> None:
    """Add hazard rows (same tuple layout as HAZARDS) to an existing fixture file."""
    with store.writer(path) as con:
        store.write_layer(con, "hazard", hazard_frame(rows, points), replace=replace)


def cluster_rows(prefix: str, grid: str, times: list[str]) -> list[tuple]:
    """Open general hazards in ``grid``, one per time (for hotspot and warning tests)."""
    return [(f"{prefix}{i}", grid, "一般", "发现", "无", None, t, None, None, None) for i, t in enumerate(times)]


def ring_points(lon: float, lat: float, res: int, per_cell: int) -> list[tuple[float, float]]:
    """``per_cell`` points at the centre of the H3 cell at (lon, lat) and of each of its 6 neighbours."""
    import h3

    centre = h3.latlng_to_cell(lat, lon, res)
    out = []
    for cell in sorted(h3.grid_disk(centre, 1)):
        clat, clon = h3.cell_to_latlng(cell)
        out += [(clon, clat)] * per_cell
    return out


def random_counts(n: int, seed: int = 0) -> np.ndarray:
    """Poisson counts for Gi* comparisons."""
    return np.random.default_rng(seed).poisson(2.0, n).astype(float)
