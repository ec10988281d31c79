"""``/plan`` 规划分析: coverage, blind spots, what-if stations, siting, filters, export.

Thin callbacks: parse the inputs, call ``geo.coverage`` / ``geo.water`` / ``geo.siting`` /
``geo.mapdata``, serialise. What-if edits are a list in a ``dcc.Store``; the engine of the
browser session applies new edits incrementally (``engines.scenario``).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from typing import Any

import dash
import dash_leaflet as dl
import numpy as np
import pandas as pd
from dash import ALL, ClientsideFunction, Input, Output, State, callback, ctx, dcc, html

from dashboard.access import actions, scope
from dashboard.components import context, deferred, engines, inputs, mapview, palettes, preload, routes
from dashboard.components.chrome import navbar, note, panel, table
from dashboard.components.page_start import page_start
from dashboard.i18n import lang_of, t
from geo import coverage, jsonsafe, mapdata, siting
from geo.export import csv_text
from geo.errors import OnemapError
from geo.settings import Settings
from layers.registry import LAYERS, get_spec

PAGE = "plan"
PATH = "/plan"
dash.register_page(__name__, path=PATH, name="规划分析", title="一图作战 · 规划分析")

RESPONDERS: tuple[str, ...] = tuple(n for n in ("micro_station", "fire_station") if n in LAYERS)
FIGURES: tuple[tuple[str, str], ...] = (
    ("area_share", "reach_area"), ("places_share", "reach_places"), ("weight_share", "reach_weight"),
)
NS = mapview.NS
# Side panels whose controls (dropdowns, date pickers and their lazy bundles) come once the map
# has painted (``deferred``); the responder and what-if controls, which map clicks use, come at once.
SUGGEST_BOX, TOOLS_BOX = "plan-side-suggest", "plan-side-tools"
EMPTY_FC: dict[str, Any] = {"type": "FeatureCollection", "features": []}
OVERLAY_CHOICES: tuple[str, ...] = ("iso", "firstdue", "blind")
MAX_SITES: int = 50
"""Most new sites one "suggest" asks the greedy covering for (the number input's maximum)."""
MAX_EDITS: int = 500
"""Most what-if edits one session carries (each is a bounded Dijkstra when replayed)."""
MAX_NAME: int = 200
"""Longest station id or name in a what-if edit."""


def _point_layers() -> list[str]:
    return [n for n, s in LAYERS.items() if s.geometry == "point"]


def _filter_fields(layer: str) -> list[str]:
    return [f.name for f in get_spec(layer).fields if f.choices]


def map_options() -> dict[str, Any]:
    """How the planner's map opens (shared by the layout and the HTML preload)."""
    settings, bounds, _ = page_start()
    return {"settings": settings, "bounds": bounds, "version": context.version(), "size_hint": (1500, 1030),
            "visible": [n for n, s in LAYERS.items() if s.geometry == "polygon" or n in RESPONDERS]}


def opening_urls(_args: dict[str, str]) -> list[str]:
    """The data URLs the planner's map opens with: layers and the first responder type's isochrones."""
    options = map_options()
    urls = list(mapview.opening_urls(PAGE, **options).values())
    if RESPONDERS:
        urls.append(iso_url(RESPONDERS[0], list(options["settings"].isochrone_minutes)))
    return urls


def layout(lang: str = "zh", **_: Any) -> html.Div:
    """Side bar (responder type, overlays, filters, what-if, siting, worst places, export) and map."""
    lang = lang_of(lang)
    options = map_options()
    settings, counts = options["settings"], page_start()[2]
    minutes = list(settings.isochrone_minutes)
    responder0 = RESPONDERS[0] if RESPONDERS else None
    the_map = mapview.map_panel(
        PAGE, lang, **options, clustered_layers=mapview.clustered(counts, settings), counts=counts,
        overlays=[
            dl.GeoJSON(id="plan-blind", data=EMPTY_FC, style=NS("zoneStyle"), pane=mapview.PANES["overlay"][0],
                       hideout={"color": palettes.BLIND, "opacity": 0.45, "weight": 0, "probe": "plan-blind"}),
            dl.GeoJSON(id="plan-firstdue", data=EMPTY_FC, style=NS("zoneStyle"), eventHandlers={"mouseover": NS("hoverZone")},
                       pane=mapview.PANES["overlay"][0],
                       hideout={"palette": list(palettes.OKABE_ITO[:7]), "opacity": 0.25, "weight": 1.5, "probe": "plan-firstdue",
                                "labelKey": "name"}),
            dl.GeoJSON(id="plan-iso", url=iso_url(responder0, minutes) if responder0 else None, style=NS("zoneStyle"), eventHandlers={"mouseover": NS("hoverZone")},
                       pane=mapview.PANES["overlay"][0],
                       hideout={"probe": "plan-iso", "key": "minutes", "colors": palettes.isochrone_colors(minutes), "opacity": 0.18,
                                "weight": 2, "labelKey": "minutes", "labelSuffix": " " + t("minutes", lang)}),
            dl.GeoJSON(id="plan-sites", data=EMPTY_FC, pointToLayer=NS("sitePoint"), hideout={"title": t("suggest", lang)}),
            dl.LayerGroup(id="plan-scenario", children=[]),
        ],
        legend_extra=[
            html.Div([html.Span(className="om-sw-box", style={"background": palettes.BLIND}), t("blind_spots", lang)],
                     className="om-legend-row"),
            *[html.Div([html.Span(className="om-sw-box", style={"background": c, "opacity": 0.6}),
                        f"{m} {t('minutes', lang)}"], className="om-legend-row")
              for m, c in palettes.isochrone_colors(minutes).items()],
            html.Div([html.Span(className="om-sw-dot", style={"background": palettes.NEW_STATION}), t("new_station", lang)],
                     className="om-legend-row"),
        ],
    )
    layer_opts = [{"label": get_spec(n).label(lang), "value": n} for n in _point_layers()]
    first = "hazard" if "hazard" in LAYERS else _point_layers()[0]
    side = [
        panel(t("responder_type", lang), [
            dcc.RadioItems(id="plan-responder", value=RESPONDERS[0] if RESPONDERS else None, inline=True,
                           options=[{"label": get_spec(n).label(lang), "value": n} for n in RESPONDERS]),
            html.Div(t("coverage_overlay", lang), className="om-row"),
            dcc.Checklist(id="plan-overlays", value=["iso"], inline=True, options=[
                {"label": t(label, lang), "value": value}
                for value, label in zip(OVERLAY_CHOICES, ("isochrones", "first_due", "blind_spots"), strict=True)]),
            dcc.Checklist(id="plan-minutes", value=minutes, inline=True,
                          options=[{"label": f"{m:g} {t('minutes', lang)}", "value": m} for m in minutes]),
            html.Div(id="plan-mode", className="om-note"),
        ]),
        panel(t("whatif", lang), [
            html.Div(t("whatif_help", lang), className="om-note"),
            html.Div([html.Button(t("whatif_add", lang), id="plan-add-mode", className="om-btn", n_clicks=0),
                      html.Button(t("whatif_remove", lang), id="plan-remove", className="om-btn om-btn-danger", n_clicks=0),
                      html.Button(t("whatif_reset", lang), id="plan-reset", className="om-btn", n_clicks=0)],
                     className="om-row"),
            html.Div(id="plan-selected", className="om-row"),
            html.Div(id="plan-figures"),
        ], panel_id="plan-whatif"),
        *deferred.after_paint(SUGGEST_BOX, [panel(t("suggest", lang), [
            html.Div([html.Label(t("suggest_k", lang)),
                      dcc.Input(id="plan-k", type="number", min=1, max=MAX_SITES, value=3, style={"width": "70px"}),
                      html.Button(t("suggest_run", lang), id="plan-suggest", className="om-btn", n_clicks=0)],
                     className="om-row"),
            html.Div(id="plan-sites-box"),  # tables are created when filled: DataTable loads after the map
        ])], "om-deferred"),
        panel(t("worst_uncovered", lang), html.Div(id="plan-worst-box")),
        *deferred.after_paint(TOOLS_BOX, [panel(t("filters", lang), [
            html.Div([html.Label(t("filter_layer", lang)),
                      dcc.Dropdown(id="plan-f-layer", options=layer_opts, value=first, clearable=False,
                                   style={"width": "200px"})], className="om-row"),
            html.Div(id="plan-f-fields"),
            html.Div([html.Label(t("filter_time", lang)),
                      dcc.DatePickerRange(id="plan-f-dates", display_format="YYYY-MM-DD")], className="om-row"),
            html.Div([html.Label(t("color_by", lang)), dcc.Dropdown(id="plan-colorby", clearable=True,
                                                                     style={"width": "200px"})], className="om-row"),
            html.Div([html.Span(id="plan-f-count", className="om-big")], className="om-row"),
        ]),
        panel(t("export", lang), [html.Div([
            html.Button(t("export_geojson", lang), id="plan-export-geojson", className="om-btn", n_clicks=0),
            html.Button(t("export_csv", lang), id="plan-export-csv", className="om-btn", n_clicks=0),
            dcc.Download(id="plan-download")], className="om-row"), html.Div([
            dcc.Input(id="plan-publish-name", type="text", maxLength=actions.MAX_NAME, value="",
                      placeholder=t("publish_name", lang), style={"width": "140px"}),
            html.Button(t("publish", lang), id="plan-publish", className="om-btn", n_clicks=0),
            html.Span(id="plan-publish-msg")], className="om-row")])], "om-deferred"),
    ]
    return html.Div([
        navbar(PATH, lang),
        html.Div([html.Div(side, className="om-side"), html.Div(the_map, className="om-map-col")], className="om-work"),
        dcc.Store(id="plan-lang", data=lang),
        dcc.Store(id="plan-session", data=uuid.uuid4().hex),
        dcc.Store(id="plan-edits", data=[]),
        dcc.Store(id="plan-selection", data=None),
        dcc.Store(id="plan-add-on", data=False),
        dcc.Store(id="plan-applied", data=None),
        dcc.Store(id="plan-iso-sent", data=True),
    ], className="om-page")


# --------------------------------------------------------------------------- filters


@callback(
    Output("plan-f-fields", "children"),
    Output("plan-colorby", "options"),
    Output("plan-colorby", "value"),
    Input("plan-f-layer", "value"),  # runs as the filter panel mounts, after the map has painted
    State("plan-lang", "data"),
)
def filter_fields(layer: str, lang: str):
    """One multi-select per field with allowed values of the chosen layer."""
    lang = lang_of(lang)
    spec = get_spec(layer)
    rows = [html.Div([html.Label(spec.field_label(f, lang), style={"width": "90px"}),
                      dcc.Dropdown(id={"role": "plan-f", "field": f}, multi=True, style={"width": "250px"},
                                   options=[{"label": c, "value": c} for c in (spec.field(f).choices or ())])],
                     className="om-row") for f in _filter_fields(layer)]
    opts = [{"label": spec.field_label(f, lang), "value": f} for f in _filter_fields(layer)]
    return rows, opts, spec.style.color_by


# Filters → the map's filter store in the browser (no server round trip before the map refetches);
# the row count follows from the store in parallel with the map's fetch.
dash.clientside_callback(
    ClientsideFunction(namespace="onemap", function_name="planFilters"),
    Output(mapview.filters_id(PAGE), "data"),
    Input({"role": "plan-f", "field": ALL}, "value"),
    Input("plan-f-dates", "start_date"),
    Input("plan-f-dates", "end_date"),
    State({"role": "plan-f", "field": ALL}, "id"),
    State("plan-f-layer", "value"),
    State(mapview.filters_id(PAGE), "data"),
)


def filtered_count(layer: str, entry: dict[str, Any]) -> int:
    """Rows of ``layer`` passing one filter entry of the map store (once per snapshot and filter)."""
    flt = scope.map_filter(mapdata.MapFilter(dict(entry.get("f") or {}), entry.get("start"), entry.get("end")),
                           layer=layer)
    key = (layer, json.dumps(entry, sort_keys=True, ensure_ascii=False))

    def build() -> int:
        with context.connection() as con:
            return mapdata.count_points(con, layer, None, flt)

    return engines.memo("plan-count", key, build)


@callback(
    Output("plan-f-count", "children"),
    Input(mapview.filters_id(PAGE), "data"),
    Input("plan-f-layer", "value"),  # first count as the filter panel mounts, after the map has painted
    State("plan-lang", "data"),
)
def filter_count(filters: dict[str, Any], layer: str, lang: str):
    """How many rows of the chosen layer pass its filters."""
    n = filtered_count(layer, (filters or {}).get(layer) or {})
    return f"{get_spec(layer).label(lang_of(lang))}: {n:,}"


def _colour_outputs() -> list[Output]:
    return [Output(mapview.pts_id(PAGE, n), "hideout") for n in mapview.point_layer_names()]


@callback(
    *_colour_outputs(),
    Input("plan-colorby", "value"),
    State("plan-f-layer", "value"),
    State("plan-lang", "data"),
    prevent_initial_call=True,
)
def colour_by(field: str | None, layer: str, lang: str):
    """Restyle one layer's points by another field: only ``hideout`` changes, no data is re-sent."""
    if field and field not in _filter_fields(layer):
        raise inputs.BadInput(f"plan-colorby.value {field!r} is not a field of layer {layer!r}; "
                              f"fields: {_filter_fields(layer)}")
    return [mapview.point_hideout(get_spec(n), lang_of(lang), color_by=field or "") if n == layer else dash.no_update
            for n in mapview.point_layer_names()]


# --------------------------------------------------------------------------- what-if edits


def _latlng(click: dict[str, Any] | None) -> tuple[float, float] | None:
    """(lat, lng) of a map click (BadInput when it carries no position in degrees)."""
    if not click:
        return None
    ll = click.get("latlng", click)
    inputs.position(ll, "plan-map.clickData.latlng")
    return (float(ll["lat"]), float(ll["lng"])) if isinstance(ll, dict) else (float(ll[0]), float(ll[1]))


def _clicked_station(feature: dict[str, Any], layer: str) -> dict[str, Any] | None:
    """The selection of a clicked responder point (None for a cluster or a point without id)."""
    props = feature.get("properties") or {}
    if not isinstance(props, dict) or props.get("cluster") or not props.get("id"):
        return None
    where = f"{mapview.pts_id(PAGE, layer)}.clickData"
    geometry = feature.get("geometry")
    coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
    if not (isinstance(coords, list) and len(coords) == 2):
        raise inputs.fail(where, "a point feature with geometry.coordinates [lon, lat]", feature)
    inputs.position([coords[1], coords[0]], where)
    inputs.text(props.get("name"), where + ".properties.name")
    lon_w, lat_w = mapdata.from_display(np.array([coords[0]], dtype=float), np.array([coords[1]], dtype=float),
                                        context.settings().tiles)
    return {"id": str(props["id"])[:MAX_NAME], "name": props.get("name"), "layer": layer,
            "lon": float(lon_w[0]), "lat": float(lat_w[0]), "new": False}


@callback(
    Output("plan-add-on", "data"),
    Output("plan-add-mode", "className"),
    Input("plan-add-mode", "n_clicks"),
    State("plan-add-on", "data"),
    prevent_initial_call=True,
)
def toggle_add(_n: int, on: bool):
    """Toggle "click the map to add a station"."""
    on = not on
    return on, "om-btn active" if on else "om-btn"


@callback(
    Output("plan-selection", "data"),
    *[Input(mapview.pts_id(PAGE, n), "clickData") for n in RESPONDERS],
    Input({"role": "plan-scn", "id": ALL}, "n_clicks"),
    prevent_initial_call=True,
)
def select_station(*_clicks: Any):
    """Clicking an existing responder (or a new one) selects it for moving or removing."""
    trig = ctx.triggered_id
    if isinstance(trig, dict) and trig.get("role") == "plan-scn":
        return {"id": trig["id"], "new": True}
    layer = next((n for n in RESPONDERS if trig == mapview.pts_id(PAGE, n)), None)
    if layer is not None:
        selected = _clicked_station(ctx.triggered[0]["value"] or {}, layer)
        return dash.no_update if selected is None else selected
    return dash.no_update


@callback(
    Output("plan-edits", "data"),
    Output("plan-selection", "data", allow_duplicate=True),
    Input(mapview.map_id(PAGE), "clickData"),
    Input({"role": "plan-scn", "id": ALL}, "position"),
    Input("plan-remove", "n_clicks"),
    Input("plan-reset", "n_clicks"),
    State("plan-edits", "data"),
    State("plan-add-on", "data"),
    State("plan-responder", "value"),
    State("plan-selection", "data"),
    State({"role": "plan-scn", "id": ALL}, "id"),
    prevent_initial_call=True,
)
def edit(click: dict | None, positions: list, _rm: int, _reset: int, edits: list, add_on: bool,
         layer: str, selection: dict | None, scn_ids: list):
    """Map click (add mode) adds; a dragged marker moves; the remove button removes; reset clears."""
    trig = ctx.triggered_id
    edits = list(edits or [])
    tiles = context.settings().tiles
    if trig == "plan-reset":
        return [], None
    if trig == mapview.map_id(PAGE):
        ll = _latlng(click)
        if not add_on or ll is None:
            return dash.no_update, dash.no_update
        lon, lat = mapdata.from_display(np.array([ll[1]]), np.array([ll[0]]), tiles)
        n_new = sum(1 for e in edits if e["action"] == "add") + 1
        new_id = f"new-{n_new}"
        edits.append({"action": "add", "id": new_id, "lon": float(lon[0]), "lat": float(lat[0]), "layer": layer,
                      "name": f"{get_spec(layer).zh}+{n_new}"})
        return edits, {"id": new_id, "new": True}
    if trig == "plan-remove":
        if not selection:
            return dash.no_update, dash.no_update
        edits.append({"action": "remove", "id": selection["id"]})
        return edits, None
    if isinstance(trig, dict) and trig.get("role") == "plan-scn":
        if len(scn_ids or []) != len(positions or []):
            raise inputs.BadInput(f"plan-scn: {len(positions or [])} marker positions for {len(scn_ids or [])} markers")
        pos = dict(zip([i["id"] for i in scn_ids], positions, strict=True)).get(trig["id"])
        if pos is None:
            return dash.no_update, dash.no_update
        lat, lon = (pos[0], pos[1]) if isinstance(pos, list) else (pos["lat"], pos["lng"])
        lon_w, lat_w = mapdata.from_display(np.array([lon]), np.array([lat]), tiles)
        # where the station stands now: its last edit, else (an existing station just selected,
        # whose drag handle has appeared) its stored position
        last = next((e for e in reversed(edits) if e["id"] == trig["id"] and "lon" in e), None)
        if last is None and selection and selection.get("id") == trig["id"] and "lon" in selection:
            last = selection
        if last and abs(last["lon"] - lon_w[0]) < 1e-9 and abs(last["lat"] - lat_w[0]) < 1e-9:
            return dash.no_update, dash.no_update  # marker (re-)rendered at its own position
        edits.append({"action": "move", "id": trig["id"], "lon": float(lon_w[0]), "lat": float(lat_w[0])})
        return edits, dash.no_update
    return dash.no_update, dash.no_update


def _station_positions(edits: list[dict[str, Any]], skip: set[int] | None = None) -> dict[str, dict[str, Any]]:
    """Where each edited station is now (removed ones and refused edits dropped)."""
    out: dict[str, dict[str, Any]] = {}
    for i, e in enumerate(edits):
        if skip and i in skip:
            continue
        if e["action"] in ("add", "move"):
            out[e["id"]] = {**out.get(e["id"], {}), **e}
        elif e["action"] == "remove":
            out.pop(e["id"], None)
    return out


def _figures_table(base: dict[str, Any], now: dict[str, Any], responder: str, lang: str) -> html.Table:
    keys = [("area_share_" + responder, "reach_area"), *FIGURES]
    rows = [html.Tr([html.Th(""), html.Th(t("reach", lang)), html.Th(t("change", lang))])]
    for key, label in keys:
        b, n = base.get(key), now.get(key)
        if n is None:
            continue
        d = (n - b) * 100 if b is not None else 0.0
        name = t(label, lang) + (f" · {get_spec(responder).label(lang)}" if key.endswith(responder) else "")
        cls = "om-up" if d > 0.005 else "om-down" if d < -0.005 else ""
        rows.append(html.Tr([html.Td(name), html.Td(f"{100 * n:.1f}%", id=f"plan-fig-{key}"),
                             html.Td(f"{d:+.2f}", className=cls)]))
    return html.Table(rows, className="om-figs")


def _markers(edits: list, selection: dict | None, session: str) -> list[Any]:
    """Draggable markers of the scenario's stations (and of a selected stored one)."""
    tiles = context.settings().tiles
    markers = []
    for sid, e in _station_positions(edits or [], engines.refused_indices(session)).items():
        lon, lat = mapdata.to_display(np.array([e["lon"]]), np.array([e["lat"]]), tiles)
        selected = bool(selection and selection.get("id") == sid)
        markers.append(dl.DivMarker(
            id={"role": "plan-scn", "id": sid}, position=[float(lat[0]), float(lon[0])], draggable=True,
            iconOptions={"className": "om-station" + (" om-station-selected" if selected else ""),
                         "iconSize": [22, 22], "html": ""},
            eventHandlers={"dragend": NS("dragEnd")}, children=dl.Tooltip(e.get("name") or sid)))
    if selection and not selection.get("new") and selection.get("lon") is not None:
        lon, lat = mapdata.to_display(np.array([selection["lon"]]), np.array([selection["lat"]]), tiles)
        markers.append(dl.DivMarker(
            id={"role": "plan-scn", "id": selection["id"]}, position=[float(lat[0]), float(lon[0])], draggable=True,
            iconOptions={"className": "om-station om-station-selected", "iconSize": [24, 24], "html": ""},
            eventHandlers={"dragend": NS("dragEnd")}, children=dl.Tooltip(selection.get("name") or selection["id"])))
    return markers


@callback(
    Output("plan-figures", "children"),
    Output("plan-scenario", "children"),
    Output("plan-mode", "children"),
    Output("plan-selected", "children"),
    Output("plan-applied", "data"),
    Input("plan-edits", "data"),
    Input("plan-responder", "value"),
    Input("plan-selection", "data"),
    Input(mapview.painted_id(PAGE), "data"),
    State("plan-session", "data"),
    State("plan-lang", "data"),
)
def scenario_figures(edits: list, responder: str, selection: dict | None, _painted: float | None, session: str,
                     lang: str):
    """First answer to an edit: the reach figures and their change, and the station markers.

    Only the engine's incremental update runs here (one bounded Dijkstra per new edit);
    overlays and the worst-uncovered table follow in their own callbacks (``plan-applied``).
    """
    lang = lang_of(lang)
    edits = edits or []
    try:
        base = scoped_summary()
        if edits:
            engine, refused = engines.scenario(session, edits)
            now, mode = scoped_summary(engine), engine.scene.mode
        else:
            now, refused, mode = base, [], engines.scene().mode
    except OnemapError as exc:
        msg = note(f"{t('coverage_unavailable', lang)}: {exc}")
        return html.Div(msg, **{"data-edits": str(len(edits))}), [], "", "", {"n": len(edits), "error": True}
    figures: list[Any] = [_figures_table(base, now, responder, lang)]
    if refused:
        figures.append(note(refused[-1]))
    sel = ""
    if selection:
        sel = html.Span(f"{t('scenario', lang)}: {selection.get('name') or selection['id']}")
    applied = {"n": len(edits), "responder": responder}
    if ctx.triggered_id == "plan-selection":
        applied = dash.no_update  # a new selection changes no figure: the follow-ups stay
    mode_text = ([t("mode_network", lang), html.Br(), road_model_label(context.settings(), lang)]
                 if mode == "network" else t("mode_radius", lang))
    return (html.Div(figures, **{"data-edits": str(len(edits))}), _markers(edits, selection, session), mode_text, sel,
            applied)


def scoped_summary(engine: coverage.CoverageEngine | None = None) -> dict[str, Any]:
    """Reach figures of the stored responders (or of ``engine``'s scenario) over the request's scope:
    the district's, or a town user's towns' (``coverage.summary(towns=...)``, from the full result)."""
    towns = scope.towns()
    if towns is None:
        return engine.summary() if engine is not None else engines.base_summary()
    return coverage.summary(engine.result if engine is not None else engines.base_coverage(), towns=towns)


def road_model_label(settings: Settings, lang: str) -> str:
    """Which road model coverage uses: calibrated on N calls (``onemap calibrate --write``) or the default factor."""
    factor = f"{settings.urban_slowdown_factor:g}"
    day = settings.road_calibration_date
    if settings.road_calibration_calls > 0:
        shown = day if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) else "?"
        return t("road_model_calibrated", lang).format(n=settings.road_calibration_calls, date=shown, factor=factor)
    return t("road_model_default", lang).format(factor=factor)


def _overlays(result: coverage.CoverageResult, responder: str, overlays: tuple[str, ...],
              minutes: tuple[float, ...]) -> tuple[dict, dict, dict]:
    """Isochrones, first-due areas and hydrant blind spots of one coverage result as GeoJSON dicts."""
    tiles = context.settings().tiles
    iso = first_due = blind = EMPTY_FC
    if "iso" in overlays and minutes:
        geoms = coverage.isochrones(result, sorted(minutes, reverse=True), layer=responder, towns=scope.towns())
        props = pd.DataFrame({"minutes": [f"{m:g}" for m in geoms]})
        iso = json.loads(mapdata.geometries_features(list(geoms.values()), props, tiles,
                                                     simplify_m=context.settings().map_zone_simplify_m))
    if "firstdue" in overlays:
        cells = scope.keep_towns(result.cells[result.cells["res"] == result.cells["res"].min()])
        col = f"first_{responder}"
        if col in cells:
            cells = cells[cells[col].notna() & (cells[col].astype(str) != "")]
            groups = cells[col].astype(str).to_numpy()
            names = result.responders.set_index(result.responders["id"].astype(str))["name"]
            order = {g: i for i, g in enumerate(sorted(set(groups)))}
            props = pd.DataFrame({"name": names.reindex(sorted(order)).fillna("").to_numpy(),
                                  "ci": list(order.values())}, index=sorted(order))
            first_due = json.loads(mapdata.grouped_cells(cells["cell"].to_numpy(np.uint64), groups, props, tiles))
    if "blind" in overlays:
        bc = engines.blind_spots().cells
        bc = scope.keep_towns(bc[bc["blind"] & (bc["res"] == bc["res"].min())])
        blind = json.loads(mapdata.dissolved_cells(bc["cell"].to_numpy(np.uint64), tiles))
    return iso, first_due, blind


def base_overlays(responder: str, overlays: tuple[str, ...], minutes: tuple[float, ...]) -> tuple[dict, dict, dict]:
    """Overlays of the stored responders, computed once per snapshot and shared by every visitor."""
    return engines.memo("plan-overlays", (responder, overlays, minutes),
                        lambda: _overlays(engines.base_coverage(), responder, overlays, minutes))


def base_iso_text(responder: str, minutes: tuple[float, ...]) -> str:
    """Isochrones of the stored responders as GeoJSON text (once per snapshot; served by URL)."""
    def build() -> str:
        geoms = coverage.isochrones(engines.base_coverage(), sorted(minutes, reverse=True), layer=responder,
                                    towns=scope.towns())
        props = pd.DataFrame({"minutes": [f"{m:g}" for m in geoms]})
        return mapdata.geometries_features(list(geoms.values()), props, context.settings().tiles,
                                           simplify_m=context.settings().map_zone_simplify_m)
    return engines.memo("plan-iso-text", (responder, tuple(sorted(minutes))), build)


def iso_url(responder: str, minutes: list[float] | tuple[float, ...]) -> str:
    """URL of the stored responders' isochrones (the browser fetches it straight from Flask:
    half a megabyte of rings never passes through Dash's layout store)."""
    m = ",".join(f"{x:g}" for x in sorted(minutes))
    return f"/api/overlay/plan-iso.geojson?responder={responder}&minutes={m}&v={context.version()}"


def isochrone_minutes() -> dict[str, float]:
    """The minutes a planner can draw as isochrones (``Settings.isochrone_minutes``) by their URL text."""
    return {f"{float(m):g}": float(m) for m in context.settings().isochrone_minutes}


def parse_minutes(text: str) -> tuple[float, ...]:
    """Isochrone minutes from a URL (``1,3,5``): a subset of ``isochrone_minutes``, sorted.

    Any other value (NaN, inf, negative, an unconfigured minute, hundreds of them) raises
    BadInput before any work: each distinct list would cost seconds and megabytes of cache.
    """
    allowed = isochrone_minutes()
    tokens = [x for x in text.split(",") if x]

    def key(token: str) -> str:
        try:
            return f"{float(token):g}"
        except ValueError:
            return ""

    if len(tokens) > len(allowed) or any(key(x) not in allowed for x in tokens):
        raise inputs.BadInput(f"minutes takes the configured isochrone minutes {', '.join(allowed)} "
                              f"(setting isochrone_minutes), separated by commas; got {text[:80]!r}")
    return tuple(sorted({allowed[key(x)] for x in tokens}))


def _iso_route(args: dict[str, str]) -> str:
    responder = args.get("responder", "")
    if responder not in RESPONDERS:
        raise inputs.BadInput(f"responder must be one of {list(RESPONDERS)}, got {responder[:60]!r}")
    minutes = parse_minutes(args.get("minutes", ""))
    return base_iso_text(responder, minutes) if minutes else mapdata.EMPTY


routes.register_overlay("plan-iso", _iso_route)


def _sites_table(rows: list[dict[str, Any]], lang: str) -> Any:
    return table("plan-sites-table", [("rank", t("rank", lang)), ("gain_weight", t("gain", lang)),
                                      ("gain_km2", t("area_km2", lang)), ("lon", t("lon", lang)),
                                      ("lat", t("lat", lang))], rows, page_size=10)


def _worst_table(rows: list[dict[str, Any]], lang: str) -> Any:
    return table("plan-worst", [
        ("rank", t("rank", lang)), ("town", t("town", lang)), ("area_km2", t("area_km2", lang)),
        ("weight", t("weight", lang)), ("places", t("places", lang)), ("worst_eta_min", t("eta", lang))],
        rows, page_size=10)


def _worst(result: coverage.CoverageResult) -> list[dict[str, Any]]:
    worst = coverage.uncovered_clusters(result, top=10, towns=scope.towns()).drop(columns=["geometry"], errors="ignore")
    if "worst_eta_s" in worst:
        worst["worst_eta_min"] = (worst["worst_eta_s"] / 60).round(1)
    return worst.round(3).to_dict("records")


def base_worst() -> list[dict[str, Any]]:
    """The worst uncovered places with the stored responders (once per snapshot)."""
    return engines.memo("plan-worst", None, lambda: _worst(engines.base_coverage()))


@engines.on_warm
def warm_plan() -> None:
    """What every planner sees on opening: the default overlays of each responder type, the worst places."""
    minutes = tuple(sorted(context.settings().isochrone_minutes))
    for responder in RESPONDERS:
        base_iso_text(responder, minutes)
    base_worst()


@callback(
    Output("plan-iso", "url"),
    Output("plan-iso", "data"),
    Output("plan-firstdue", "data"),
    Output("plan-blind", "data"),
    Output("plan-iso-sent", "data"),
    Input("plan-applied", "data"),
    Input("plan-overlays", "value"),
    Input("plan-minutes", "value"),
    State("plan-edits", "data"),
    State("plan-responder", "value"),
    State("plan-session", "data"),
    State("plan-iso-sent", "data"),
)
def scenario_overlays(applied: dict | None, overlays: list, minutes: list, edits: list, responder: str,
                      session: str, sent: bool):
    """Follow-up of an edit: the coverage overlays (stored responders: cached per snapshot)."""
    nu = dash.no_update
    if applied and applied.get("error"):
        return None, EMPTY_FC, EMPTY_FC, EMPTY_FC, False
    if sent:  # the page came with the opening isochrones' URL: nothing to send on its first call
        return nu, nu, nu, nu, False
    key = (tuple(sorted(overlays or [])), tuple(sorted(minutes or [])))
    if not edits:
        # stored responders: isochrones by URL (cached per snapshot), the rest as data
        _, first_due, blind = base_overlays(responder, (*[o for o in key[0] if o != "iso"],), key[1])
        if "iso" in key[0] and key[1]:
            return iso_url(responder, key[1]), None, first_due, blind, nu
        return None, EMPTY_FC, first_due, blind, nu
    return (None, *_overlays(engines.scenario_result(session, edits), responder, *key), nu)


@callback(
    Output("plan-worst-box", "children"),
    Input("plan-applied", "data"),
    State("plan-edits", "data"),
    State("plan-session", "data"),
    State("plan-lang", "data"),
)
def scenario_worst(applied: dict | None, edits: list, session: str, lang: str):
    """Lazily after an edit: the worst uncovered places (stored responders: cached per snapshot)."""
    lang = lang_of(lang)
    if applied and applied.get("error"):
        return _worst_table([], lang)
    if not edits:
        return _worst_table(base_worst(), lang)
    return _worst_table(_worst(engines.scenario_result(session, edits)), lang)


# --------------------------------------------------------------------------- siting, export


@callback(
    Output("plan-sites", "data"),
    Output("plan-sites-box", "children"),
    Input("plan-suggest", "n_clicks"),
    State("plan-k", "value"),
    State("plan-responder", "value"),
    State("plan-edits", "data"),
    State("plan-session", "data"),
    State("plan-lang", "data"),
    prevent_initial_call=True,
)
def suggest(_n: int, k: int | None, responder: str, edits: list, session: str, lang: str):
    """Greedy maximal covering: k new sites with the gain of each (geo.siting)."""
    engine, _ = engines.scenario(session, edits or [])
    res = siting.suggest_sites(engine, int(k or 1), layer=responder, towns=scope.towns())
    picks = res.picks
    geo = json.loads(mapdata.points_features(picks["lon"].to_numpy(), picks["lat"].to_numpy(),
                                             picks[["rank"]], context.settings().tiles))
    cols = [c for c in ("rank", "gain_weight", "gain_km2", "lon", "lat") if c in picks]
    return geo, _sites_table(picks[cols].round(5).to_dict("records"), lang_of(lang))


@callback(
    Output("plan-download", "data"),
    Input("plan-export-geojson", "n_clicks"),
    Input("plan-export-csv", "n_clicks"),
    State("plan-edits", "data"),
    State("plan-session", "data"),
    State("plan-responder", "value"),
    prevent_initial_call=True,
)
def export(_g: int, _c: int, edits: list, session: str, responder: str):
    """The scenario: edited stations (WGS-84) with the figures before and after (an audited export)."""
    if ctx.triggered_id == "plan-export-csv":
        engines.scenario(session, edits or [])
        stations = _station_positions(edits or [], engines.refused_indices(session))
        removed = [e["id"] for e in (edits or []) if e["action"] == "remove"]
        rows = [{"id": sid, "action": "add/move", "layer": e.get("layer", ""), "name": e.get("name", ""),
                 "lon": e["lon"], "lat": e["lat"]} for sid, e in stations.items()]
        rows += [{"id": rid, "action": "remove"} for rid in removed]
        frame = pd.DataFrame(rows, columns=["id", "action", "layer", "name", "lon", "lat"])
        actions.record_request("export", "plan:scenario.csv", after={"edits": len(edits or []), "responder": responder})
        return {"content": "\ufeff" + csv_text(frame), "filename": "scenario.csv"}
    doc = scenario_document(edits or [], session, responder)
    actions.record_request("export", "plan:scenario.geojson", after={"edits": len(edits or []), "responder": responder})
    return {"content": jsonsafe.dumps(doc, indent=1), "filename": "scenario.geojson"}


@callback(
    Output("plan-publish-msg", "children"),
    Input("plan-publish", "n_clicks"),
    State("plan-publish-name", "value"),
    State("plan-edits", "data"),
    State("plan-session", "data"),
    State("plan-responder", "value"),
    State("plan-lang", "data"),
    prevent_initial_call=True,
)
def publish(_n: int, name: str | None, edits: list, session: str, responder: str, lang: str) -> str:
    """Save and publish the scenario (planners; an audited action): the message to show."""
    return actions.publish_message(name, edits or [], responder, session, lang_of(lang))


def scenario_document(edits: list, session: str, responder: str) -> dict[str, Any]:
    """The scenario as GeoJSON: edited stations (WGS-84), removals, the figures before and after
    (computed here, never taken from the client): the export's file and what a publish stores."""
    engine, _ = engines.scenario(session, edits)
    stations = _station_positions(edits, engines.refused_indices(session))
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [e["lon"], e["lat"]]},
                 "properties": {"id": sid, "layer": e.get("layer"), "name": e.get("name")}}
                for sid, e in stations.items()]
    return {"type": "FeatureCollection", "features": features,
            "scenario": {"edits": edits, "removed": [e["id"] for e in edits if e["action"] == "remove"],
                         "responder": responder, "before": scoped_summary(), "after": scoped_summary(engine)}}


# --------------------------------------------------------------------------- what the callbacks take

_SESSION = re.compile(r"[0-9a-f]{32}")


def check_session(value: Any, where: str) -> None:
    """A browser session id as the layout makes it (``uuid4().hex``)."""
    if not (isinstance(value, str) and _SESSION.fullmatch(value)):
        raise inputs.fail(where, "a session id of 32 hexadecimal digits", value)


def _check_place(item: dict[str, Any], where: str) -> None:
    lon, lat = item.get("lon"), item.get("lat")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lon, lat)):
        raise inputs.fail(where, "lon and lat as finite numbers", item)
    inputs.position([lat, lon], where)


def _check_edit(edit: Any, where: str) -> None:
    if not (isinstance(edit, dict) and edit.get("action") in ("add", "move", "remove")
            and isinstance(edit.get("id"), str) and 0 < len(edit["id"]) <= MAX_NAME):
        raise inputs.fail(where, 'edits {"action": add|move|remove, "id": text, ...}', edit)
    if edit["action"] in ("add", "move"):
        _check_place(edit, where)
    if edit["action"] == "add":
        inputs.one_of(RESPONDERS)(edit.get("layer"), where + ".layer")
        if not isinstance(edit.get("name"), (str, type(None))) or len(edit.get("name") or "") > MAX_NAME:
            raise inputs.fail(where + ".name", f"text up to {MAX_NAME} characters", edit.get("name"))


def check_edits(value: Any, where: str) -> None:
    """The what-if edits store: at most ``MAX_EDITS`` add/move/remove edits with places in degrees."""
    if value is None:
        return
    if not isinstance(value, list) or len(value) > MAX_EDITS:
        raise inputs.fail(where, f"a list of at most {MAX_EDITS} what-if edits", value)
    for edit in value:
        _check_edit(edit, where)


def check_selection(value: Any, where: str) -> None:
    """The selected station: None, a new one ``{"id", "new": true}`` or a stored one with its place."""
    if value is None:
        return
    if not (isinstance(value, dict) and isinstance(value.get("id"), str) and len(value["id"]) <= MAX_NAME
            and isinstance(value.get("new"), bool) and set(value) <= {"id", "new", "name", "layer", "lon", "lat"}):
        raise inputs.fail(where, 'a selection {"id": text, "new": true|false, ...}', value)
    inputs.text(value.get("name"), where + ".name")
    if not value["new"]:
        inputs.one_of(RESPONDERS)(value.get("layer"), where + ".layer")
        _check_place(value, where)


def check_applied(value: Any, where: str) -> None:
    """What the first answer to an edit applied: ``{"n": count, "responder": .., "error": bool}``."""
    if value is None:
        return
    if not (isinstance(value, dict) and set(value) <= {"n", "responder", "error"}):
        raise inputs.fail(where, '{"n": count, "responder": responder, "error": true|false}', value)
    inputs.count(value.get("n"), where + ".n")
    inputs.one_of(RESPONDERS, allow_none=True)(value.get("responder"), where + ".responder")
    inputs.flag(value.get("error"), where + ".error")


def _colour_fields() -> list[str]:
    return sorted({f for n in _point_layers() for f in _filter_fields(n)})


for _cid, _prop, _check in (
    ("plan-f-layer", "value", inputs.one_of(_point_layers)),
    ("plan-colorby", "value", inputs.one_of(_colour_fields, allow_none=True)),
    ("plan-lang", "data", inputs.one_of(("zh", "en"), allow_none=True)),
    ("plan-responder", "value", inputs.one_of(RESPONDERS, allow_none=not RESPONDERS)),
    ("plan-overlays", "value", inputs.subset_of(OVERLAY_CHOICES)),
    ("plan-minutes", "value", inputs.subset_of(lambda: list(isochrone_minutes().values()))),
    ("plan-k", "value", inputs.whole_number(1, MAX_SITES)),
    ("plan-session", "data", check_session),
    ("plan-edits", "data", check_edits),
    ("plan-selection", "data", check_selection),
    ("plan-add-on", "data", inputs.flag),
    ("plan-iso-sent", "data", inputs.flag),
    ("plan-applied", "data", check_applied),
):
    inputs.expect(_cid, _prop, _check)

mapview.register_map_callbacks(PAGE)
deferred.register(SUGGEST_BOX, mapview.painted_id(PAGE))
deferred.register(TOOLS_BOX, mapview.painted_id(PAGE))
preload.register(PATH, opening_urls)
