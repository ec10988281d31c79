"""The map of every page, built from the layer specs (no layer is named here).

Each point layer becomes two dash-leaflet GeoJSON layers fed by URLs (see ``routes``):
H3 hexagons (low zoom / dense view) and clustered points (supercluster), inside one
toggle of the layers control. Styles, popups and tooltips are JS functions in
``assets/onemap_map.js`` reading ``hideout``; a clientside callback turns the viewport,
the filters and the snapshot version into URLs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import dash_leaflet as dl
import duckdb
import numpy as np
from dash import ClientsideFunction, Input, Output, State, clientside_callback, dcc, html
from dash_extensions.javascript import Namespace

from dashboard.components import deferred, inputs, palettes
from dashboard.i18n import t
from geo import mapdata, store
from geo.errors import ValidationError
from geo.mapdata import BBox
from geo.settings import Settings
from layers.base import LayerSpec
from layers.registry import LAYERS

NS = Namespace("onemap", "map")
# Leaflet panes (name, z-index): roads under hexagons under outlines under overlays under points.
# Each pane has its own canvas (a layer that changes redraws only its own); the topmost, the
# points', receives every mouse event and hit-tests the features of all of them
# (assets/onemap_map.js), so hover reaches hexagons, grids and boundaries too.
PANES: dict[str, tuple[str, int]] = {
    "roads": ("om-roads", 310), "hex": ("om-hex", 350), "polygons": ("om-polygons", 380),
    "overlay": ("om-overlay", 400), "points": ("om-points", 450),
}
DEFAULT_BOUNDS: BBox = (121.0, 30.9, 121.4, 31.2)


# --------------------------------------------------------------------------- ids


def map_id(page: str) -> str:
    """Id of a page's dl.Map."""
    return f"{page}-map"


def hex_id(page: str, layer: str) -> str:
    """Id of a point layer's hexagon GeoJSON."""
    return f"{page}-hex-{layer}"


def pts_id(page: str, layer: str) -> str:
    """Id of a point layer's (clustered) point GeoJSON."""
    return f"{page}-pts-{layer}"


def point_layer_names() -> list[str]:
    """Point layers of the registry, in registry order (the order of the URL outputs)."""
    return [n for n, s in LAYERS.items() if s.geometry == "point"]


def roads_id(page: str) -> str:
    """Id of the road skeleton's GeoJSON."""
    return f"{page}-roads"


def filters_id(page: str) -> str:
    """Id of the store ``{layer: {"f": {field: [values]}, "start": .., "end": ..}}``."""
    return f"{page}-filters"


def painted_id(page: str) -> str:
    """Id of the store set once the map's boundaries and roads have painted (or after 4 s):
    side panels take it as an input, so they load after the map, never before it."""
    return f"{page}-painted"


def version_id(page: str) -> str:
    """Id of the store holding the snapshot version (changes → layers refetch)."""
    return f"{page}-version"


# --------------------------------------------------------------------------- tiles


def display_bounds(box: BBox, settings: Settings) -> list[list[float]]:
    """A WGS-84 box as Leaflet bounds ``[[south, west], [north, east]]`` in the basemap's CRS."""
    lon, lat = mapdata.to_display(np.array([box[0], box[2]]), np.array([box[1], box[3]]), settings.tiles)
    return [[float(lat[0]), float(lon[0])], [float(lat[1]), float(lon[1])]]


def fit_zoom(box: BBox, width_px: int, height_px: int) -> int:
    """The largest whole zoom at which a box fits a map of about ``width_px`` × ``height_px``.

    Computed on the server so the map opens on the district without a client-side fit.
    """
    w, s, e, n = box
    merc = lambda lat: np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))  # noqa: E731
    zx = np.log2(width_px * 360.0 / (256.0 * max(e - w, 1e-6)))
    zy = np.log2(height_px * 2 * np.pi / (256.0 * max(merc(n) - merc(s), 1e-9)))
    return int(max(1, min(18, np.floor(min(zx, zy)))))


def tile_layers(settings: Settings) -> list[Any]:
    """Basemap tile layers for ``Settings.tiles`` (none → no tiles: the offline default)."""
    kind = settings.tiles
    if kind in ("none", "", None):
        return []
    if kind == "osm":
        return [dl.TileLayer(url="https://tile.openstreetmap.org/{z}/{x}/{y}.png", maxZoom=19,
                             attribution="© OpenStreetMap contributors")]
    if kind == "tianditu":
        key = settings.tianditu_key
        base = "https://t{s}.tianditu.gov.cn/DataServer?T=%s&x={x}&y={y}&l={z}&tk=" + key
        subs = "01234567"
        return [dl.TileLayer(url=base % "vec_w", subdomains=subs, maxZoom=18, attribution="© 天地图"),
                dl.TileLayer(url=base % "cva_w", subdomains=subs, maxZoom=18)]
    if kind == "amap":
        return [dl.TileLayer(
            url="https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}",
            subdomains="1234", maxZoom=18, attribution="© 高德地图")]
    url = settings.tiles_url if kind == "local" else kind
    if "{z}" in url:
        return [dl.TileLayer(url=url, maxZoom=20)]
    return []


# --------------------------------------------------------------------------- opening view


def opening_view(bounds: BBox | None, settings: Settings, size_hint: tuple[int, int]
                 ) -> tuple[list[float], int, list[list[float]]]:
    """Centre ``[lat, lon]``, zoom and Leaflet bounds ``[[s, w], [n, e]]`` (display CRS) the map opens on."""
    (s, w), (n, e) = display_bounds(bounds or DEFAULT_BOUNDS, settings)
    return [(s + n) / 2, (w + e) / 2], fit_zoom((w, s, e, n), *size_hint), [[s, w], [n, e]]


def _js_fixed4(x: float) -> str:
    return f"{x:.4f}"


def _uri(text: str) -> str:
    """``encodeURIComponent`` of JavaScript."""
    return quote(text, safe="!~*'()")


def view_query(leaflet_bounds: list[list[float]], zoom: float, version: int) -> str:
    """``bbox=..&zoom=..&v=..`` of a view: the viewport padded by 10 % on each side, 4 decimals.

    The same text as ``layerUrls`` in ``assets/onemap_map.js`` builds in the browser (a test
    checks they agree), so a URL the server puts in the layout is the URL the browser asks for.
    """
    (s, w), (n, e) = leaflet_bounds
    pad_x, pad_y = (e - w) * 0.1, (n - s) * 0.1
    box = ",".join(_js_fixed4(v) for v in (w - pad_x, s - pad_y, e + pad_x, n + pad_y))
    return f"bbox={box}&zoom={round(zoom)}&v={version or 0}"


def layer_url(layer: str, want: str, query: str, entry: dict[str, Any] | None = None) -> str:
    """URL of a point layer's hexagons or points for a view and one entry of the filter store."""
    entry = entry or {}
    q = query
    if entry.get("f"):
        q += "&f=" + _uri(json.dumps(entry["f"], ensure_ascii=False, separators=(",", ":")))
    if entry.get("start"):
        q += "&start=" + _uri(str(entry["start"]))
    if entry.get("end"):
        q += "&end=" + _uri(str(entry["end"]))
    return f"/api/layer/{layer}/{want}.geojson?{q}"


def opening_urls(page: str, settings: Settings, bounds: BBox | None, *, visible: Iterable[str],
                 filters: dict[str, Any] | None = None, version: int = 0,
                 size_hint: tuple[int, int] = (1400, 900)) -> dict[str, str]:
    """Component id → URL of every data layer the map fetches as it opens (checked layers only).

    The layout carries these URLs (no callback runs before the first fetch) and the page's
    HTML preloads them (``dashboard.app``), so the data arrives while the scripts load.
    """
    shown = set(visible)
    _, zoom, initial = opening_view(bounds, settings, size_hint)
    query = view_query(initial, zoom, version)
    urls = {roads_id(page): f"/api/roads.geojson?{query}"}
    for name, spec in LAYERS.items():
        if name not in shown:
            continue
        if spec.geometry == "polygon":
            urls[f"{page}-poly-{name}"] = polygon_url(name)
        elif spec.geometry == "point":
            entry = (filters or {}).get(name)
            urls[hex_id(page, name)] = layer_url(name, "hex", query, entry)
            urls[pts_id(page, name)] = layer_url(name, "points", query, entry)
    return urls


# --------------------------------------------------------------------------- layers


def _polygon_hideout(spec: LayerSpec, dark: bool) -> dict[str, Any]:
    style = spec.style.as_leaflet()
    style.pop("radius", None)
    if dark:
        style["color"] = "#9fb3c8" if spec.style.fill_opacity == 0 else "#5b8db8"
    # Draw rank within the outlines pane: a layer of higher z_order above (grids over boundaries);
    # hover rank below everything else (assets/onemap_map.js), so a hexagon or a zone over a grid
    # shows its own tooltip and the grid's shows where nothing else is.
    rank = PANES["polygons"][1] + spec.z_order / 1000
    hideout: dict[str, Any] = {"style": style, "layer": spec.name, "probe": f"poly-{spec.name}",
                               "rank": rank, "hit": rank - 1000}
    if "level" in spec.field_names and spec.field("level").choices:
        # Coarser levels (first in the spec's choices) draw thicker.
        choices = spec.field("level").choices or ()
        base = float(spec.style.weight)
        hideout["weightBy"] = "level"
        hideout["weights"] = {c: round(base * (len(choices) - i) / 1.5, 2) for i, c in enumerate(choices)}
    return hideout


def point_hideout(spec: LayerSpec, lang: str, dark: bool = False, color_by: str | None = None) -> dict[str, Any]:
    """Style parameters of a point layer read by the JS functions (change → restyle only)."""
    field = color_by if color_by is not None else spec.style.color_by
    colors = dict(spec.style.colors) if field == spec.style.color_by else {}
    if field and not colors:
        choices = spec.field(field).choices or ()
        colors = palettes.categorical(list(choices))
    return {
        "layer": spec.name, "probe": f"pts-{spec.name}", "rank": PANES["points"][1], "lang": lang,
        "color": spec.style.color,
        "colorBy": field or None,
        "colors": colors, "radius": spec.style.radius + (3 if dark else 1.5), "dark": dark,
        "stroke": "#0b1220" if dark else "#ffffff", "loading": t("popup_loading", lang),
        "failed": t("popup_error", lang),
    }


def hex_hideout(spec: LayerSpec, lang: str, dark: bool = False) -> dict[str, Any]:
    """Style parameters of a layer's hexagons."""
    return {"layer": spec.name, "probe": f"hex-{spec.name}", "palette": palettes.hex_ramp(dark), "opacity": 0.75 if dark else 0.65,
            "stroke": spec.style.color if not dark else "#0b1220", "weight": 0.5,
            "tooltip": spec.label(lang) + " · " + t("hex_tooltip", lang)}


def point_layer(page: str, spec: LayerSpec, lang: str, dark: bool, cluster: bool = True,
                urls: dict[str, str] | None = None) -> list[Any]:
    """The hexagon and (clustered) point GeoJSON of one point layer (``urls``: opening URLs by id)."""
    urls = urls or {}
    return [
        dl.GeoJSON(id=hex_id(page, spec.name), url=urls.get(hex_id(page, spec.name)), style=NS("hexStyle"), pane=PANES["hex"][0],
                   eventHandlers={"mouseover": NS("hoverHex"), "mousemove": NS("hoverHex")}, hideout=hex_hideout(spec, lang, dark)),
        dl.GeoJSON(id=pts_id(page, spec.name), url=urls.get(pts_id(page, spec.name)), cluster=cluster, pane=PANES["points"][0],
                   zoomToBoundsOnClick=True, superClusterOptions={"radius": 60, "maxZoom": 16},
                   pointToLayer=NS("pointToLayer"), clusterToLayer=NS("clusterToLayer"),
                   eventHandlers={"mouseover": NS("hoverPoint"), "click": NS("clickPoint")},
                   hideout=point_hideout(spec, lang, dark)),
    ]


def polygon_url(layer: str) -> str:
    """URL of a polygon layer's map outlines (id, name, level; coordinates to ~1 m: the tooltip and
    the style need no more, and the other fields stay on the server), merged into one MultiPolygon
    per level (a handful of paths to build and draw; the tooltip finds the polygon under the pointer)."""
    return f"/api/polygons/{layer}.geojson?fields=outlines"


def polygon_layer(page: str, spec: LayerSpec, dark: bool) -> dl.GeoJSON:
    """A polygon layer (boundaries, grids) fetched once per page load."""
    return dl.GeoJSON(id=f"{page}-poly-{spec.name}", url=polygon_url(spec.name), pane=PANES["polygons"][0],
                      style=NS("polygonStyle"),
                      eventHandlers={"mouseover": NS("hoverPolygon"), "mousemove": NS("hoverPolygon")},
                      hideout=_polygon_hideout(spec, dark))


def roads_layer(page: str, dark: bool, url: str | None = None) -> dl.GeoJSON:
    """The road skeleton (drawn from the DB so the map reads without tiles)."""
    hideout = ({"major": "#5c6b7a", "minor": "#2c3848"} if dark else {"major": "#9a9a9a", "minor": "#d4d4d4"})
    hideout["probe"] = "roads"
    return dl.GeoJSON(id=roads_id(page), url=url, style=NS("roadStyle"), hideout=hideout,
                      pane=PANES["roads"][0],
                      interactive=False)


ROAD_EDGES = "road_edges"


def layer_counts(con: duckdb.DuckDBPyConnection, towns: Sequence[str] | None = None) -> dict[str, int]:
    """Rows per layer (of ``towns`` only when given: ``mapdata.town_sql``; decides defaults: which
    layers are checked and clustered), and of ``road_edges`` (whether the road skeleton has anything to draw)."""
    if towns is None:
        counts = store.table_counts(con)
    else:
        counts = {}
        for name, spec in LAYERS.items():
            where, params = mapdata.town_sql(spec, towns)
            counts[name] = int(con.execute(f"SELECT count(*) FROM {name} WHERE {where}", params).fetchone()[0])
    counts[ROAD_EDGES] = int(con.execute(f"SELECT count(*) FROM {ROAD_EDGES}").fetchone()[0])
    return counts


def opening_probes(shown: Iterable[str], counts: Mapping[str, int] | None) -> list[str]:
    """Render probes of the opening layers whose first paint opens the page's side panels:
    the shown polygon layers and the roads, those with something to draw (``counts``; all
    when unknown). An empty layer never paints, and must not hold the panels back."""
    shown = set(shown)
    probes = [f"poly-{n}" for n, sp in sorted(LAYERS.items(), key=lambda kv: kv[1].z_order)
              if sp.geometry == "polygon" and n in shown and (counts is None or counts.get(n, 0) > 0)]
    if counts is None or counts.get(ROAD_EDGES, 0) > 0:
        probes.append("roads")
    return probes


def default_visible(counts: dict[str, int], settings: Settings) -> list[str]:
    """Layers checked by default: polygons, sparse point layers (at most ``cluster_min_points``
    rows: stations, water sources) and the densest event layer (sorted by time: hazards).

    Several dense layers as overlapping hexagons would hide each other; the rest stays one
    click away in the layers control.
    """
    shown = [n for n, s in LAYERS.items() if s.geometry == "polygon"
             or (s.geometry == "point" and counts.get(n, 0) <= settings.cluster_min_points)]
    events = [n for n, s in LAYERS.items() if s.geometry == "point" and s.sort_by and n not in shown]
    if events:
        shown.append(max(events, key=lambda n: counts.get(n, 0)))
    return shown


def clustered(counts: dict[str, int], settings: Settings) -> list[str]:
    """Point layers with more than ``cluster_min_points`` rows (sparse ones show every point)."""
    return [n for n, s in LAYERS.items() if s.geometry == "point" and counts.get(n, 0) > settings.cluster_min_points]


def legend(specs: Iterable[LayerSpec], lang: str, dark: bool = False, extra: Sequence[Any] = ()) -> html.Div:
    """A legend built from the layer specs' styles, the hexagon ramp and page-specific rows."""
    rows: list[Any] = [html.Div(t("legend", lang), className="om-legend-title")]
    for spec in specs:
        if spec.geometry == "polygon":
            style = spec.style
            rows.append(html.Div([html.Span(className="om-sw-line", style={
                "borderColor": style.color, "borderStyle": "dashed" if style.dash_array else "solid"}),
                spec.label(lang)], className="om-legend-row"))
            continue
        if spec.style.color_by and spec.style.colors:
            field = spec.field(spec.style.color_by)
            for value, colour in spec.style.colors.items():
                rows.append(html.Div([html.Span(className="om-sw-dot", style={"background": colour}),
                                      f"{spec.label(lang)} · {_value_label(field.name, value, lang, spec)}"],
                                     className="om-legend-row"))
        else:
            rows.append(html.Div([html.Span(className="om-sw-dot", style={"background": spec.style.color}),
                                  spec.label(lang)], className="om-legend-row"))
    rows.append(html.Div([html.Div([html.Span(className="om-sw-hex", style={"background": c})
                                    for c in palettes.hex_ramp(dark)], className="om-ramp"),
                          t("legend_hex", lang)], className="om-legend-row om-legend-ramp"))
    rows.extend(extra)
    return html.Div(rows, className="om-legend" + (" om-legend-dark" if dark else ""))


def _value_label(field: str, value: str, lang: str, spec: LayerSpec) -> str:
    if field == "inspection_class":
        return f"{spec.field_label(field, lang)} {value}"
    return value


def map_panel(
    page: str,
    lang: str,
    settings: Settings,
    bounds: BBox | None,
    *,
    visible: Iterable[str] | None = None,
    clustered_layers: Iterable[str] | None = None,
    filters: dict[str, Any] | None = None,
    dark: bool = False,
    overlays: Sequence[Any] = (),
    legend_extra: Sequence[Any] = (),
    map_kwargs: dict[str, Any] | None = None,
    size_hint: tuple[int, int] = (1400, 900),
    version: int = 0,
    counts: Mapping[str, int] | None = None,
) -> html.Div:
    """A page's map: tiles, roads, every layer of the registry (``visible`` ones checked),
    page overlays (coverage, hotspots, dispatch), a layers control and a legend (drawn once
    the map has painted). ``counts``: rows per layer (``layer_counts``), so that empty layers
    do not hold back the page's side panels."""
    shown = set(visible) if visible is not None else set(LAYERS)
    clustered = set(clustered_layers) if clustered_layers is not None else set(LAYERS)
    specs = sorted(LAYERS.values(), key=lambda s: s.z_order)
    urls = opening_urls(page, settings, bounds, visible=shown, filters=filters, version=version, size_hint=size_hint)
    overlays_control: list[Any] = []
    for spec in specs:
        children = ([polygon_layer(page, spec, dark)] if spec.geometry == "polygon"
                    else point_layer(page, spec, lang, dark, cluster=spec.name in clustered, urls=urls))
        overlays_control.append(dl.Overlay(dl.LayerGroup(children), name=spec.label(lang),
                                           checked=spec.name in shown))
    base = tile_layers(settings)
    center, zoom, initial = opening_view(bounds, settings, size_hint)
    kwargs = {"preferCanvas": True, "zoomSnap": 1, "minZoom": 8, "maxZoom": 19}
    kwargs.update(map_kwargs or {})
    the_map = dl.Map(
        id=map_id(page),
        center=center,
        zoom=zoom,
        children=[*[dl.Pane(name=name, style={"zIndex": z}) for name, z in PANES.values()],
                  *base, roads_layer(page, dark, urls[roads_id(page)]), dl.LayersControl(overlays_control, position="topright", id=f"{page}-layers",
                                                               overlays=[LAYERS[n].label(lang) for n in shown if n in LAYERS]),
                  *overlays, dl.ScaleControl(position="bottomleft", imperial=False)],
        className="om-map" + (" om-map-dark" if dark else ""),
        style={"width": "100%", "height": "100%"},
        **kwargs,
    )
    return html.Div([
        the_map,
        *_deferred_legend(page, legend([sp for sp in specs if sp.name in shown], lang, dark, legend_extra)),
        dcc.Store(id=filters_id(page), data=filters or {}),
        dcc.Store(id=version_id(page), data=version),  # the snapshot the page was built on: no refetch at start
        dcc.Store(id=f"{page}-initial-bounds", data=initial),
        # the URLs the layout opened with: layerUrls sends a layer's URL only when it differs
        dcc.Store(id=f"{page}-opening-urls", data=_url_keys(page, urls)),
        dcc.Store(id=f"{page}-point-layers", data=point_layer_names()),
        dcc.Store(id=f"{page}-overlay-names", data={name: spec.label(lang) for name, spec in LAYERS.items()}),
        # the data layers whose first paint opens the gate for the page's side panels
        dcc.Store(id=f"{page}-probes", data=opening_probes(shown, counts)),
        dcc.Store(id=painted_id(page), data=None),
    ], className="om-map-wrap")


def _url_keys(page: str, urls: dict[str, str]) -> dict[str, str]:
    """Opening URLs keyed as ``layerUrls`` knows its outputs: ``hex:<layer>``, ``points:<layer>``, ``roads``."""
    out = {"roads": urls[roads_id(page)]}
    for name in point_layer_names():
        for want, cid in (("hex", hex_id(page, name)), ("points", pts_id(page, name))):
            if cid in urls:
                out[f"{want}:{name}"] = urls[cid]
    return out


def check_filters(value: Any, where: str) -> None:
    """What the filter store (``filters_id``) takes: ``{point layer: {"f": {field: [values]}, "start", "end"}}``
    with the fields of the layer's spec, lists of plain values and ISO dates (raises ``inputs.BadInput``)."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise inputs.fail(where, "an object of point layer: filter", value)
    for layer, entry in value.items():
        if layer not in point_layer_names() or not isinstance(entry, dict) or set(entry) - {"f", "start", "end"}:
            raise inputs.fail(where, f"filters of the point layers {point_layer_names()} as "
                                     '{"f": {field: [values]}, "start": date, "end": date}', {layer: entry})
        try:
            fields = entry.get("f") or {}
            if not isinstance(fields, dict):
                raise ValidationError(f"filter f of {layer} must be an object of field: [values]")
            flt = mapdata.MapFilter.parse(json.dumps(fields, ensure_ascii=False) if fields else None,
                                          entry.get("start"), entry.get("end"))
            mapdata.filter_sql(LAYERS[layer], flt)
        except (ValidationError, TypeError) as exc:
            raise inputs.BadInput(f"{where}: {exc}") from None


def register_map_callbacks(page: str) -> None:
    """Clientside: viewport, checked overlays, filters and snapshot version → layer URLs
    (no server round trip; unchecked layers fetch nothing). Not at start: the layout carries
    the opening URLs (``opening_urls``), so no callback stands between the page and its data.
    Server callbacks reading the page's filter store get it checked (``check_filters``)."""
    inputs.expect(filters_id(page), "data", check_filters)
    names = point_layer_names()
    clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="layerUrls"),
        *[Output(hex_id(page, n), "url") for n in names],
        *[Output(pts_id(page, n), "url") for n in names],
        Output(roads_id(page), "url"),
        Input(map_id(page), "bounds"),
        Input(map_id(page), "zoom"),
        Input(filters_id(page), "data"),
        Input(version_id(page), "data"),
        Input(f"{page}-layers", "overlays"),
        State(f"{page}-point-layers", "data"),
        State(f"{page}-initial-bounds", "data"),
        State(f"{page}-overlay-names", "data"),
        State(f"{page}-opening-urls", "data"),
        prevent_initial_call=True,
    )
    clientside_callback(
        ClientsideFunction(namespace="onemap", function_name="afterMapPaint"),
        Output(painted_id(page), "data"),
        Input(f"{page}-probes", "data"),
        State(f"{page}-probes", "data"),
    )
    deferred.register(legend_id(page), painted_id(page))


def legend_id(page: str) -> str:
    """Id of the map legend's box (filled once the map has painted)."""
    return f"{page}-legend"


def _deferred_legend(page: str, box: html.Div) -> list[Any]:
    """The legend ``box`` as a deferred box: its rows come once the map has painted."""
    return deferred.after_paint(legend_id(page), box.children, box.className)
