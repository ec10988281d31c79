"""Inputs of coverage, water, siting and dispatch, loaded once: the ``Scene``.

A scene holds the road graph (or None in radius mode), the responders with their
turnout and target, the H3 cells that carry coverage (with area, built-up flag, area
names, demand weight and the road node nearest to each cell centre), and the key places,
hazards, hydrants and water sources, every point snapped to the network. ``make_scene``
builds one from plain frames (tests, notebooks); ``load_scene`` reads the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import h3ronpy
import numpy as np
import pandas as pd
import pyarrow as pa

from geo import governance, h3index
from geo.errors import NetworkError, ValidationError
from geo.network import RoadGraph, load_graph, transformer
from geo.settings import Settings
from geo.store import COVER_RESOLUTIONS

Mode = Literal["network", "radius"]
RESPONDER_LAYERS: tuple[str, ...] = ("micro_station", "fire_station")
CELL_RESOLUTIONS: tuple[int, ...] = COVER_RESOLUTIONS  # the store's cover resolutions


def layer_timing(layer: str, settings: Settings) -> tuple[float, float]:
    """(turnout s, target s) of a responder layer from the settings."""
    if layer == "micro_station":
        return settings.micro_station_turnout_s, settings.micro_station_minutes * 60.0
    if layer == "fire_station":
        return settings.fire_station_turnout_s, settings.fire_station_minutes * 60.0
    msg = f"responder layer {layer!r} unknown; use one of {list(RESPONDER_LAYERS)}"
    raise ValidationError(msg)


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything the coverage engine reads, snapped and indexed once."""

    mode: Mode
    graph: RoadGraph | None
    crs: str
    responders: pd.DataFrame
    unsnapped: pd.DataFrame
    cells: pd.DataFrame
    key_places: pd.DataFrame
    hazards: pd.DataFrame
    hydrants: pd.DataFrame
    water_sources: pd.DataFrame
    settings: Settings

    def project(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """lon/lat → metres in the scene's local projection."""
        x, y = transformer(self.crs).transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    @property
    def layers(self) -> tuple[str, ...]:
        """Responder layers present in this scene (in a fixed order)."""
        present = set(self.responders["layer"]) if len(self.responders) else set()
        return tuple(layer for layer in RESPONDER_LAYERS if layer in present)


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _with_columns(frame: pd.DataFrame | None, defaults: dict[str, Any]) -> pd.DataFrame:
    out = pd.DataFrame() if frame is None else frame.reset_index(drop=True).copy()
    for name, value in defaults.items():
        if name not in out:
            out[name] = value
    return out


def _require(frame: pd.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame]
    if missing:
        msg = f"{what}: missing column(s) {missing}; columns seen: {list(frame.columns)}"
        raise ValidationError(msg)


def _snap_points(frame: pd.DataFrame, graph: RoadGraph | None, settings: Settings) -> pd.DataFrame:
    """Add ``node`` (-1 when not snapped) and ``snap_m`` to a frame with lon/lat."""
    out = frame
    if graph is None or len(out) == 0:
        out["node"] = np.full(len(out), -1, dtype=np.int64)
        out["snap_m"] = np.full(len(out), np.nan)
        return out
    snap = graph.snap(
        out["lon"].to_numpy(np.float64), out["lat"].to_numpy(np.float64), settings.snap_distance_m
    )
    out["node"] = snap.node
    out["snap_m"] = snap.distance_m
    return out


def _metric_crs_for(frames: Sequence[pd.DataFrame]) -> str:
    lons = np.concatenate(
        [f["lon"].to_numpy(np.float64) for f in frames if len(f)] or [np.zeros(1)]
    )
    lats = np.concatenate(
        [f["lat"].to_numpy(np.float64) for f in frames if len(f)] or [np.zeros(1)]
    )
    lon0, lat0 = float(np.nanmean(lons)), float(np.nanmean(lats))
    return f"+proj=tmerc +lat_0={lat0:.4f} +lon_0={lon0:.4f} +k=1 +datum=WGS84 +units=m +no_defs"


def _cells_from_points(lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    parts = []
    for res in CELL_RESOLUTIONS:
        cells = np.unique(h3index.cells_at(lon, lat, res))
        parts.append(pd.DataFrame({"cell": cells, "res": np.int64(res)}))
    return pd.concat(parts, ignore_index=True)


def _prepare_cells(
    cells: pd.DataFrame,
    graph: RoadGraph | None,
    key_places: pd.DataFrame,
    hazards: pd.DataFrame,
    settings: Settings,
    project: Any,
) -> pd.DataFrame:
    """Cells with area, flags, demand weight, centre metres and nearest road node."""
    out = _with_columns(
        cells,
        {"built_up": True, "grid_id": None, "community": None, "town": None, "population": 0.0},
    )
    out["cell"] = out["cell"].astype(np.uint64)
    out["res"] = out["res"].astype(np.int64)
    out = out.drop_duplicates(["res", "cell"]).reset_index(drop=True)
    out["built_up"] = out["built_up"].fillna(False).astype(bool)
    cell_arr = out["cell"].to_numpy(np.uint64)
    out["area_km2"] = (
        pa.array(h3ronpy.cells_area_km2(cell_arr)).to_numpy(zero_copy_only=False)
        if len(out)
        else []
    )
    lon, lat = h3index.cell_centres(cell_arr) if len(out) else (np.zeros(0), np.zeros(0))
    out["lon"], out["lat"] = lon, lat
    out["x"], out["y"] = project(lon, lat)
    # demand: key places and open hazards per cell, population spread over the grid's cells
    out["places"] = 0
    out["hazards"] = 0
    for res in CELL_RESOLUTIONS:
        sel = (out["res"] == res).to_numpy()
        col = h3index.cell_column(res)
        for name, frame in (("places", key_places), ("hazards", hazards)):
            if len(frame) and col in frame:
                counts = frame[col].value_counts()
                out.loc[sel, name] = (
                    out.loc[sel, "cell"].map(counts).fillna(0).astype(np.int64).to_numpy()
                )
    pop = pd.to_numeric(out["population"], errors="coerce").fillna(0.0)
    out["weight"] = (
        settings.siting_weight_cell
        + settings.siting_weight_key_place * out["places"]
        + settings.siting_weight_hazard * out["hazards"]
        + settings.siting_weight_per_1000_people * pop / 1000.0
    )
    if graph is not None and len(out):
        d, i = graph.tree.query(np.column_stack([out["x"].to_numpy(), out["y"].to_numpy()]))
        ok = d <= settings.snap_distance_m
        out["node"] = np.where(ok, i, -1).astype(np.int64)
        out["access_m"] = d
    else:
        out["node"] = np.full(len(out), -1, dtype=np.int64)
        out["access_m"] = np.full(len(out), np.nan)
    return out


def make_scene(
    responders: pd.DataFrame,
    graph: RoadGraph | None = None,
    cells: pd.DataFrame | None = None,
    key_places: pd.DataFrame | None = None,
    hazards: pd.DataFrame | None = None,
    hydrants: pd.DataFrame | None = None,
    water_sources: pd.DataFrame | None = None,
    settings: Settings | None = None,
    mode: Literal["auto", "network", "radius"] = "auto",
) -> Scene:
    """Build a scene from plain frames (lon/lat in WGS-84).

    ``responders`` needs id, layer (micro_station/fire_station), lon, lat; name,
    station_class, turnout_s and target_s are optional (turnout and target default from
    the settings per layer). ``cells`` (cell, res and optionally built_up, grid_id,
    community, town, population) defaults to the res 9/10 cells of the road nodes, or of
    the key places and responders in radius mode. Key places need id, lon, lat (and
    category, inspection_class); hydrants and water sources need id, lon, lat, status.
    """
    settings = settings or Settings()
    if mode == "network" and graph is None:
        raise NetworkError(
            "network mode needs road data; import roads with `onemap roads FILE` or use --mode radius"
        )
    chosen: Mode = "network" if (graph is not None and mode != "radius") else "radius"
    use_graph = graph if chosen == "network" else None
    resp = _with_columns(responders, {"name": None, "kind": None, "station_class": None})
    _require(resp, "responders", ["id", "layer", "lon", "lat"])
    resp["id"] = resp["id"].astype(str)
    timing = {layer: layer_timing(layer, settings) for layer in resp["layer"].unique()}
    if "turnout_s" not in resp:
        resp["turnout_s"] = resp["layer"].map(lambda layer: timing[layer][0]).astype(float)
    if "target_s" not in resp:
        resp["target_s"] = resp["layer"].map(lambda layer: timing[layer][1]).astype(float)
    places = _with_columns(
        key_places,
        {
            "id": None,
            "name": None,
            "category": None,
            "inspection_class": None,
            "town": None,
            "community": None,
            "grid_id": None,
            "lon": np.nan,
            "lat": np.nan,
        },
    )
    hz = _with_columns(
        hazards,
        {
            "id": None,
            "category": None,
            "severity": None,
            "status": None,
            "place_id": None,
            "lon": np.nan,
            "lat": np.nan,
        },
    )
    hyd = _with_columns(
        hydrants, {"id": None, "name": None, "status": None, "lon": np.nan, "lat": np.nan}
    )
    ws = _with_columns(
        water_sources,
        {
            "id": None,
            "name": None,
            "kind": None,
            "capacity_m3": np.nan,
            "status": None,
            "lon": np.nan,
            "lat": np.nan,
        },
    )
    for frame in (places, hz, hyd, ws):
        if len(frame):
            cells_ = h3index.index_points(
                frame["lon"].to_numpy(np.float64),
                frame["lat"].to_numpy(np.float64),
                CELL_RESOLUTIONS,
            )
            for res, arr in cells_.items():
                frame[h3index.cell_column(res)] = arr
    # open now, by the governance figures' rule (closed_at, else the spec's closed status)
    hz["open"] = (governance.open_mask(hz["status"], hz["closed_at"] if "closed_at" in hz else None, datetime.now())
                  if len(hz) else pd.Series(dtype=bool))
    # working: a working status and no known pressure below the minimum (GB 50974 §7.2.8)
    nothing = pd.Series(np.nan, index=hyd.index)
    pressure = pd.to_numeric(hyd.get("pressure_mpa", nothing), errors="coerce")
    low = (pressure < settings.hydrant_min_pressure_mpa).to_numpy()
    hyd["low_pressure"] = low
    hyd["working"] = (
        hyd["status"].isin(settings.hydrant_working_statuses) & ~low
        if len(hyd)
        else pd.Series(dtype=bool)
    )
    ws["working"] = (
        (ws["status"].isna() | ws["status"].isin(settings.water_source_working_statuses))
        if len(ws)
        else pd.Series(dtype=bool)
    )
    crs = use_graph.crs if use_graph is not None else _metric_crs_for([resp, places, hyd, ws])

    def project(lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = transformer(crs).transform(
            np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
        )
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    for frame in (resp, places, hyd, ws, hz):
        frame["x"], frame["y"] = project(
            frame["lon"].to_numpy(np.float64), frame["lat"].to_numpy(np.float64)
        )
        _snap_points(frame, use_graph, settings)
    if chosen == "network":
        far = resp["node"] < 0
        unsnapped = resp[far].reset_index(drop=True)
        resp = resp[~far].reset_index(drop=True)
    else:
        unsnapped = resp.iloc[0:0].copy()
    if cells is None:
        if use_graph is not None:
            cells = _cells_from_points(use_graph.lon, use_graph.lat)
        else:
            pts = [f for f in (places, resp) if len(f)]
            lon = (
                np.concatenate([f["lon"].to_numpy(np.float64) for f in pts]) if pts else np.zeros(0)
            )
            lat = (
                np.concatenate([f["lat"].to_numpy(np.float64) for f in pts]) if pts else np.zeros(0)
            )
            cells = _cells_from_points(lon, lat)
    open_hz = hz[hz["open"].astype(bool)] if len(hz) else hz
    cell_frame = _prepare_cells(cells, use_graph, places, open_hz, settings, project)
    return Scene(chosen, use_graph, crs, resp, unsnapped, cell_frame, places, hz, hyd, ws, settings)


# --------------------------------------------------------------------------- from the store


def _read_points(
    con: Any,
    layer: str,
    columns: Sequence[str],
    where: str | None = None,
    params: Sequence[Any] | None = None,
) -> pd.DataFrame:
    from geo import store

    have = {r[0] for r in con.execute(f"DESCRIBE {layer}").fetchall()}
    cols = [c for c in columns if c in have]
    sql = f"SELECT {', '.join(cols)} FROM {layer}"
    if where:
        sql += f" WHERE {where}"
    return store.query(con, sql, params)


def read_cells(con: Any) -> pd.DataFrame | None:
    """Res 9/10 cells of the grids (``grid_h3cover``) with built-up flag, names and population.

    Only built-up grids when any grid is marked ``built_up``; None when there are no grids.
    """
    from geo import store

    n = con.execute("SELECT count(*) FROM grid").fetchone()[0]
    if n == 0:
        return None
    frame = store.query(
        con,
        """
        SELECT c.cell, c.res::BIGINT AS res, g.id AS grid_id, g.community, g.town,
               coalesce(g.built_up, false) AS built_up,
               coalesce(g.population, 0)::DOUBLE / count(*) OVER (PARTITION BY c.id, c.res) AS population
        FROM grid_h3cover c JOIN grid g ON g.id = c.id
    """,
    )
    if not frame["built_up"].any():
        frame["built_up"] = True
    return frame


def load_scene(
    con: Any,
    settings: Settings | None = None,
    mode: Literal["auto", "network", "radius"] = "auto",
    layers: Sequence[str] = RESPONDER_LAYERS,
    responder_where: str | None = None,
    responder_params: Sequence[Any] | None = None,
) -> Scene:
    """Read the store into a scene (roads, responders, grid cells, places, hazards, water).

    Responders with a status outside ``Settings.responder_active_statuses`` (planned, under
    construction) are left out; ``responder_where`` (SQL with ``?`` parameters) filters more.
    """
    settings = settings or Settings()
    for layer in layers:
        layer_timing(layer, settings)
    graph = load_graph(con, settings) if mode != "radius" else None
    parts = []
    for layer in layers:
        frame = _read_points(
            con,
            layer,
            ["id", "name", "kind", "station_class", "status", "lon", "lat", "town"],
            responder_where,
            responder_params,
        )
        frame = (
            frame[frame["status"].isna() | frame["status"].isin(settings.responder_active_statuses)]
            if "status" in frame
            else frame
        )
        frame = frame.assign(layer=layer)
        parts.append(frame)
    responders = (
        pd.concat(parts, ignore_index=True) if parts else _empty(["id", "layer", "lon", "lat"])
    )
    places = _read_points(
        con,
        "key_place",
        [
            "id",
            "name",
            "category",
            "inspection_class",
            "town",
            "community",
            "grid_id",
            "lon",
            "lat",
        ],
    )
    hazards = _read_points(
        con,
        "hazard",
        [
            "id",
            "category",
            "severity",
            "status",
            "place_id",
            "supervision",
            "discovered_at",
            "closed_at",
            "deadline",
            "description",
            "lon",
            "lat",
        ],
        f"NOT {governance.closed_sql()}",  # open now: the governance figures' rule
        [datetime.now()],
    )
    hydrants = _read_points(
        con,
        "hydrant",
        ["id", "name", "status", "hydrant_type", "pipe_diameter_mm", "pressure_mpa", "lon", "lat"],
    )
    waters = _read_points(
        con, "water_source", ["id", "name", "kind", "capacity_m3", "status", "lon", "lat"]
    )
    cells = read_cells(con)
    return make_scene(responders, graph, cells, places, hazards, hydrants, waters, settings, mode)
