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

Every answer is cut to the request principal's scope (``dashboard.access.scope``): a town user
gets the points, hexagons, grids and areas of their towns only (a filter naming other towns
only narrows it), personal fields (a grid worker's name and phone, a resident's name) masked
for roles that do not see them, and a feature out of scope answers 404 like a missing id. The
cache of answers per URL is keyed by the scope as well (``snapshot_cache``). Roads (the street
skeleton) are neither personal nor a town's: everyone gets all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flask

from dashboard.access import scope
from dashboard.components import context
from dashboard.components.inputs import BadInput
from dashboard.components.snapshot_cache import SnapshotLRU
from geo import mapdata
from geo.errors import OnemapError
from layers.base import LayerSpec
from layers.registry import LAYERS

OVERLAYS: dict[str, Callable[[dict[str, str]], str]] = {}
_URL_ANSWERS = SnapshotLRU(256, name="GeoJSON per URL")  # per snapshot, within cache_max_mb
GEOJSON = "application/geo+json; charset=utf-8"


ANSWER_PARAMS: tuple[str, ...] = ("bbox", "zoom", "f", "start", "end", "level", "fields")
"""Query parameters an answer depends on: the cache key holds these only, so a URL with made-up
parameters (or another ``v``: answers are kept per snapshot anyway) shares the answer."""


def _cached(make: Callable[[], str]) -> str:
    args = flask.request.args
    key = (flask.request.path, *((k, args.get(k)) for k in ANSWER_PARAMS if k in args))
    return _URL_ANSWERS.get(key, make)


def _geojson(text: str) -> flask.Response:
    resp = flask.Response(text, mimetype="application/geo+json")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _bad_request(exc: Exception) -> flask.Response:
    return flask.Response(flask.json.dumps({"error": str(exc)}, ensure_ascii=False), status=400,
                          mimetype="application/json")


DATE_PARAMS: tuple[str, ...] = ("start", "end")
"""Query parameters that are dates on every route (a time window ``[start, end)``)."""
MAX_ID_CHARS: int = 200
"""Longest feature id a popup URL may carry (stored ids are content hashes or register numbers)."""


def layer_spec(name: str, geometry: str | None = None) -> LayerSpec:
    """The spec of the layer named in a URL (BadInput naming the known layers, or the geometry wanted)."""
    spec = LAYERS.get(name)
    if spec is None:
        raise BadInput(f"unknown layer {name[:60]!r}; known layers: {', '.join(LAYERS)}")
    if geometry is not None and spec.geometry != geometry:
        known = [n for n, s in LAYERS.items() if s.geometry == geometry]
        raise BadInput(f"layer {name!r} is not a {geometry} layer; {geometry} layers: {', '.join(known)}")
    return spec


def _polygon_where(spec: LayerSpec, level: str | None) -> tuple[str | None, list[Any] | None]:
    """The SQL condition of a ``level`` parameter (one of the level field's choices)."""
    if not level or "level" not in spec.field_names:
        return None, None
    choices = spec.field("level").choices
    if choices and level not in choices:
        raise BadInput(f"level must be one of {list(choices)} for layer {spec.name!r}, got {level[:60]!r}")
    return "level = ?", [level]


def overlay_args(args: Mapping[str, str]) -> dict[str, str]:
    """An overlay's query parameters, each checked before the page's overlay sees it: at most
    ``mapdata.MAX_PARAM_CHARS`` characters, ``start``/``end`` ISO dates (``mapdata.parse_date``, as
    on every route), and one that is JSON (``[``/``{``) within ``mapdata.parse_json_param``'s bounds
    (BadInput naming the parameter otherwise)."""
    out = {}
    for key, value in args.items():
        if len(value) > mapdata.MAX_PARAM_CHARS:
            raise BadInput(f"parameter {key[:40]} is {len(value):,} characters long; at most {mapdata.MAX_PARAM_CHARS:,}")
        if key in DATE_PARAMS:
            mapdata.parse_date(value, key)
        elif value.lstrip()[:1] in ("[", "{"):
            mapdata.parse_json_param(value, key[:40])
        out[key] = value
    return out


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
            return _bad_request(OnemapError(f"unknown overlay {name[:60]!r}; known: {sorted(OVERLAYS)}"))
        args = overlay_args(flask.request.args)
        try:
            return _geojson(make(args))
        except (OnemapError, ValueError) as exc:
            return _bad_request(exc)

    @server.route("/api/empty.geojson")
    def empty() -> flask.Response:
        return _geojson(mapdata.EMPTY)

    @server.route("/api/layer/<layer>/<want>.geojson")
    def layer_data(layer: str, want: str) -> flask.Response:
        try:
            layer_spec(layer, "point")
            if want not in ("hex", "points"):
                raise BadInput(f"unknown view {want[:40]!r}; use hex or points")
            args = flask.request.args
            bbox = mapdata.bbox_to_wgs84(mapdata.parse_bbox(args.get("bbox")), context.settings().tiles)
            flt = scope.map_filter(mapdata.MapFilter.parse(args.get("f"), args.get("start"), args.get("end")),
                                   layer=layer)
            zoom = mapdata.parse_zoom(args.get("zoom"))
            mask = scope.mask_fields(layer)

            def make() -> str:
                with context.connection() as con:
                    return mapdata.layer_view(con, layer, bbox, zoom, context.settings(), flt, want=want,
                                              by_class=True, mask=mask).geojson

            return _geojson(_cached(make))
        except (OnemapError, KeyError) as exc:
            return _bad_request(exc)

    @server.route("/api/polygons/<layer>.geojson")
    def polygons(layer: str) -> flask.Response:
        try:
            spec = layer_spec(layer, "polygon")
            where, params = _polygon_where(spec, flask.request.args.get("level"))
            view = flask.request.args.get("fields", "all")
            if view not in ("all", "map", "outlines"):
                raise OnemapError(f"fields must be 'all', 'map' or 'outlines', got {view[:40]!r}")
            fields, ndigits = (mapdata.map_fields(spec), 5) if view in ("map", "outlines") else (None, 6)
            tsql, tparams = mapdata.town_sql(spec, scope.towns())
            where, params = (f"({where}) AND {tsql}" if where else tsql), [*(params or []), *tparams]
            mask = scope.mask_fields(layer)

            def make() -> str:
                with context.connection() as con:
                    return mapdata.polygon_features(con, layer, context.settings().tiles, where=where, params=params,
                                                    fields=fields, ndigits=ndigits, merged=view == "outlines",
                                                    mask=mask)

            return _geojson(_cached(make))
        except (OnemapError, KeyError) as exc:
            return _bad_request(exc)

    @server.route("/api/roads.geojson")
    def roads() -> flask.Response:
        try:
            settings = context.settings()
            bbox = mapdata.bbox_to_wgs84(mapdata.parse_bbox(flask.request.args.get("bbox")), settings.tiles)
            zoom = mapdata.parse_zoom(flask.request.args.get("zoom"))

            def make() -> str:
                with context.connection() as con:
                    return mapdata.road_features(con, bbox, zoom, settings)

            return _geojson(_cached(make))
        except OnemapError as exc:
            return _bad_request(exc)

    @server.route("/api/feature/<layer>/<path:feature_id>")
    def feature(layer: str, feature_id: str) -> flask.Response:
        lang = "en" if flask.request.args.get("lang") == "en" else "zh"
        spec = layer_spec(layer)
        if len(feature_id) > MAX_ID_CHARS:
            raise BadInput(f"feature id is {len(feature_id):,} characters long; ids are at most {MAX_ID_CHARS}")
        try:
            with context.connection() as con:  # out of scope: the same 404 as a missing id
                rows = mapdata.feature_details(con, layer, feature_id, lang, towns=scope.towns(),
                                               mask=scope.mask_fields(layer))
            return flask.jsonify({"title": spec.label(lang), "rows": rows})
        except (OnemapError, KeyError) as exc:
            return flask.Response(flask.json.dumps({"error": str(exc)}), status=404, mimetype="application/json")
