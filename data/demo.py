"""The demo district: a deterministic, seeded, realistic district inside a real boundary.

``build_demo(path)`` writes every layer and the road network into one DuckDB snapshot.
The same ``seed`` and ``end_date`` give the same rows. Run ``python -m data.demo --help``
or ``onemap demo``.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as dtime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from data.areas import Area, boundary_path, get_area
from data.demo_admin import Admin, make_admin
from data.demo_params import DemoProfile
from data.demo_roads import Roads, make_roads
from data.demo_space import Space
from geo import store
from geo.assign import points_in_polygons
from geo.errors import ConfigError
from geo.settings import Settings
from layers.registry import get_spec

DEFAULT_AREA = "310117"


def resolve_end(end_date: date | datetime | str | None) -> datetime:
    """The moment the demo data ends: now (to the minute) by default; a date means the end of that day."""
    if end_date is None:
        return datetime.now().replace(second=0, microsecond=0)
    if isinstance(end_date, str):
        try:
            end_date = datetime.fromisoformat(end_date) if ("T" in end_date or " " in end_date) else date.fromisoformat(end_date)
        except ValueError:
            raise ConfigError(f"end_date {end_date!r} is not an ISO date (YYYY-MM-DD) or datetime") from None
    if isinstance(end_date, datetime):
        return end_date.replace(microsecond=0)
    return datetime.combine(end_date, dtime(23, 59, 0))


def _stage_seed(seed: int, stage: str) -> np.random.Generator:
    """An independent generator per stage, so changing one stage leaves the others as they were."""
    return np.random.default_rng([seed, *stage.encode()])


def _frame(layer: str, df: pd.DataFrame, geoms: np.ndarray) -> gpd.GeoDataFrame:
    """A GeoDataFrame with the layer's canonical columns (missing ones empty) in EPSG:4326."""
    spec = get_spec(layer)
    cols = {f.name: (df[f.name].to_numpy() if f.name in df else None) for f in spec.fields}
    out = gpd.GeoDataFrame(pd.DataFrame(cols, index=pd.RangeIndex(len(df))), geometry=gpd.GeoSeries(geoms, crs=4326), crs=4326)
    out["source_file"] = "demo"
    out["source_row"] = np.arange(1, len(df) + 1, dtype=np.int64)
    return out


class _Locator:
    """Exact grid/community/town of points (``geo.assign`` on the WGS-84 grid polygons)."""

    def __init__(self, space: Space, admin: Admin) -> None:
        self.space = space
        self.grids = admin.grids
        self.polys_ll = space.geoms_to_lonlat(admin.grids["geometry_m"].to_numpy())
        self.town_names = [t.name for t in space.area.towns]

    def points(self, df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """Add grid_id/community/town to ``df`` (with x, y metres); returns it and the WGS-84 points."""
        lon, lat = self.space.to_lonlat(df["x"].to_numpy(), df["y"].to_numpy())
        idx = points_in_polygons(lon, lat, self.polys_ll)
        missing = idx < 0
        if missing.any():  # on the outer edge after the round trip: the nearest grid
            tree = shapely.STRtree(self.polys_ll)
            idx[missing] = tree.nearest(shapely.points(lon[missing], lat[missing]))
        out = df.copy()
        out["grid_id"] = self.grids["id"].to_numpy()[idx]
        out["community"] = self.grids["community"].to_numpy()[idx]
        out["town"] = self.grids["town"].to_numpy()[idx]
        return out, shapely.points(lon, lat)

    def points_many(self, frames: dict[str, pd.DataFrame]) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
        """``points`` for several frames at once (one exact assignment over all points)."""
        names = list(frames)
        sizes = [len(frames[n]) for n in names]
        both, pts = self.points(pd.concat([frames[n][["x", "y"]] for n in names], ignore_index=True))
        out: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        start = 0
        for name, size in zip(names, sizes, strict=True):  # per layer
            sl = slice(start, start + size)
            df = frames[name].reset_index(drop=True).copy()
            for col in ("grid_id", "community", "town"):
                df[col] = both[col].to_numpy()[sl]
            out[name] = (df, pts[sl])
            start += size
        return out

    def town_index(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Index into the area's towns of points in metres."""
        lon, lat = self.space.to_lonlat(x, y)
        idx = points_in_polygons(lon, lat, self.polys_ll)
        idx[idx < 0] = 0
        names = self.grids["town"].to_numpy()[idx]
        lookup = {n: i for i, n in enumerate(self.town_names)}
        return np.array([lookup[n] for n in pd.unique(names)])[pd.factorize(names)[0]]


def _admin_frames(space: Space, admin: Admin) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    area = space.area
    g = admin.grids
    grid = _frame("grid", g, space.geoms_to_lonlat(g["geometry_m"].to_numpy()))
    district = pd.DataFrame({"id": [area.adcode], "name": [area.name], "level": ["区县"], "parent_id": [None],
                             "adcode": [area.adcode], "population": [int(g["population"].sum())]})
    towns = admin.towns.assign(level="街镇", parent_id=area.adcode, adcode=admin.towns["id"])
    comms = admin.communities.assign(level="社区", parent_id=admin.communities["town_id"], adcode=admin.communities["id"])
    rows = pd.concat([district, towns.drop(columns="geometry_m"), comms.drop(columns=["geometry_m", "town", "town_id"])],
                     ignore_index=True)
    geoms = np.concatenate([[space.boundary_ll],
                            space.geoms_to_lonlat(admin.towns["geometry_m"].to_numpy()),
                            space.geoms_to_lonlat(admin.communities["geometry_m"].to_numpy())])
    return _frame("admin_area", rows, geoms), grid


@dataclass
class DemoData:
    """A generated district in memory: canonical layer frames (WGS-84) and the road tables."""

    area: Area
    seed: int
    scale: float
    end: datetime
    layers: dict[str, gpd.GeoDataFrame]
    road_nodes: pd.DataFrame
    road_edges: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Rows per layer plus ``road_nodes`` and ``road_edges``."""
        out = {layer: len(gdf) for layer, gdf in self.layers.items()}
        out["road_nodes"] = len(self.road_nodes)
        out["road_edges"] = len(self.road_edges)
        return out

    def note(self) -> str:
        """The ``ingest_log`` note: area, seed, scale and end of the data."""
        a = self.area
        return (f"demo district {a.adcode} {a.name}: seed={self.seed} scale={self.scale} "
                f"end={self.end.isoformat(sep=' ')} (generated by data/demo.py; boundary "
                f"{boundary_path(a.adcode).name}, GCJ-02 converted to WGS-84)")


def generate_demo(
    area: str = DEFAULT_AREA,
    scale: float = 1.0,
    seed: int = 2024,
    end_date: date | datetime | str | None = None,
    settings: Settings | None = None,
    profile: DemoProfile | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoData:
    """Generate the demo district in memory (no database); parameters as for ``build_demo``."""
    if not scale > 0:
        raise ConfigError(f"scale must be > 0, got {scale!r}")
    settings = settings or Settings()
    profile = profile or DemoProfile()
    say = progress or (lambda _msg: None)
    end = resolve_end(end_date)
    a = get_area(area)
    space = Space.build(a, profile, _stage_seed(seed, "space"))
    say("admin areas and grids")
    admin = make_admin(space, _stage_seed(seed, "admin"))
    say("roads")
    roads = make_roads(space, _stage_seed(seed, "roads"))
    loc = _Locator(space, admin)
    road_edges = roads.edges_frame(settings)
    layers = _point_layers(space, roads, road_edges, admin, loc, settings, scale, seed, end, say)
    admin_gdf, grid_gdf = _admin_frames(space, admin)
    return DemoData(area=a, seed=seed, scale=scale, end=end, layers={"admin_area": admin_gdf, "grid": grid_gdf, **layers},
                    road_nodes=roads.nodes_frame(), road_edges=road_edges)


def write_demo(path: str | Path, demo: DemoData) -> dict[str, int]:
    """Write a generated district into the DuckDB file ``path`` (a fresh snapshot); return row counts."""
    counts: dict[str, int] = {}
    with store.writer(path, fresh=True) as con:
        started = datetime.now()
        for layer, gdf in demo.layers.items():
            counts[layer] = store.write_layer(con, layer, gdf, replace=True)
        store.write_table(con, "road_nodes", demo.road_nodes)
        store.write_table(con, "road_edges", demo.road_edges)
        counts["road_nodes"] = len(demo.road_nodes)
        counts["road_edges"] = len(demo.road_edges)
        total = int(sum(counts.values()))
        log = pd.DataFrame({
            "file": ["demo"], "sha256": [f"seed:{demo.seed}"], "layer": ["*"], "crs": ["wgs84"],
            "started_at": [started], "finished_at": [datetime.now()], "rows_read": [total], "accepted": [total],
            "rejected": [0], "repaired": [0], "note": [demo.note()],
        })
        store.write_table(con, "ingest_log", log, replace=True)
    return counts


def build_demo(
    path: str | Path,
    area: str = DEFAULT_AREA,
    scale: float = 1.0,
    seed: int = 2024,
    end_date: date | datetime | str | None = None,
    settings: Settings | None = None,
    profile: DemoProfile | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Build the demo district into the DuckDB file ``path`` (replacing it); return row counts.

    Parameters
    ----------
    path
        DuckDB file to write (a fresh snapshot swapped in atomically).
    area
        adcode of a boundary in ``data/boundaries`` (310117 松江, 310115 浦东, 500154 开州, 330326 平阳).
    scale
        Multiplies the point counts (key places, hazards, incidents; hydrant density above 1).
    seed
        Random seed; the same seed and ``end_date`` give the same rows.
    end_date
        Last day of the data (its end); default now, so the wall display has "today".
    """
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    demo = generate_demo(area, scale, seed, end_date, settings, profile, say)
    say("writing the database")
    counts = write_demo(path, demo)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return counts


def demo_end(con: object) -> datetime:
    """The end of the data of a demo database (from its ``ingest_log`` note), to rebuild it exactly."""
    note = con.execute("SELECT note FROM ingest_log WHERE file = 'demo' ORDER BY started_at DESC LIMIT 1").fetchone()
    match = re.search(r"end=(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", note[0] if note else "")
    if match is None:
        raise ConfigError("this database was not built by the demo generator (no demo row in ingest_log)")
    return datetime.fromisoformat(match.group(1))


def _point_layers(space: Space, roads: Roads, road_edges: pd.DataFrame, admin: Admin, loc: _Locator,
                  settings: Settings, scale: float, seed: int, end: datetime,
                  say: Callable[[str], None]) -> dict[str, gpd.GeoDataFrame]:
    from data import demo_events as de
    from data import demo_points as dp
    from data import demo_response as dr

    say("hydrants and water sources")
    raw: dict[str, pd.DataFrame] = {
        "hydrant": dp.hydrants(space, roads, settings, scale, _stage_seed(seed, "hydrant"), end),
        "water_source": dp.water_sources(space, roads, dp.rivers(space, _stage_seed(seed, "rivers")),
                                         _stage_seed(seed, "water"), end),
    }
    say("key places and stations")
    places = dp.key_places(space, roads, settings, scale, _stage_seed(seed, "places"), end, loc.town_index)
    raw["key_place"] = dr.pre_plan(places, _stage_seed(seed, "pre_plan"))
    raw["fire_station"], raw["micro_station"] = dr.suspend_some(
        dp.fire_stations(space, roads, admin, _stage_seed(seed, "stations")),
        dp.micro_stations(space, roads, admin, places, scale, _stage_seed(seed, "micro")),
        space.profile, _stage_seed(seed, "duty"))
    raw["vulnerable_person"] = dr.vulnerable_people(space, roads, places, scale, space.profile,
                                                    _stage_seed(seed, "vulnerable"), end)
    say("hazards and incidents")
    raw["hazard"] = de.hazards(space, roads, places, settings, scale, _stage_seed(seed, "hazards"), end)
    raw["incident"] = de.incidents(space, roads, road_edges, places, raw["fire_station"], raw["micro_station"],
                                   settings, scale, _stage_seed(seed, "incidents"), end)
    say("assigning points to grids")
    return {layer: _frame(layer, df, pts) for layer, (df, pts) in loc.points_many(raw).items()}


def main(argv: list[str] | None = None) -> int:
    """``python -m data.demo [--area A] [--scale S] [--seed N] [--end-date D] PATH``."""
    ap = argparse.ArgumentParser(prog="python -m data.demo", description=__doc__)
    ap.add_argument("path", nargs="?", default="data/onemap.duckdb")
    ap.add_argument("--area", default=DEFAULT_AREA)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--end-date", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    counts = build_demo(args.path, area=args.area, scale=args.scale, seed=args.seed, end_date=args.end_date,
                        progress=lambda m: print(f"  {time.perf_counter() - t0:6.1f} s  {m}", flush=True))
    for layer, n in counts.items():
        print(f"{layer:<14} {n:>10,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
