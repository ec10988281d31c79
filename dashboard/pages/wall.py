"""``/wall`` 指挥大屏: the command-centre wall display.

Dark, full screen, no scrollbars at 1920x1080 and 3840x2160 (sizes in viewport units).
KPI tiles, a ticker and the map refresh every ``Settings.wall_refresh_s`` through a
``dcc.Interval`` reading the snapshot-following ``store.Reader``; the map layers refetch
when the snapshot version changes. A new incident (or one an operator picks) brings up
its dispatch picture; with ``Settings.wall_rotate_towns_s`` the map tours the towns.

A wall signed in with a town scope (``dashboard.access.scope``) shows its towns only: KPIs,
ticker, reach tiles (the shares of its towns' built-up area), the incidents it can pick, the
towns it tours. The dispatch picture of an incident in scope shows what serves that call,
wherever it stands (the nearest stations, water and residents may lie across a town border);
personal fields in it are masked unless the signed-in role sees them (never for the local
single user of an app without users: a kiosk, as before).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash
import dash_leaflet as dl
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from dashboard.access import scope
from dashboard.components import context, engines, mapview, preload, wall_live
from dashboard.components.chrome import kpi_tile, navbar
from dashboard.components.page_start import page_start
from dashboard.i18n import lang_of, t
from geo import coverage, dispatch, governance, journal, mapdata
from geo.errors import OnemapError
from geo.settings import Settings
from layers import hazard as hazard_vocabulary
from layers.registry import LAYERS

PAGE = "wall"
PATH = "/wall"
dash.register_page(__name__, path=PATH, name="指挥大屏", title="一图作战 · 指挥大屏")

KPIS: tuple[tuple[str, str, str], ...] = (
    # (tile id suffix, label key, tone)
    ("open", "kpi_open", "warn"),
    ("major", "kpi_major", "alert"),
    ("overdue", "kpi_overdue", "alert"),
    ("listed", "kpi_listed", "warn"),
    ("micro", "kpi_micro_reach", "ok"),
    ("station", "kpi_station_reach", "ok"),
    ("blind", "kpi_blind", "alert"),
    ("alarms", "kpi_alarms_today", "warn"),
)
TOWN_LEVEL = "街镇"


def open_statuses() -> list[str]:
    """Hazard statuses before the closed one (the hazard spec's ``OPEN_STATUSES``)."""
    return list(hazard_vocabulary.OPEN_STATUSES)


def kpi_label(label: str, lang: str, settings: Settings) -> str:
    """A tile's label; the reach tiles name the configured minutes (``micro_station_minutes``,
    ``fire_station_minutes``), never a fixed 3 or 5."""
    minutes = {"kpi_micro_reach": settings.micro_station_minutes, "kpi_station_reach": settings.fire_station_minutes}
    return t(label, lang, minutes=f"{float(minutes[label]):g}") if label in minutes else t(label, lang)


def map_filters(now: datetime) -> dict[str, Any]:
    """The wall shows open hazards and today's incidents."""
    out: dict[str, Any] = {}
    if "hazard" in LAYERS:
        out["hazard"] = {"f": {"status": open_statuses()}}
    if "incident" in LAYERS:
        out["incident"] = {"start": now.strftime("%Y-%m-%d")}
    return out


def map_options(now: datetime) -> dict[str, Any]:
    """How the wall's map opens (shared by the layout and the HTML preload)."""
    settings, bounds, counts = page_start()
    return {"settings": settings, "bounds": bounds, "version": context.version(), "size_hint": (1000, 990),
            "visible": mapview.default_visible(counts, settings), "filters": map_filters(now)}


def opening_urls(_args: dict[str, str]) -> list[str]:
    """The data URLs the wall's map opens with."""
    return list(mapview.opening_urls(PAGE, **map_options(datetime.now())).values())


def layout(lang: str = "zh", **_: Any) -> html.Div:
    """The wall: header, KPI column, map, ticker and dispatch column."""
    lang = lang_of(lang)
    options = map_options(datetime.now())
    settings, counts = options["settings"], page_start()[2]
    tiles = [kpi_tile(f"wall-kpi-{key}", kpi_label(label, lang, settings), tone=tone) for key, label, tone in KPIS]
    the_map = mapview.map_panel(PAGE, lang, **options,
                                clustered_layers=mapview.clustered(counts, settings), dark=True, counts=counts,
                                overlays=[dl.LayerGroup(id="wall-dispatch-layer", children=[]),
                                          dl.LayerGroup(id="wall-live-layer", children=[])],
                                map_kwargs={"zoomControl": False})
    rotate = settings.wall_rotate_towns_s
    return html.Div([
        html.Header([
            html.H1(t("wall_title", lang), className="om-wall-title"),
            html.Div([html.Span(t("updated_at", lang) + " "), html.Span("–", id="wall-updated")],
                     className="om-wall-clock"),
            html.Div(id="wall-rotate-label", className="om-wall-rotate"),
            navbar(PATH, lang, dark=True),
        ], className="om-wall-header"),
        html.Aside([*tiles, kpi_tile("wall-kpi-devices", wall_live.TEXT[lang]["devices"], tone="ok")],
                   className="om-wall-kpis"),
        html.Main(the_map, className="om-wall-map"),
        html.Aside([
            html.Section([html.H2(t("ticker_title", lang)), html.Ul(id="wall-live-ticker", className="om-ticker om-live"),
                          html.Ul(id="wall-ticker", className="om-ticker")],
                         className="om-wall-ticker"),
            html.Section([
                html.H2(t("dispatch_title", lang)),
                dcc.Dropdown(id="wall-incident", placeholder=t("dispatch_pick", lang), clearable=True,
                             className="om-wall-dropdown"),
                html.Div(id="wall-dispatch", className="om-dispatch"),
            ], className="om-wall-dispatch"),
        ], className="om-wall-side"),
        dcc.Interval(id="wall-interval", interval=int(settings.wall_refresh_s * 1000), n_intervals=0),
        dcc.Interval(id="wall-rotate", interval=int(max(rotate, 1) * 1000), disabled=rotate <= 0, n_intervals=0),
        dcc.Interval(id="wall-live-interval", interval=int(settings.wall_live_poll_s * 1000), n_intervals=0),
        dcc.Store(id="wall-live-seq", data=journal.head(context.reader().path)),
        dcc.Store(id="wall-live-items", data=[]),
        dcc.Store(id="wall-lang", data=lang),
        dcc.Store(id="wall-last-incident", data=None),
        dcc.Store(id="wall-fly", data=False),
        dcc.Store(id="wall-pending-incident", data=None),
    ], className="om-wall")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def reach_figures() -> dict[str, str]:
    """Micro-station and fire-station reach and hydrant blind spots, each a share of the
    built-up area (``coverage.summary``, ``coverage.blind_spot_summary``: the report's figures);
    once per snapshot."""

    def build() -> dict[str, str]:
        try:
            towns = scope.towns()
            summary = (engines.base_summary() if towns is None
                       else coverage.summary(engines.base_coverage(), towns=towns))
            blind = coverage.blind_spot_summary(engines.blind_spots(), towns=towns)
        except OnemapError:  # no roads, no responders: the wall keeps running without these tiles
            return {"micro": "–", "station": "–", "blind": "–"}
        return {"micro": _pct(summary.get("area_share_micro_station")),
                "station": _pct(summary.get("area_share_fire_station")), "blind": _pct(blind["blind_share"])}

    return dict(engines.memo("wall-reach", None, build))


def _time(value: Any) -> str:
    ts = pd.Timestamp(value)
    return "" if pd.isna(ts) else ts.strftime("%m-%d %H:%M")


def ticker_items(kpis: governance.WallKpis, lang: str) -> list[html.Li]:
    """Latest hazards and alarms merged by time (text only: no HTML from data)."""
    rows = []
    for r in kpis.latest_hazards.itertuples():
        rows.append((pd.Timestamp(r.discovered_at), "hazard", t("ticker_hazard", lang), f"{r.category}",
                     f"{r.town or ''} {r.community or ''}".strip(), r.severity == hazard_vocabulary.MAJOR_SEVERITY))
    for r in kpis.latest_alarms.itertuples():
        rows.append((pd.Timestamp(r.reported_at), "alarm", t("ticker_alarm", lang), f"{r.kind}",
                     f"{r.town or ''} {r.community or ''}".strip(), r.kind == "火灾"))
    rows.sort(key=lambda x: x[0], reverse=True)
    n = max(len(kpis.latest_hazards), 1)
    return [html.Li([html.Span(_time(ts), className="om-tk-time"),
                     html.Span(badge, className=f"om-tk-badge om-tk-{kind}" + (" om-tk-major" if major else "")),
                     html.Span(what, className="om-tk-what"), html.Span(where, className="om-tk-where")])
            for ts, kind, badge, what, where, major in rows[:n]]


def wall_kpis(now: datetime) -> governance.WallKpis:
    """The wall's governance figures, computed once per snapshot and minute for every wall and visitor."""
    minute = now.replace(second=0, microsecond=0)

    def build() -> governance.WallKpis:  # as of the first ask in this minute and snapshot
        with context.connection() as con:
            return governance.wall_kpis(con, as_of=now, settings=context.settings(), flt=scope.scoped())

    return engines.memo("wall-kpis", minute, build)


@engines.on_warm
def warm_wall() -> None:
    """What every wall shows: KPIs of this minute and the reach tiles."""
    wall_kpis(datetime.now())
    reach_figures()


@callback(
    *[Output(f"wall-kpi-{key}", "children") for key, _, _ in KPIS],
    Output("wall-ticker", "children"),
    Output("wall-updated", "children"),
    Output(mapview.version_id(PAGE), "data"),
    Output(mapview.filters_id(PAGE), "data"),
    Output("wall-incident", "options"),
    Output("wall-pending-incident", "data"),
    Output("wall-last-incident", "data"),
    Output("wall-fly", "data"),
    Input("wall-interval", "n_intervals"),
    # first call once the map has painted (the tiles and ticker fill in after it, never before)
    Input(mapview.painted_id(PAGE), "data"),
    State("wall-lang", "data"),
    State(mapview.filters_id(PAGE), "data"),
    State("wall-last-incident", "data"),
    State("wall-incident", "value"),
    State(mapview.version_id(PAGE), "data"),
)
def refresh(_n: int, _painted: float | None, lang: str, filters: dict[str, Any], last_incident: str | None,
            picked: str | None, shown_version: int | None):
    """Read the newest snapshot: KPIs, ticker, snapshot version (map refetch only when it changed), incidents."""
    lang = lang_of(lang)
    now = datetime.now()
    version = context.version()
    engines.ensure_warm()
    kpis = wall_kpis(now)
    reach = reach_figures()
    values = {"open": f"{kpis.open_hazards:,}", "major": f"{kpis.open_major:,}", "overdue": f"{kpis.overdue:,}",
              "listed": f"{kpis.listed_open:,}", "alarms": f"{kpis.alarms_today:,}", **reach}
    alarms = kpis.latest_alarms
    options = [{"label": f"{_time(r.reported_at)} {r.kind} {r.town or ''}", "value": str(r.id)}
               for r in alarms.itertuples()]
    newest = str(alarms["id"].iloc[0]) if len(alarms) else None
    value = fly = dash.no_update
    if newest is not None and newest != last_incident and (last_incident is not None or not picked):
        value = newest  # a new incident arrived (or the wall just started): show its dispatch picture
        fly = last_incident is not None  # the wall opens on the district; a new alarm flies to it
    new_filters = map_filters(now)
    return (*[values[key] for key, _, _ in KPIS], ticker_items(kpis, lang), now.strftime("%H:%M:%S"),
            version if version != shown_version else dash.no_update,
            new_filters if new_filters != filters else dash.no_update, options, value, newest, fly)


@callback(
    Output("wall-live-ticker", "children"),
    Output("wall-live-layer", "children"),
    Output("wall-live-seq", "data"),
    Output("wall-live-items", "data"),
    Input("wall-live-interval", "n_intervals"),
    State("wall-live-seq", "data"),
    State("wall-live-items", "data"),
    State("wall-lang", "data"),
)
def live_check(_n: int | None, seen: Any, items: Any, lang: str):
    """Every ``wall_live_poll_s``: nothing unless the journal head moved; then the new alarms,
    incidents and hazards in scope join the live ticker and the map, the newest flashing."""
    db = context.reader().path
    head = journal.head(db)
    if isinstance(seen, bool) or not isinstance(seen, int) or seen < 0 or seen > head:
        return dash.no_update, dash.no_update, head, dash.no_update  # a crafted or stale token: start here
    if head == seen:
        return dash.no_update, dash.no_update, dash.no_update, dash.no_update
    fresh, upto = wall_live.new_items(db, seen, scope.towns())
    if not fresh:
        return dash.no_update, dash.no_update, upto, dash.no_update
    kept = (fresh + wall_live.checked(items))[:wall_live.KEEP]
    return (wall_live.ticker(kept, seen, lang_of(lang)), wall_live.markers(kept, context.settings()), upto, kept)


@callback(
    Output("wall-kpi-devices", "children"),
    Input("wall-interval", "n_intervals"),
    State("wall-lang", "data"),
)
def device_tile(_n: int | None, lang: str) -> str:
    """Device online rate by kind (heartbeats of the snapshot and of the journal), in scope."""
    with context.connection() as con:
        return wall_live.device_line(con, context.reader().path, datetime.now(), context.settings(),
                                     scope.towns(), lang_of(lang))


# The incident chosen by a refresh goes to the dropdown once the map has painted: the dispatch
# picture (routes, ETAs) never competes with the map's first render.
dash.clientside_callback(
    "function(pending, painted) { return pending ? pending : window.dash_clientside.no_update; }",
    Output("wall-incident", "value"),
    Input("wall-pending-incident", "data"),
    Input(mapview.painted_id(PAGE), "data"),
    prevent_initial_call=True,
)


def _route_layers(result: dispatch.DispatchResult) -> list[Any]:
    tiles = context.settings().tiles
    out: list[Any] = []
    for r in result.responders.itertuples():  # the route of the nearest responder of each kind
        route = r.route if isinstance(r.route, list) and r.group_rank == 1 else []
        if len(route) >= 2:
            lon, lat = mapdata.to_display([p[0] for p in route], [p[1] for p in route], tiles)
            colour = "#56B4E9" if r.within_target else "#E69F00"
            out.append(dl.Polyline(positions=[[float(a), float(b)] for a, b in zip(lat, lon, strict=True)],
                                   color=colour, weight=6 if r.rank == 1 else 4, opacity=0.9))
    for frame, colour, radius in ((result.hydrants, "#0072B2", 8), (result.water_sources, "#009E73", 10)):
        if "lon" in frame and len(frame):
            lon, lat = mapdata.to_display(frame["lon"].to_numpy(), frame["lat"].to_numpy(), tiles)
            out += [dl.CircleMarker(center=[float(b), float(a)], radius=radius, color="#ffffff", weight=2,
                                    fillColor=colour, fillOpacity=1) for a, b in zip(lon, lat, strict=True)]
    lon, lat = mapdata.to_display([result.lon], [result.lat], tiles)
    out.append(dl.CircleMarker(center=[float(lat[0]), float(lon[0])], radius=16, color="#F0E442", weight=5,
                               fillColor="#D55E00", fillOpacity=0.9, className="om-incident-pulse"))
    return out


def _distance(row: Any, lang: str) -> str:
    """Road distance, else straight-line distance (≈), else a dash."""
    road = getattr(row, "road_m", float("nan"))
    if pd.notna(road) and np.isfinite(road):
        return f"{road:.0f}{t('metres', lang)}"
    straight = getattr(row, "straight_m", float("nan"))
    if pd.notna(straight) and np.isfinite(straight):
        return f"≈{straight:.0f}{t('metres', lang)}"
    return "–"


WALL_VULNERABLE_ROWS = 3
"""Residents listed by name on the wall (the count covers all of them; the CLI/JSON list every one)."""


def _field_label(layer: str, name: str, lang: str) -> str:
    """A field's name from its layer spec (层数 / Storeys ...)."""
    spec = next(f for f in LAYERS[layer].fields if f.name == name)
    return spec.zh if lang == "zh" else spec.en


def _shown(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value)) and str(value).strip() != ""


def _responder_row(r: Any, lang: str) -> html.Li:
    """One responder: rank, kind and name, availability (busy: the call; out of service), ETA."""
    name = str(r.name if isinstance(r.name, str) and r.name else r.id)
    state: list[Any] = []
    if r.availability == dispatch.BUSY:
        state = [html.Small(f" {t('dispatch_busy', lang)} {r.busy_incident}", className="om-dp-state om-late")]
    elif r.availability == dispatch.OUT_OF_SERVICE:
        state = [html.Small(f" {t('dispatch_out_of_service', lang)}", className="om-dp-state om-late")]
    return html.Li([html.Span(f"{int(r.rank)}", className="om-dp-rank"),
                    html.Span([html.Small(f"{dispatch.group_label(r.group, lang)} ", className="om-dp-kind"), name, *state],
                              className="om-dp-name"),
                    html.Span(f"{r.eta_s / 60:.1f} {t('minutes_short', lang)}",
                              className="om-dp-eta " + ("om-ok" if r.within_target else "om-late"))],
                   className="om-dp-unavailable" if not r.available else None, **{"data-availability": r.availability})


def _water_line(frame: pd.DataFrame, lang: str) -> str:
    """Nearest water: name, status, distance."""
    return " · ".join(" ".join(str(w) for w in (r.name if _shown(r.name) else r.id, r.status, _distance(r, lang)) if _shown(w))
                      for r in frame.head(3).itertuples())


def _labelled(label: str, text: str, element_id: str | None = None) -> html.Div:
    """One compact line: a dim label, then the text (as text: never markup)."""
    extra = {"id": element_id} if element_id else {}
    return html.Div([html.Span(f"{label}：", className="om-dp-label"), text], className="om-dp-line", **extra)


def _place_parts(result: dispatch.DispatchResult, lang: str) -> list[Any]:
    """The key place: name, category, class, last inspection; the pre-plan line; its open hazards."""
    place = result.key_place
    if not place:
        return []
    head = [str(place.get("name") or place.get("id")), str(place.get("category") or "")]
    if _shown(place.get("inspection_class")):
        head.append(t("dispatch_class", lang, n=place["inspection_class"]))
    if _shown(place.get("last_inspection")):
        head.append(f"{_field_label('key_place', 'last_inspection', lang)} {place['last_inspection']}")
    plan = [f"{_field_label('key_place', k, lang)} {place[k]}" for k in ("storeys", "occupants", "hazmat", "contact", "phone")
            if _shown(place.get(k))]
    parts: list[Any] = [_labelled(t("dispatch_place", lang), " · ".join(x for x in head if x), "wall-dp-place")]
    if plan:
        parts.append(html.Div(" · ".join(plan), className="om-dp-line om-dp-preplan", id="wall-dp-preplan"))
    if len(result.hazards):
        parts.append(html.Div(f"{t('dispatch_place_hazards', lang)}: " +
                              "、".join(str(c) for c in result.hazards["category"].head(4)), className="om-dp-line"))
    return parts


def _vulnerable_parts(result: dispatch.DispatchResult, lang: str) -> list[Any]:
    """Vulnerable residents near the call: counts by category and risk, the nearest few (masked)."""
    if not result.availability_known:
        return []
    people = result.vulnerable
    title = t("dispatch_vulnerable", lang, radius=f"{result.vulnerable_radius_m:g}")
    counts = dispatch.vulnerable_counts(people)
    by_cat = " ".join(f"{c['category']} {c['count']}" for c in counts["by_category"])
    by_risk = " ".join(f"{t('dispatch_risk', lang, level=c['risk_level']) if c['risk_level'] else t('dispatch_unrated', lang)}"
                       f" {c['count']}" for c in counts["by_risk"])
    parts: list[Any] = [_labelled(title, f"{t('dispatch_vulnerable_count', lang, n=len(people))}" +
                                  (f" · {by_cat} · {by_risk}" if len(people) else ""), "wall-dp-vulnerable-count")]
    for r in people.head(WALL_VULNERABLE_ROWS).itertuples():
        words = [f"{r.distance_m:.0f}{t('metres', lang)}", r.category, r.risk_level, r.mobility, r.address, r.name, r.phone]
        parts.append(html.Div(" ".join(str(w) for w in words if _shown(w)), className="om-dp-line om-dp-person"))
    if len(people) > WALL_VULNERABLE_ROWS:
        parts.append(html.Div(t("dispatch_more", lang, n=len(people) - WALL_VULNERABLE_ROWS), className="om-dp-line om-dim"))
    return parts


def _dispatch_panel(result: dispatch.DispatchResult, lang: str) -> list[Any]:
    """The picture's text: each kind's nearest available responders (and nearer unavailable ones,
    marked) by ETA, water with its status, the place with its pre-plan and hazards, vulnerable residents."""
    rows = [_responder_row(r, lang) for r in result.responders.itertuples()]
    parts: list[Any] = [html.H3(t("dispatch_responders", lang)), html.Ol(rows, className="om-dp-list")]
    if result.responders.empty:
        parts.append(html.Div(t("dispatch_no_responder", lang), className="om-dp-line om-late"))
    if len(result.hydrants):
        parts.append(_labelled(t("dispatch_hydrants", lang), _water_line(result.hydrants, lang)))
    if len(result.water_sources):
        parts.append(_labelled(t("dispatch_water", lang), _water_line(result.water_sources, lang)))
    return parts + _place_parts(result, lang) + _vulnerable_parts(result, lang)


def dispatch_context(now: datetime) -> dispatch.CallContext:
    """Duty status, busy units, pre-plan fields and residents: once per snapshot and minute."""
    minute = now.replace(second=0, microsecond=0)

    def build() -> dispatch.CallContext:
        with context.connection() as con:
            return dispatch.load_context(con, as_of=now)

    return engines.memo("wall-dispatch-context", minute, build)


@callback(
    Output("wall-dispatch-layer", "children"),
    Output("wall-dispatch", "children"),
    Output(mapview.map_id(PAGE), "viewport", allow_duplicate=True),
    Input("wall-incident", "value"),
    State("wall-lang", "data"),
    State("wall-fly", "data"),
    State("wall-last-incident", "data"),
    prevent_initial_call=True,
)
def show_dispatch(incident_id: str | None, lang: str, fly: bool, newest: str | None):
    """The dispatch picture of one incident: routes, water, key place, ranked responders.

    The map flies to the incident when an operator picks one or a new alarm arrives; at
    start the wall keeps the whole district in view and shows the newest one's picture.
    """
    lang = lang_of(lang)
    if not incident_id:
        with context.connection() as con:
            b = mapdata.data_bounds(con, scope.towns())
        view = ({"bounds": mapview.display_bounds(b, context.settings()), "transition": "flyToBounds"}
                if b else dash.no_update)
        return [], html.Div(t("dispatch_pick", lang), className="om-dim"), view
    where, params = mapdata.town_sql(LAYERS["incident"], scope.towns())  # an id out of scope: as missing
    with context.connection() as con:
        row = con.execute(f"SELECT lon, lat FROM incident WHERE id = ? AND {where}", [incident_id, *params]).fetchone()
    if row is None:
        return [], html.Div(t("dispatch_none", lang), className="om-dim"), dash.no_update
    try:
        # the wall is a kiosk: personal fields stay masked unless the signed-in role sees them
        result = dispatch.dispatch(engines.scene(), float(row[0]), float(row[1]),
                                   context=dispatch_context(datetime.now()), incident_id=str(incident_id),
                                   show_personal=scope.sees_personal(PAGE))
    except OnemapError as exc:  # show why instead of a broken wall
        return [], html.Div(f"{t('dispatch_unavailable', lang)}: {exc}", className="om-dim"), dash.no_update
    tiles = context.settings().tiles
    lon, lat = mapdata.to_display([row[0]], [row[1]], tiles)
    pad = 0.02
    view = {"bounds": [[float(lat[0]) - pad, float(lon[0]) - pad], [float(lat[0]) + pad, float(lon[0]) + pad]],
            "transition": "flyToBounds"}
    if incident_id == newest and not fly:
        view = dash.no_update
    return _route_layers(result), _dispatch_panel(result, lang), view


@callback(
    Output(mapview.map_id(PAGE), "viewport", allow_duplicate=True),
    Output("wall-rotate-label", "children"),
    Input("wall-rotate", "n_intervals"),
    State("wall-lang", "data"),
    State("wall-incident", "value"),
    prevent_initial_call=True,
)
def rotate_towns(n: int, lang: str, incident: str | None):
    """Tour the towns (and the whole district) while nobody is looking at a dispatch."""
    if incident:
        return dash.no_update, dash.no_update
    lang = lang_of(lang)
    with context.connection() as con:
        towns = mapdata.area_boxes(con, TOWN_LEVEL, scope.towns())
        whole = mapdata.data_bounds(con, scope.towns())
    mine = scope.towns()
    first = t("whole_district", lang) if mine is None else "、".join(mine)
    stops = [(first, whole)] + towns
    name, box = stops[(n or 0) % len(stops)]  # a crafted payload may send None
    if box is None:
        return dash.no_update, dash.no_update
    return ({"bounds": mapview.display_bounds(box, context.settings()), "transition": "flyToBounds"},
            f"{t('rotate_town', lang)} · {name}")


mapview.register_map_callbacks(PAGE)
preload.register(PATH, opening_urls)
