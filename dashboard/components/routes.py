"""Map data as GeoJSON URLs on the Flask server (``app.server``).

The browser fetches layer data directly (dash-leaflet ``GeoJSON(url=...)``): the Dash
callback only computes URLs, the payload skips Dash's JSON round trip, and answers are
cached per snapshot version and query. Endpoints:

- ``/api/layer/<layer>/<hex|points>.geojson?bbox=w,s,e,n&zoom=Z&f={json}&start=&end=&v=`` (hexagons merged
  by colour class: one MultiPolygon per class, ``counts`` per polygon)
- ``/api/polygons/<layer>.geojson?level=&fields=all|map|outlines`` (``map``: id, name, level; 1 m
  precision; ``outlines``: the same merged into one MultiPolygon per level with id/name lists)
- ``/api/roads.geojson?bbox=&zoom=``
- ``/api/feature/<layer>/<id>?lang=`` (popup details: ``[[label, value], ...]``)
- ``/api/empty.geojson``
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flask

from dashboard.components import context
from dashboard.components.snapshot_cache import SnapshotLRU
from geo import mapdata
from geo.errors import OnemapError
from layers.registry import get_spec

OVERLAYS: dict[str, Callable[[dict[str, str]], str]] = {}
_URL_ANSWERS = SnapshotLRU(256, name="GeoJSON per URL")  # per snapshot, within cache_max_mb
GEOJSON = "application/geo+json; charset=utf-8"


def _cached(make: Callable[[], str]) -> str:
    return _URL_ANSWERS.get(flask.request.full_path, make)


def _geojson(text: str) -> flask.Response:
    resp = flask.Response(text, mimetype="application/geo+json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _bad_request(exc: Exception) -> flask.Response:
    return flask.Response(flask.json.dumps({"error": str(exc)}), status=400, mimetype="application/json")


def _zoom() -> float:
    text = flask.request.args.get("zoom", "12")
    try:
        zoom = float(text)
    except ValueError:
        zoom = math.nan
    if not math.isfinite(zoom):
        raise OnemapError(f"zoom must be a finite number, got {text!r}")
    return zoom


def register_overlay(name: str, make: Callable[[dict[str, str]], str]) -> None:
    """Serve ``make(query args)`` (GeoJSON text) at ``/api/overlay/<name>.geojson`` (pages register
    their shared overlays here, so big geometry reaches the map without the Dash store)."""
    OVERLAYS[name] = make


def register_routes(server: flask.Flask) -> None:
    """Add the map data endpoints to the Flask server."""

    @server.route("/api/overlay/<name>.geojson")
    def overlay(name: str) -> flask.Response:
        make = OVERLAYS.get(name)
        if make is None:
            return _bad_request(OnemapError(f"unknown overlay {name!r}; known: {sorted(OVERLAYS)}"))
        try:
            return _geojson(make(dict(flask.request.args)))
        except (OnemapError, KeyError, ValueError) as exc:
            return _bad_request(exc)

    @server.route("/api/empty.geojson")
    def empty() -> flask.Response:
        return _geojson(mapdata.EMPTY)

    @server.route("/api/layer/<layer>/<want>.geojson")
    def layer_data(layer: str, want: str) -> flask.Response:
        try:
            get_spec(layer)
            if want not in ("hex", "points"):
                raise OnemapError(f"unknown view {want!r}; use hex or points")
            args = flask.request.args
            bbox = mapdata.bbox_to_wgs84(mapdata.parse_bbox(args.get("bbox")), context.settings().tiles)
            flt = mapdata.MapFilter.parse(args.get("f"), args.get("start"), args.get("end"))
            zoom = _zoom()

            def make() -> str:
                with context.connection() as con:
                    return mapdata.layer_view(con, layer, bbox, zoom, context.settings(), flt, want=want,
                                              by_class=True).geojson

            return _geojson(_cached(make))
        except (OnemapError, KeyError) as exc:
            return _bad_request(exc)

    @server.route("/api/polygons/<layer>.geojson")
    def polygons(layer: str) -> flask.Response:
        try:
            spec = get_spec(layer)
            if spec.geometry != "polygon":
                raise OnemapError(f"layer {layer!r} is not a polygon layer")
            level = flask.request.args.get("level")
            where, params = (("level = ?", [level]) if level and "level" in spec.field_names else (None, None))
            view = flask.request.args.get("fields", "all")
            if view not in ("all", "map", "outlines"):
                raise OnemapError(f"fields must be 'all', 'map' or 'outlines', got {view[:40]!r}")
            fields, ndigits = (mapdata.map_fields(spec), 5) if view in ("map", "outlines") else (None, 6)

            def make() -> str:
                with context.connection() as con:
                    return mapdata.polygon_features(con, layer, context.settings().tiles, where=where, params=params,
                                                    fields=fields, ndigits=ndigits, merged=view == "outlines")

            return _geojson(_cached(make))
        except (OnemapError, KeyError) as exc:
            return _bad_request(exc)

    @server.route("/api/roads.geojson")
    def roads() -> flask.Response:
        try:
            settings = context.settings()
            bbox = mapdata.bbox_to_wgs84(mapdata.parse_bbox(flask.request.args.get("bbox")), settings.tiles)
            zoom = _zoom()

            def make() -> str:
                with context.connection() as con:
                    return mapdata.road_features(con, bbox, zoom, settings)

            return _geojson(_cached(make))
        except OnemapError as exc:
            return _bad_request(exc)

    @server.route("/api/feature/<layer>/<path:feature_id>")
    def feature(layer: str, feature_id: str) -> flask.Response:
        try:
            lang = "en" if flask.request.args.get("lang") == "en" else "zh"
            with context.connection() as con:
                rows = mapdata.feature_details(con, layer, feature_id, lang)
            title = get_spec(layer).label(lang)
            return flask.jsonify({"title": title, "rows": rows})
        except (OnemapError, KeyError) as exc:
            return flask.Response(flask.json.dumps({"error": str(exc)}), status=404, mimetype="application/json")
