"""What the map needs from the store, as GeoJSON text: pure, Dash-free, vectorised.

- ``layer_view``: one point layer for a viewport. Below ``Settings.point_cluster_zoom``
  (or when the viewport holds more than ``Settings.viewport_max_points`` points) it is
  H3 hexagons aggregated in DuckDB (``GROUP BY h3_r<res>``); above it, the viewport's
  points (the browser clusters them with supercluster).
- ``polygon_features`` (boundaries, grids), ``road_features`` (the road skeleton drawn when
  there are no tiles), ``data_bounds``, ``latest_rows`` (the wall's ticker).
- Every output goes through ``to_display``: with an AMap basemap (GCJ-02) coordinates are
  shifted with ``geo.crs.from_wgs84`` on the way out; ``from_display`` undoes it for clicks.

Filters (``MapFilter``) are ``{field: [values]}`` on fields of the layer spec plus an optional time range on
the layer's time field; field names are checked against the spec and values are bound
with ``?`` (never formatted into SQL).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import shapely

from geo import crs, h3index, personal, store
from geo.errors import ValidationError
from geo.settings import Settings
from layers.base import LayerSpec
from layers.registry import get_spec

BBox = tuple[float, float, float, float]
"""west, south, east, north in WGS-84 degrees."""

STORED_RESOLUTIONS: tuple[int, ...] = store.POINT_RESOLUTIONS  # the store's schema fact
EMPTY: str = '{"type":"FeatureCollection","features":[]}'
HEX_CLASSES: int = 6
"""Number of colour classes of hexagon counts (the legend's steps)."""


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class MapFilter:
    """Which rows of a layer to show: allowed values per field (any field of the spec, unlike
    ``geo.aggregate.Filter`` which knows the hazard/incident fields), a time window
    ``[start, end)`` on the layer's time field and ``towns``: None for the whole district, else
    only the rows of these towns (``town_sql``; an empty tuple shows nothing). ``parse`` never
    sets ``towns``: it is a server-side scope, never read from a URL."""

    values: Mapping[str, Sequence[str]] | None = None
    start: str | None = None
    end: str | None = None
    towns: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: str | None, start: str | None = None, end: str | None = None) -> MapFilter:
        """MapFilter from the URL parameters ``f`` (JSON ``{"severity": ["重大"]}``), ``start`` and ``end``.

        Raises ValidationError naming the parameter when ``f`` is not an object of short lists
        of plain values (text, finite numbers) or a date is not an ISO date (``parse_date``).
        """
        values = parse_json_param(text, "f") if text else None
        if values is not None:
            if not isinstance(values, dict):
                raise ValidationError(f"filter parameter f must be an object of field: [values], got {text[:80]!r}")
            for name, vals in values.items():
                _check_filter_values(name, vals)
        return cls(values=values, start=parse_date(start, "start"), end=parse_date(end, "end"))


MAX_PARAM_CHARS: int = 20_000
"""Longest JSON text a URL parameter may carry (a filter of every choice of a layer is far shorter)."""
MAX_FILTER_VALUES: int = 1_000
"""Most values one filter field may list."""
MAX_VALUE_CHARS: int = 200
"""Longest single filter value."""
MAX_JSON_DEPTH: int = 4
"""Deepest nesting of a JSON URL parameter (a filter is an object of lists: depth 2)."""
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?", re.ASCII)


def parse_date(value: object, name: str) -> str | None:
    """An ISO date (``2026-01-31``, optionally ``T08:30[:00]``) from a URL or a date picker; None when empty.

    Compact (``20260131``), relative (``now``), ``NaT``, full-width digits and impossible
    dates (``2026-02-30``) raise ValidationError naming ``name``, the value and the form expected.
    """
    if value is None or value == "":
        return None
    shown = repr(value)[:60]
    if not isinstance(value, str) or len(value) > 32 or not _ISO_DATE.fullmatch(value):
        raise ValidationError(f"{name} must be a date written 2026-01-31 (or 2026-01-31T08:30), got {shown}")
    try:
        pd.Timestamp(value)
    except (ValueError, OverflowError):
        raise ValidationError(f"{name} is not a calendar date: {shown}; write a real day such as 2026-01-31") from None
    return value


def parse_json_param(text: str, name: str) -> Any:
    """The JSON value of the URL parameter ``name``: at most ``MAX_PARAM_CHARS`` characters,
    ``MAX_JSON_DEPTH`` levels, no NaN/Infinity (ValidationError naming the parameter otherwise)."""
    if len(text) > MAX_PARAM_CHARS:
        raise ValidationError(f"parameter {name} is {len(text):,} characters long; at most {MAX_PARAM_CHARS:,}")

    def no_constant(word: str) -> Any:
        raise ValueError(f"{word} is not a JSON value")

    try:
        value = json.loads(text, parse_constant=no_constant)
    except RecursionError:
        raise ValidationError(f"parameter {name} is nested too deeply; at most {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:
        raise ValidationError(f"parameter {name} is not JSON: {text[:80]!r} ({exc})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise ValidationError(f"parameter {name} is nested too deeply; at most {MAX_JSON_DEPTH} levels: {text[:80]!r}")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0); stops counting past ``MAX_JSON_DEPTH``."""
    todo, deepest = [(value, 0)], 0
    while todo:
        item, level = todo.pop()
        deepest = max(deepest, level)
        if level <= MAX_JSON_DEPTH and isinstance(item, (list, dict)):
            todo.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _check_filter_values(name: str, values: Any) -> None:
    """A filter field's values: None (no filter) or a list of short text/finite numbers."""
    if values is None:
        return
    if not isinstance(values, list):
        raise ValidationError(f"filter on {name!r} must be a list of values, got {str(values)[:80]!r}")
    if len(values) > MAX_FILTER_VALUES:
        raise ValidationError(f"filter on {name!r} lists {len(values):,} values; at most {MAX_FILTER_VALUES:,}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (str, int, float)) or (isinstance(v, str) and len(v) > MAX_VALUE_CHARS):
            raise ValidationError(f"filter on {name!r} takes text or numbers up to {MAX_VALUE_CHARS} characters, "
                                  f"got {str(v)[:80]!r}")


def time_field(spec: LayerSpec) -> str | None:
    """The field a time range filters on: the layer's sort field or first time field."""
    if spec.sort_by:
        return spec.sort_by
    for f in spec.fields:
        if f.type in ("datetime", "date"):
            return f.name
    return None


def town_sql(spec: LayerSpec, towns: Sequence[str] | None) -> tuple[str, list[Any]]:
    """SQL condition keeping the rows of ``towns`` (街镇) only; ``TRUE`` for None (the whole district).

    A layer with a ``town`` field (every point layer, the grids: ``geo.assign`` gave each point the
    town of its grid): that value is one of ``towns`` (a row without a town is in no town). An area
    layer with ``name`` and ``parent_id`` (the admin areas): the areas named so and the areas whose
    parent is one of them (a town and its communities; not the district around them). Any other
    layer has no row in a town: ``FALSE``. An empty ``towns`` keeps nothing.
    """
    if towns is None:
        return "TRUE", []
    names = [str(t) for t in towns]
    if "town" in spec.field_names:
        return 'CAST("town" AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))', [names]
    if {"name", "parent_id"} <= set(spec.field_names):
        return (f'(CAST("name" AS VARCHAR) IN (SELECT unnest(?::VARCHAR[])) OR "parent_id" IN '
                f'(SELECT a.id FROM {spec.name} a WHERE CAST(a.name AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))))',
                [names, names])
    return "FALSE", []


def filter_sql(spec: LayerSpec, filters: MapFilter | None) -> tuple[str, list[Any]]:
    """SQL condition (``?`` parameters) and its parameters for ``filters`` on ``spec``.

    Raises ValidationError naming the field when a field is unknown.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if filters is None:
        return "TRUE", params
    if filters.towns is not None:
        tsql, tparams = town_sql(spec, filters.towns)
        clauses.append(tsql)
        params.extend(tparams)
    for name, values in (filters.values or {}).items():
        if name not in spec.field_names:
            msg = f"layer {spec.name!r} has no field {name!r} to filter on; fields: {spec.field_names}"
            raise ValidationError(msg)
        if values is None:
            continue
        if not isinstance(values, (list, tuple)):
            raise ValidationError(f"filter on {spec.name}.{name} must be a list of values, got {values!r}")
        clauses.append(f'CAST("{name}" AS VARCHAR) IN (SELECT unnest(?::VARCHAR[]))')
        params.append([str(v) for v in values])
    tf = time_field(spec)
    if tf and filters.start:
        clauses.append(f'"{tf}" >= CAST(? AS TIMESTAMP)')
        params.append(filters.start)
    if tf and filters.end:
        clauses.append(f'"{tf}" < CAST(? AS TIMESTAMP)')
        params.append(filters.end)
    return (" AND ".join(clauses) or "TRUE"), params


def bbox_sql(bbox: BBox | None) -> tuple[str, list[Any]]:
    """SQL condition on the lon/lat columns for a WGS-84 box."""
    if bbox is None:
        return "TRUE", []
    w, s, e, n = (float(v) for v in bbox)
    return "lon BETWEEN ? AND ? AND lat BETWEEN ? AND ?", [w, e, s, n]


def parse_bbox(text: str | None) -> BBox | None:
    """``"w,s,e,n"`` in degrees → a box (ValidationError on a malformed, non-finite or off-earth one)."""
    if not text:
        return None
    shown = repr(text[:80])
    try:
        w, s, e, n = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationError(f"bbox must be 'west,south,east,north' in degrees, got {shown}") from None
    if not all(math.isfinite(v) for v in (w, s, e, n)):
        raise ValidationError(f"bbox must be four finite numbers of degrees, got {shown}")
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ValidationError(f"bbox {shown} has west > east or south > north, or lies off the earth "
                              "(longitudes -180..180, latitudes -90..90)")
    return (w, s, e, n)


MAX_ZOOM: float = 24.0
"""Deepest map zoom a URL may ask for (Leaflet tiles stop well before)."""


def parse_zoom(text: str | None, default: float = 12.0) -> float:
    """A map zoom from a URL parameter: a finite number from 0 to ``MAX_ZOOM`` (ValidationError otherwise)."""
    if text is None or text == "":
        return default
    try:
        zoom = float(text)
    except ValueError:
        zoom = math.nan
    if not (math.isfinite(zoom) and 0 <= zoom <= MAX_ZOOM):
        raise ValidationError(f"zoom must be a finite number from 0 to {MAX_ZOOM:g}, got {text[:40]!r}")
    return zoom


# --------------------------------------------------------------------------- display CRS


def display_crs(tiles: str) -> str:
    """CRS the map draws in: GCJ-02 under AMap tiles, WGS-84 otherwise."""
    return "gcj02" if tiles == "amap" else "wgs84"


def to_display(lon: np.ndarray, lat: np.ndarray, tiles: str) -> tuple[np.ndarray, np.ndarray]:
    """WGS-84 → the basemap's CRS (GCJ-02 for AMap)."""
    return crs.from_wgs84(lon, lat, display_crs(tiles))


def from_display(lon: np.ndarray, lat: np.ndarray, tiles: str) -> tuple[np.ndarray, np.ndarray]:
    """The basemap's CRS → WGS-84 (for clicks and drags on the map)."""
    return crs.to_wgs84(lon, lat, display_crs(tiles))


def bbox_to_wgs84(bbox: BBox | None, tiles: str) -> BBox | None:
    """A viewport box in display coordinates → WGS-84."""
    if bbox is None or display_crs(tiles) == "wgs84":
        return bbox
    lon, lat = from_display(np.array([bbox[0], bbox[2]]), np.array([bbox[1], bbox[3]]), tiles)
    return (float(lon[0]), float(lat[0]), float(lon[1]), float(lat[1]))


def _shift_geoms(geoms: np.ndarray, tiles: str) -> np.ndarray:
    if display_crs(tiles) == "wgs84":
        return geoms

    def shift(xy: np.ndarray) -> np.ndarray:
        lon, lat = to_display(xy[:, 0], xy[:, 1], tiles)
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, shift)


# --------------------------------------------------------------------------- serialising


def feature_collection(geoms: np.ndarray, props: pd.DataFrame, tiles: str = "none", ndigits: int = 6) -> str:
    """GeoJSON FeatureCollection text of shapely geometries and their properties.

    Vectorised: geometries through ``shapely.to_geojson``, properties through pandas'
    JSON writer (text is escaped as JSON; HTML escaping is the popup's job).
    """
    if len(geoms) == 0:
        return EMPTY
    geoms = _shift_geoms(np.asarray(geoms, dtype=object), tiles)
    geoms = shapely.set_precision(geoms, 10.0**-ndigits) if ndigits is not None else geoms
    geom_json = pd.Series(shapely.to_geojson(geoms), dtype=object)
    if props.shape[1]:
        lines = props.to_json(orient="records", lines=True, force_ascii=False, date_format="iso", date_unit="s")
        prop_json = pd.Series(lines.rstrip("\n").split("\n"), dtype=object)
    else:
        prop_json = pd.Series(["{}"] * len(geom_json), dtype=object)
    features = '{"type":"Feature","geometry":' + geom_json + ',"properties":' + prop_json.to_numpy() + "}"
    return '{"type":"FeatureCollection","features":[' + ",".join(features.tolist()) + "]}"


def _point_geoms(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return shapely.points(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))


# --------------------------------------------------------------------------- point layers


def hex_resolution(zoom: float, settings: Settings) -> int:
    """Stored H3 resolution drawn at a map zoom (zoom − offset, clamped to 7-10)."""
    res = int(np.floor(zoom)) - settings.hex_zoom_offset
    return int(min(max(res, STORED_RESOLUTIONS[0]), STORED_RESOLUTIONS[-1]))


def count_points(con: duckdb.DuckDBPyConnection, layer: str, bbox: BBox | None, filters: MapFilter | None = None) -> int:
    """Number of rows of a point layer in a box that pass the filters."""
    spec = get_spec(layer)
    fsql, fparams = filter_sql(spec, filters)
    bsql, bparams = bbox_sql(bbox)
    return int(con.execute(f"SELECT count(*) FROM {spec.name} WHERE {bsql} AND {fsql}", bparams + fparams).fetchone()[0])


def hex_classes(counts: np.ndarray, classes: int = HEX_CLASSES) -> tuple[np.ndarray, list[int]]:
    """Colour class (0..classes-1) of each count on a log scale, and the class lower bounds."""
    counts = np.asarray(counts, dtype=np.float64)
    if len(counts) == 0:
        return np.zeros(0, dtype=np.int64), [1]
    top = max(float(counts.max()), 1.0)
    edges = np.unique(np.round(np.logspace(0, np.log10(top), classes + 1)[:-1]).astype(np.int64))
    cls = np.searchsorted(edges, counts, side="right") - 1
    return np.clip(cls, 0, classes - 1), edges.tolist()


def hex_features(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    res: int,
    bbox: BBox | None = None,
    filters: MapFilter | None = None,
    tiles: str = "none",
    by_class: bool = False,
) -> str:
    """H3 hexagons with the count of a point layer's rows in each (aggregated in DuckDB).

    Properties: ``cell`` (hex id), ``count``, ``cls`` (log colour class, see ``hex_classes``)
    and, when the spec colours by a field, ``top`` (that field's most
    serious value present: the last of its colour table) and ``n_top`` (its count).

    With ``by_class`` the map's form: one MultiPolygon per colour class (a handful of features
    instead of thousands: the browser builds and fills one path per class), properties ``cls``
    and ``counts`` (the count of each polygon, in the geometry's order; the tooltip finds the
    polygon under the pointer).
    """
    spec = get_spec(layer)
    if res not in STORED_RESOLUTIONS:
        raise ValidationError(f"hexagon resolution {res} is not stored; choose one of {STORED_RESOLUTIONS}")
    fsql, fparams = filter_sql(spec, filters)
    bsql, bparams = bbox_sql(bbox)
    top_sql, top_params = "0", []
    top_value = None
    if spec.style.color_by and spec.style.colors:
        top_value = list(spec.style.colors)[-1]
        top_sql = f'count(*) FILTER (WHERE CAST("{spec.style.color_by}" AS VARCHAR) = ?)'
        top_params = [top_value]
    got = store.cell_aggregates(
        con, spec.name, res, f"count(*) AS count, {top_sql} AS n_top", f"{bsql} AND {fsql}",
        top_params + bparams + fparams,
    )
    if not len(got["cell"]):
        return EMPTY
    cells = np.asarray(got["cell"], dtype=np.uint64)
    counts = np.asarray(got["count"], dtype=np.int64)
    cls, _ = hex_classes(counts)
    props = pd.DataFrame({
        "cell": np.char.mod("%x", cells),
        "count": counts,
        "cls": cls,
        "n_top": np.asarray(got["n_top"], dtype=np.int64),
    })
    if top_value is not None:
        props["top"] = top_value
    if by_class:
        return _class_features(h3index.cell_polygons(cells), props["count"].to_numpy(), cls, tiles)
    return feature_collection(h3index.cell_polygons(cells), props, tiles, ndigits=5)


def _class_features(polys: np.ndarray, counts: np.ndarray, cls: np.ndarray, tiles: str) -> str:
    """One MultiPolygon per class with its polygons' counts (coordinates to ~1 m, rounded per
    hexagon: the parts share edges, which a whole-geometry precision pass would dissolve)."""
    order = np.argsort(cls, kind="stable")
    polys = shapely.set_precision(np.asarray(polys, dtype=object)[order], 1e-5)
    classes, starts = np.unique(cls[order], return_index=True)
    groups = np.repeat(np.arange(len(classes)), np.diff(np.append(starts, len(order))))
    geoms = shapely.multipolygons(polys, indices=groups)
    props = pd.DataFrame({"cls": classes.astype(np.int64),
                          "counts": [c.tolist() for c in np.split(counts[order].astype(np.int64), starts[1:])]})
    return feature_collection(geoms, props, tiles, ndigits=None)


def point_columns(spec: LayerSpec) -> list[str]:
    """Fields sent with each point: id, the styled field and a label (popups fetch the rest)."""
    cols = ["id"]
    if spec.style.color_by:
        cols.append(spec.style.color_by)
    for name in ("name", "category", "kind"):
        if name in spec.field_names and name not in cols:
            cols.append(name)
            break
    return cols


def feature_details(con: duckdb.DuckDBPyConnection, layer: str, feature_id: str, lang: str = "zh",
                    towns: Sequence[str] | None = None, mask: Sequence[str] = ()) -> list[tuple[str, str]]:
    """(field label, value as text) of one feature, for its popup; empty values left out.

    ``towns``: only a feature of these towns is found (``town_sql``; None: any); ``mask``: fields
    masked (``geo.personal``). Raises ValidationError when the id is not in the layer (or not in
    ``towns``: the same message, so an id out of scope cannot be told from a missing one).
    """
    spec = get_spec(layer)
    cols = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' for c in spec.field_names)
    tsql, tparams = town_sql(spec, towns)
    df = con.execute(f"SELECT {cols} FROM {spec.name} WHERE id = ? AND {tsql} LIMIT 1", [str(feature_id), *tparams]).df()
    if df.empty:
        raise ValidationError(f"layer {layer!r} has no feature with id {feature_id!r}")
    if mask:
        df = personal.mask_frame(df, mask)
    row = df.iloc[0]
    return [(spec.field_label(c, lang), str(row[c])) for c in spec.field_names if row[c] is not None and str(row[c]) != ""]


def point_features(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    bbox: BBox | None,
    filters: MapFilter | None = None,
    tiles: str = "none",
    limit: int | None = None,
    mask: Sequence[str] = (),
) -> str:
    """The points of a layer in a box, newest first, with the ``point_columns`` as properties
    (``mask``: personal fields masked, ``geo.personal``: a vulnerable resident's name)."""
    spec = get_spec(layer)
    fsql, fparams = filter_sql(spec, filters)
    bsql, bparams = bbox_sql(bbox)
    cols = ", ".join(f'"{c}"' for c in point_columns(spec))
    sql = f"SELECT {cols}, lon, lat FROM {spec.name} WHERE {bsql} AND {fsql}"
    if spec.sort_by:
        sql += f' ORDER BY "{spec.sort_by}" DESC'
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    df = con.execute(sql, bparams + fparams).df()
    if mask:
        df = personal.mask_frame(df, mask)
    geoms = _point_geoms(df.pop("lon").to_numpy(), df.pop("lat").to_numpy())
    return feature_collection(geoms, df, tiles)


@dataclass(frozen=True)
class LayerView:
    """What one point layer shows in a viewport: ``mode`` is ``hex`` or ``points``."""

    mode: str
    res: int | None
    count: int
    geojson: str


def view_mode(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    bbox: BBox | None,
    zoom: float,
    settings: Settings,
    filters: MapFilter | None = None,
) -> tuple[str, int | None, int]:
    """(mode, hex resolution, points in view).

    Points when fewer than ``hex_min_points`` are in view, or from ``point_cluster_zoom`` on
    while at most ``viewport_max_points`` are in view; hexagons otherwise.
    """
    n = count_points(con, layer, bbox, filters)
    if n < settings.hex_min_points or (zoom >= settings.point_cluster_zoom and n <= settings.viewport_max_points):
        return "points", None, n
    res = hex_resolution(zoom, settings) if zoom < settings.point_cluster_zoom else STORED_RESOLUTIONS[-1]
    return "hex", res, n


def layer_view(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    bbox: BBox | None,
    zoom: float,
    settings: Settings,
    filters: MapFilter | None = None,
    want: str | None = None,
    by_class: bool = False,
    mask: Sequence[str] = (),
) -> LayerView:
    """A point layer for a viewport: hexagons or clustered points (see ``view_mode``).

    ``want`` (``hex`` or ``points``) returns an empty collection when the mode differs, so a
    map can hold one hexagon layer and one point layer and fill only the right one;
    ``by_class`` sends hexagons merged by colour class (``hex_features``); ``mask``: personal
    fields of the points masked (``point_features``).
    """
    mode, res, n = view_mode(con, layer, bbox, zoom, settings, filters)
    if want is not None and want != mode:
        return LayerView(mode, res, n, EMPTY)
    if mode == "points":
        text = point_features(con, layer, bbox, filters, settings.tiles, mask=mask)
    else:
        text = hex_features(con, layer, res or STORED_RESOLUTIONS[-1], bbox, filters, settings.tiles, by_class=by_class)
    return LayerView(mode, res, n, text)


# --------------------------------------------------------------------------- polygons, roads


def map_fields(spec: LayerSpec) -> list[str]:
    """Fields a polygon layer's map outlines carry: id, its label (name) and the styled level.

    The map styles and labels outlines with these only; the rest (a grid worker's phone, the
    population) stays on the server, so a wall display never holds it.
    """
    return [f for f in ("id", "name", "level") if f in spec.field_names]


def polygon_features(
    con: duckdb.DuckDBPyConnection,
    layer: str,
    tiles: str = "none",
    simplify_deg: float = 2e-5,
    where: str | None = None,
    params: Sequence[Any] | None = None,
    fields: Sequence[str] | None = None,
    ndigits: int = 6,
    merged: bool = False,
    mask: Sequence[str] = (),
) -> str:
    """A polygon layer (boundaries, grids) with its spec fields (or ``fields``), simplified for display.

    ``ndigits`` decimals of a degree on the way out (5 ≈ 1 m, the map's outlines; 6 ≈ 0.1 m).
    With ``merged`` the map's outlines form: one MultiPolygon per ``level`` (one in all for a
    layer without levels), properties ``level`` and, per polygon in the geometry's order, the
    ``id`` and ``name`` lists of the feature it belongs to (a multi-part area repeats them): the
    browser builds and draws a handful of paths, the tooltip finds the polygon under the pointer.
    ``mask``: personal fields masked (``geo.personal``: a grid worker's name and phone).
    Raises ValidationError naming a field the spec does not have.
    """
    spec = get_spec(layer)
    names = list(fields) if fields is not None else spec.field_names
    unknown = [f for f in names if f not in spec.field_names]
    if unknown:
        raise ValidationError(f"layer {layer!r} has no field(s) {unknown}; fields: {spec.field_names}")
    cols = ", ".join(f'"{c}"' for c in names)
    sql = f"SELECT {cols}, ST_AsWKB(geom) AS _wkb FROM {spec.name}"
    if where:
        sql += f" WHERE {where}"
    df = con.execute(sql, list(params or [])).df()
    if mask:
        df = personal.mask_frame(df, mask)
    geoms = shapely.from_wkb(np.array([bytes(b) for b in df.pop("_wkb")], dtype=object)) if len(df) else np.array([])
    if len(geoms) and simplify_deg:
        geoms = shapely.simplify(geoms, simplify_deg, preserve_topology=True)
    if merged and len(geoms):
        return _merged_outlines(geoms, df, tiles, ndigits)
    return feature_collection(geoms, df, tiles, ndigits=ndigits)


def _merged_outlines(geoms: np.ndarray, df: pd.DataFrame, tiles: str, ndigits: int) -> str:
    """One MultiPolygon per level with per-polygon ``id``/``name`` lists (see ``polygon_features``)."""
    parts, owner = shapely.get_parts(np.asarray(geoms, dtype=object), return_index=True)
    keep = shapely.get_type_id(parts) == 3  # polygons (a collection's stray lines or points are not outlines)
    parts, owner = shapely.set_precision(parts[keep], 10.0**-ndigits), owner[keep]
    level = df["level"].astype(str).to_numpy()[owner] if "level" in df else np.full(len(owner), "", dtype=object)
    levels, group = np.unique(level, return_inverse=True)
    order = np.argsort(group, kind="stable")
    out = shapely.multipolygons(parts[order], indices=group[order])
    starts = np.searchsorted(group[order], np.arange(len(levels)))
    props = pd.DataFrame(index=range(len(levels)))
    if "level" in df:
        props["level"] = levels
    for col in ("id", "name"):
        if col in df:
            vals = df[col].astype(str).to_numpy()[owner[order]]
            props[col] = [v.tolist() for v in np.split(vals, starts[1:])]
    return feature_collection(out, props, tiles, ndigits=None)


def road_features(
    con: duckdb.DuckDBPyConnection,
    bbox: BBox | None,
    zoom: float,
    settings: Settings,
) -> str:
    """Roads in a box as one MultiLineString feature per road class (``highway``).

    Directed edges are drawn once per street segment; segments of a class are merged so the
    browser builds a handful of canvas paths instead of thousands of layers (roads are a
    non-interactive backdrop). Below ``Settings.road_detail_zoom`` only the classes in
    ``Settings.map_major_roads``.
    """
    clauses, params = ["TRUE"], []
    if bbox is not None:
        clauses.append("ST_Intersects_Extent(geom, ST_MakeEnvelope(?, ?, ?, ?))")
        params += [float(b) for b in bbox]
    if zoom < settings.road_detail_zoom:
        clauses.append("highway IN (SELECT unnest(?::VARCHAR[]))")
        params.append(list(settings.map_major_roads))
    sql = (
        "SELECT highway, ST_AsWKB(any_value(geom)) AS _wkb FROM road_edges "
        f"WHERE {' AND '.join(clauses)} GROUP BY least(u, v), greatest(u, v), highway, name"
    )
    df = con.execute(sql, params).df()
    if df.empty:
        return EMPTY
    geoms = shapely.from_wkb(np.array([bytes(b) for b in df.pop("_wkb")], dtype=object))
    parts, index = shapely.get_parts(geoms, return_index=True)
    codes, classes = pd.factorize(df["highway"].fillna("").to_numpy()[index])
    order = np.argsort(codes, kind="stable")
    merged = shapely.multilinestrings(parts[order], indices=codes[order])
    props = pd.DataFrame({"highway": list(classes)})
    props["major"] = props["highway"].isin(list(settings.map_major_roads)).to_numpy()
    return feature_collection(np.asarray(merged, dtype=object), props, settings.tiles)


def data_bounds(con: duckdb.DuckDBPyConnection, towns: Sequence[str] | None = None) -> BBox | None:
    """Box around the district (or ``towns``: ``town_sql``): the admin areas, else the grids, else every point layer."""
    from layers.registry import LAYERS

    for name in ("admin_area", "grid"):
        if name in LAYERS:
            where, params = town_sql(LAYERS[name], towns)
            row = con.execute(
                f"SELECT min(ST_XMin(geom)), min(ST_YMin(geom)), max(ST_XMax(geom)), max(ST_YMax(geom)) FROM {name} "
                f"WHERE {where}", params).fetchone()
            if row and row[0] is not None:
                return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
    parts, params = [], []
    for n, s in LAYERS.items():
        if s.geometry == "point":
            where, wparams = town_sql(s, towns)
            parts.append(f"SELECT min(lon) a, min(lat) b, max(lon) c, max(lat) d FROM {n} WHERE {where}")
            params += wparams
    if not parts:
        return None
    row = con.execute(f"SELECT min(a), min(b), max(c), max(d) FROM ({' UNION ALL '.join(parts)})", params).fetchone()
    if row is None or row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def latest_rows(con: duckdb.DuckDBPyConnection, layer: str, n: int, filters: MapFilter | None = None) -> pd.DataFrame:
    """The ``n`` newest rows of a layer by its time field (for tickers), newest first."""
    spec = get_spec(layer)
    tf = time_field(spec)
    if tf is None:
        raise ValidationError(f"layer {layer!r} has no time field to order by")
    fsql, fparams = filter_sql(spec, filters)
    cols = ", ".join(f'"{c}"' for c in spec.field_names)
    return con.execute(
        f'SELECT {cols}, lon, lat FROM {spec.name} WHERE {fsql} ORDER BY "{tf}" DESC LIMIT ?', fparams + [int(n)]
    ).df()


def count_by(con: duckdb.DuckDBPyConnection, layer: str, field: str, filters: MapFilter | None = None,
             bbox: BBox | None = None) -> dict[str, int]:
    """Rows of a layer per value of one field (for legends and filter badges)."""
    spec = get_spec(layer)
    spec.field(field)
    fsql, fparams = filter_sql(spec, filters)
    bsql, bparams = bbox_sql(bbox)
    df = con.execute(
        f'SELECT CAST("{field}" AS VARCHAR) AS v, count(*) AS n FROM {spec.name} WHERE {bsql} AND {fsql} GROUP BY 1',
        bparams + fparams,
    ).df()
    return {str(k): int(v) for k, v in zip(df["v"], df["n"], strict=True)}


# --------------------------------------------------------------------------- analysis overlays


def cells_features(cells: np.ndarray, props: pd.DataFrame | None = None, tiles: str = "none") -> str:
    """One hexagon feature per H3 cell (uint64) with its properties (hotspot bins, blind cells)."""
    cells = np.asarray(cells, dtype=np.uint64)
    if len(cells) == 0:
        return EMPTY
    frame = props.reset_index(drop=True) if props is not None else pd.DataFrame(index=range(len(cells)))
    return feature_collection(h3index.cell_polygons(cells), frame, tiles, ndigits=5)


def dissolved_cells(cells: np.ndarray, tiles: str = "none", props: dict[str, Any] | None = None) -> str:
    """The union of H3 cells as one (Multi)Polygon feature (blind-spot areas, isochrones)."""
    cells = np.unique(np.asarray(cells, dtype=np.uint64))
    if len(cells) == 0:
        return EMPTY
    union = shapely.union_all(shapely.buffer(h3index.cell_polygons(cells), 1e-7))
    return feature_collection(np.array([union], dtype=object), pd.DataFrame([props or {}]), tiles)


def grouped_cells(cells: np.ndarray, groups: np.ndarray, props: pd.DataFrame | None = None,
                  tiles: str = "none") -> str:
    """One dissolved feature per group of H3 cells (first-due areas: cells per responder).

    ``props`` (optional) is indexed by group value; the feature carries ``group`` and its row.
    One union per group (groups are responders, not points).
    """
    cells = np.asarray(cells, dtype=np.uint64)
    groups = np.asarray(groups)
    if len(cells) == 0:
        return EMPTY
    polys = shapely.buffer(h3index.cell_polygons(cells), 1e-7)
    frame = pd.DataFrame({"group": groups, "poly": polys})
    keys, geoms = [], []
    for key, part in frame.groupby("group", sort=True):
        keys.append(key)
        geoms.append(shapely.union_all(part["poly"].to_numpy()))
    out = pd.DataFrame({"group": keys})
    if props is not None:
        out = out.join(props, on="group")
    return feature_collection(np.array(geoms, dtype=object), out, tiles)


def area_boxes(con: duckdb.DuckDBPyConnection, level: str, towns: Sequence[str] | None = None) -> list[tuple[str, BBox]]:
    """(name, box) of every admin area of one level (e.g. 街镇; of ``towns`` only: ``town_sql``),
    for a wall rotating through towns."""
    where, params = town_sql(get_spec("admin_area"), towns)
    df = con.execute(
        "SELECT name, ST_XMin(geom) w, ST_YMin(geom) s, ST_XMax(geom) e, ST_YMax(geom) n "
        f"FROM admin_area WHERE level = ? AND {where} ORDER BY name", [level, *params]).df()
    return [(str(r.name), (float(r.w), float(r.s), float(r.e), float(r.n))) for r in df.itertuples()]


M_PER_DEG_LAT = 111_320.0
"""Metres per degree of latitude (display tolerances in metres → degrees)."""


def geometries_features(geoms: Sequence[dict[str, Any] | None], props: pd.DataFrame, tiles: str = "none",
                        simplify_m: float = 0.0) -> str:
    """Features from GeoJSON geometry dicts (isochrones, cluster outlines); None geometries are dropped.

    ``simplify_m`` > 0 simplifies each shape for display (Douglas-Peucker with that tolerance in
    metres, topology kept; ``Settings.map_zone_simplify_m``).
    """
    keep = [i for i, g in enumerate(geoms) if g]
    if not keep:
        return EMPTY
    shapes = shapely.from_geojson([json.dumps(geoms[i]) for i in keep])
    if simplify_m > 0:
        shapes = shapely.simplify(shapes, simplify_m / M_PER_DEG_LAT, preserve_topology=True)
    return feature_collection(np.asarray(shapes, dtype=object), props.iloc[keep].reset_index(drop=True), tiles)


def points_features(lon: np.ndarray, lat: np.ndarray, props: pd.DataFrame, tiles: str = "none") -> str:
    """Point features from coordinate arrays (suggested sites, dispatch water)."""
    if len(lon) == 0:
        return EMPTY
    return feature_collection(_point_geoms(lon, lat), props.reset_index(drop=True), tiles)
