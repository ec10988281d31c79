"""``/review`` 研判会商: hotspots, trends, closed loop, overdue and supervised lists,
inspection compliance and the town scorecard, for committee meetings; print-friendly.

Every figure comes from ``geo.hotspots`` and ``geo.governance`` with one shared
``geo.aggregate.Filter`` built from the time range and category filters, cut to the signed-in
user's towns (``dashboard.access.scope``: a town user's counts, tables, hotspots and response
figures are of their towns only; the town scorecard lists their towns with their district rank).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import dash
import dash_leaflet as dl
import pandas as pd
import plotly.graph_objects as go
from dash import ClientsideFunction, Input, Output, State, callback, dcc, html
from dash.exceptions import PreventUpdate

from dashboard.access import actions, scope
from dashboard.components import context, deferred, engines, mapview, palettes, preload, routes
from dashboard.components.chrome import navbar, panel, table
from dashboard.components.page_start import page_start
from dashboard.i18n import lang_of, t
from geo import governance, hotspots, mapdata, response
from geo.aggregate import Filter
from geo.errors import OnemapError
from layers.hazard import STATUSES
from layers.registry import LAYERS, get_spec

PAGE = "review"
PATH = "/review"
dash.register_page(__name__, path=PATH, name="研判会商", title="一图作战 · 研判会商")
NS = mapview.NS
SIDE = "review-side"  # the filter panel's box: its controls come once the map has painted (``deferred``)
LEVELS = (("town", "level_town"), ("community", "level_community"), ("grid_id", "level_grid"))
RESPONSE_BY = (("unit", "response_by_unit"), ("town", "response_by_town"))


def map_options() -> dict[str, Any]:
    """How the review map opens (shared by the layout and the HTML preload): boundaries, grids
    and the hazard filter of the opening period."""
    settings, bounds, _ = page_start()
    start, end = default_period()
    return {"settings": settings, "bounds": bounds, "version": context.version(), "size_hint": (1400, 520),
            "visible": [n for n, s in LAYERS.items() if s.geometry == "polygon"],
            "filters": map_filters(start, end, None, None)}


def opening_urls(_args: dict[str, str]) -> list[str]:
    """The data URLs the review map opens with: layers and the opening period's Gi* bins."""
    start, end = default_period()
    return [*mapview.opening_urls(PAGE, **map_options()).values(), hot_url(start, end, None, None)]


def layout(lang: str = "zh", **_: Any) -> html.Div:
    """Filters on the side; hotspot map, trend, tables and lists in the main column."""
    lang = lang_of(lang)
    options = map_options()
    counts = page_start()[2]
    spec = get_spec("hazard")
    start_text, end_text = default_period()
    start, end = pd.Timestamp(start_text), pd.Timestamp(end_text)
    bins = sorted(palettes.GI_BINS, reverse=True)
    the_map = mapview.map_panel(
        PAGE, lang, **options, counts=counts,
        overlays=[dl.GeoJSON(id="review-hot", url=hot_url(start_text, end_text, None, None), style=NS("zoneStyle"),
                             eventHandlers={"mouseover": NS("hoverZone")},
                             pane=mapview.PANES["overlay"][0],
                             hideout={"probe": "review-hot", "key": "bin", "colors": {str(b): c for b, c in palettes.GI_BINS.items()},
                                      "opacity": 0.7, "weight": 0.5, "hide": ["0"], "labelKey": "count",
                                      "labelPrefix": t("discovered", lang) + " "})],
        legend_extra=[html.Div([html.Span(className="om-sw-box", style={"background": palettes.GI_BINS[b]}),
                                t(palettes.GI_BIN_KEYS[b], lang)], className="om-legend-row") for b in bins],
    )
    side = [
        panel(t("filters", lang), [
            html.Label(t("filter_time", lang)),
            dcc.DatePickerRange(id="review-dates", display_format="YYYY-MM-DD",
                                start_date=start.date().isoformat(), end_date=end.date().isoformat()),
            html.Label(t("category", lang)),
            dcc.Dropdown(id="review-category", multi=True,
                         options=[{"label": c, "value": c} for c in spec.field("category").choices or ()]),
            html.Label(t("severity", lang)),
            dcc.Dropdown(id="review-severity", multi=True,
                         options=[{"label": c, "value": c} for c in spec.field("severity").choices or ()]),
            html.Label(t("by_level", lang)),
            dcc.RadioItems(id="review-level", value="town", inline=True,
                           options=[{"label": t(k, lang), "value": v} for v, k in LEVELS]),
            html.Div(html.Button(t("print", lang), id="review-print", className="om-btn", n_clicks=0),
                     className="om-row"),
            html.Div(id="review-total", className="om-big"),
            html.Div(id="review-period", className="om-review-period"),  # the period the figures are for
        ]),
    ]
    main = html.Div([
        html.Div(the_map, className="om-review-map"),
        # the chart (and Plotly's 4.8 MB bundle) comes after the map has painted
        panel(t("monthly_trend", lang), html.Div(id="review-trend-box", style={"height": "280px"}),
              class_name="om-wide"),
        panel(t("closed_loop", lang), html.Div(id="review-loop-box"), class_name="om-wide"),
        panel(t("overdue_list", lang), html.Div(id="review-overdue-box")),
        panel(t("supervised_list", lang), html.Div(id="review-listed-box")),
        panel(t("inspection", lang), html.Div(id="review-inspection-box")),
        panel(t("scorecard", lang), html.Div(id="review-scorecard-box")),
        panel(t("response_title", lang), [
            dcc.RadioItems(id="review-response-by", value="unit", inline=True,
                           options=[{"label": t(k, lang), "value": v} for v, k in RESPONSE_BY]),
            html.Div(id="review-response-summary", className="om-review-period"),
            html.Div(id="review-response-box"),
            html.Div(id="review-response-trend-box", style={"height": "240px"}),
            html.H4(t("response_worst", lang)),
            html.Div(id="review-response-worst-box"),
            html.Div(id="review-response-note", className="om-note"),
        ], class_name="om-wide"),
    ], className="om-review-main")
    return html.Div([
        navbar(PATH, lang),
        html.Div([*deferred.after_paint(SIDE, side, "om-side"), main], className="om-work"),
        dcc.Store(id="review-lang", data=lang),
        dcc.Store(id="review-probes", data=mapview.opening_probes(options["visible"], counts)),
        dcc.Store(id="review-go", data=None),
        html.Div(id="review-print-dummy", style={"display": "none"}),
        dcc.Store(id="review-printed"),
    ], className="om-page om-review")


def table_specs(lang: str) -> dict[str, tuple[list[tuple[str, str]], int]]:
    """Columns (field, label) and page size of the page's tables."""
    return {
        "review-loop": ([("area", t("by_level", lang)), ("discovered", t("discovered", lang)), ("closed", t("closed", lang)),
            ("open", t("open", lang)), ("rectification_rate", t("rectification_rate", lang)),
            ("median_days_to_close", t("median_days", lang)), *stage_columns(lang), ("overdue", t("overdue", lang)),
            ("open_major", t("open_major", lang)), ("listed_open", t("listed_open", lang)),
            ("recurring_places", t("recurring", lang)), ("in_grid_share", t("in_grid_share", lang))], 15),
        "review-overdue": ([("id", t("id", lang)), ("category", t("category", lang)), ("severity", t("severity", lang)),
            ("town", t("town", lang)), ("deadline", t("deadline", lang)), ("days_overdue", t("days_overdue", lang))], 10),
        "review-listed": ([("id", t("id", lang)), ("category", t("category", lang)), ("supervision", t("supervision", lang)),
            ("status", t("status", lang)), ("town", t("town", lang)), ("discovered_at", t("discovered_at", lang))], 10),
        "review-inspection": ([("town", t("town", lang)), ("inspection_class", t("inspection_class", lang)),
            ("places", t("places_total", lang)), ("inspected_in_interval", t("in_interval", lang)),
            ("never_inspected", t("never_inspected", lang)), ("compliance", t("compliance", lang))], 12),
        "review-scorecard": ([("rank", t("rank", lang)), ("town", t("town", lang)), ("score", t("score", lang)),
            ("rectification_rate", t("rectification_rate", lang)), ("on_time_rate", t("on_time_rate", lang)),
            ("inspection_compliance", t("compliance", lang)), ("no_recurrence_rate", t("no_recurrence_rate", lang))], 12),
    }


def stage_columns(lang: str) -> list[tuple[str, str]]:
    """(column, label) of the closed loop's median days per step (``governance.stage_days``) and reopenings."""
    spec = get_spec("hazard")
    steps = dict(zip(spec.time_order, STATUSES, strict=True))
    out = []
    for a, b in governance.STAGES:
        names = (steps[a], steps[b]) if lang == "zh" else (spec.field(a).en, spec.field(b).en)
        out.append((governance.stage_column(a, b), f"{names[0]}→{names[1]} " + ("中位天数" if lang == "zh" else "median days")))
    return [*out, ("reopened", "重新打开" if lang == "zh" else "Reopened")]


def build_filter(start: str | None, end: str | None, categories: list | None, severities: list | None) -> Filter:
    """The shared filter: [start, end] inclusive of the end day, categories, severities, and the
    towns of the request's scope (``scope.scoped``: never from the client)."""
    end_excl = (pd.Timestamp(end) + timedelta(days=1)) if end else None
    return scope.scoped(Filter(start=start, end=end_excl, category=tuple(categories or ()),
                               severity=tuple(severities or ())))


def _rates(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if col.endswith(("_rate", "_share")) or col in ("compliance", "inspection_compliance"):
            out[col] = (out[col] * 100).round(1)
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    frame = frame.copy()
    numeric = frame.select_dtypes("number").columns
    frame[numeric] = frame[numeric].round(2)
    return json.loads(frame.to_json(orient="records", date_format="iso", force_ascii=False))


def _key(start: str | None, end: str | None, categories: list | None, severities: list | None) -> tuple:
    return (start, end, tuple(sorted(categories or ())), tuple(sorted(severities or ())))


def hot_cells(start: str | None, end: str | None, categories: list | None, severities: list | None
              ) -> tuple[str, int]:
    """Significant Gi* bins as GeoJSON text and the number of hazards in the filter (once per snapshot and filter)."""

    def build() -> tuple[str, int]:
        settings = context.settings()
        flt = build_filter(start, end, categories, severities)
        with context.connection() as con:
            hot = hotspots.hotspots(con, flt, settings=settings).table
        sig = hot[hot["bin_fdr"] != 0]
        text = mapdata.cells_features(sig["cell"].to_numpy(), pd.DataFrame({
            "bin": sig["bin_fdr"].astype(int).astype(str).to_numpy(), "count": sig["count"].to_numpy()}),
            settings.tiles)
        return text, int(hot["count"].sum()) if len(hot) else 0

    return engines.memo("review-hot", _key(start, end, categories, severities), build)


def discovered_total(start: str | None, end: str | None, categories: list | None, severities: list | None) -> int:
    """Hazards discovered in the filter, as the closed-loop table counts them (once per snapshot and filter)."""

    def build() -> int:
        flt = build_filter(start, end, categories, severities)
        with context.connection() as con:
            return governance.discovered_count(con, flt)

    return int(engines.memo("review-total", _key(start, end, categories, severities), build))


def review_tables(start: str | None, end: str | None, categories: list | None, severities: list | None,
                  level: str) -> dict[str, pd.DataFrame]:
    """Monthly flow, closed loop, overdue and supervised lists, inspection, scorecard (once per snapshot and filter)."""

    def build() -> dict[str, pd.DataFrame]:
        settings = context.settings()
        flt = build_filter(start, end, categories, severities)
        as_of = governance.figures_as_of(None, flt)  # the end of the period (now if it has not ended)
        with context.connection() as con:
            return {
                "flow": governance.monthly_flow(con, flt, as_of=as_of),
                "loop": governance.closed_loop(con, by=(level,), flt=flt, as_of=as_of, settings=settings),
                "stages": governance.stage_days(con, by=(level,), flt=flt),
                "overdue": governance.overdue_hazards(con, flt, as_of=as_of, settings=settings, limit=100),
                "listed": governance.listed_hazards(con, flt, as_of=as_of, settings=settings, limit=100),
                "inspection": governance.inspection_compliance(con, by=("town",), as_of=as_of, flt=flt,
                                                               settings=settings),
                # the district's assessment, of the scope's towns (their rank among all towns)
                "scorecard": scope.keep_towns(governance.town_scorecard(con, governance.scorecard_year(as_of),
                                                                        as_of=as_of, settings=settings)),
            }

    return engines.memo("review-tables", (*_key(start, end, categories, severities), level), build)


def default_period() -> tuple[str, str]:
    """The page's opening period, first and last day (``governance.default_period``: the
    report's too; once per snapshot)."""

    def build() -> tuple[str, str]:
        with context.connection() as con:
            period = governance.default_period(con, context.settings())
        return period.start.date().isoformat(), period.last_day.isoformat()

    return engines.memo("review-period", None, build)


def map_filters(start: str | None, end: str | None, categories: list | None, severities: list | None
                ) -> dict[str, Any]:
    """The map's filter store for one review filter (the hazard layer, when shown, follows it)."""
    flt = build_filter(start, end, categories, severities)
    return {"hazard": {"f": {k: v for k, v in (("category", categories), ("severity", severities)) if v},
                       "start": start, "end": flt.end.strftime("%Y-%m-%d") if flt.end else None}}


def hot_url(start: str | None, end: str | None, categories: list | None, severities: list | None) -> str:
    """URL of the significant Gi* bins for one filter (fetched by the map straight from Flask,
    cached per snapshot; the page's HTML preloads the opening one)."""
    q = {"start": start or "", "end": end or "", "v": str(context.version())}
    if categories:
        q["category"] = json.dumps(sorted(categories), ensure_ascii=False)
    if severities:
        q["severity"] = json.dumps(sorted(severities), ensure_ascii=False)
    return "/api/overlay/review-hot.geojson?" + urlencode(q)


def _hot_route(args: dict[str, str]) -> str:
    def values(name: str) -> list[str] | None:
        text = args.get(name)
        if not text:
            return None
        try:
            out = json.loads(text)
        except json.JSONDecodeError:
            out = None
        if not isinstance(out, list):
            raise OnemapError(f"{name} must be a JSON list of values, got {text[:80]!r}")
        return [str(v) for v in out]

    for name in ("start", "end"):
        if args.get(name):
            try:
                pd.Timestamp(args[name])
            except (ValueError, TypeError):
                raise OnemapError(f"{name} must be a date such as 2026-01-31, got {args[name][:40]!r}") from None
    text, _ = hot_cells(args.get("start") or None, args.get("end") or None, values("category"), values("severity"))
    return text


routes.register_overlay("review-hot", _hot_route)


@engines.on_warm
def warm_review() -> None:
    """What every committee member sees on opening: the default period's bins and tables."""
    start, end = default_period()
    hot_cells(start, end, None, None)
    discovered_total(start, end, None, None)
    review_tables(start, end, None, None, LEVELS[0][0])


@callback(
    Output("review-hot", "url"),
    Output(mapview.filters_id(PAGE), "data"),
    Input("review-dates", "start_date"),
    Input("review-dates", "end_date"),
    Input("review-category", "value"),
    Input("review-severity", "value"),
    prevent_initial_call=True,
)
def update_map(start: str | None, end: str | None, categories: list | None, severities: list | None):
    """The hotspot layer's URL and the map's filters for a new filter (the page opens with
    both in its layout: the map never waits for a callback)."""
    return hot_url(start, end, categories, severities), map_filters(start, end, categories, severities)


@callback(
    Output("review-total", "children"),
    Output("review-period", "children"),
    Input("review-dates", "start_date"),
    Input("review-dates", "end_date"),
    Input("review-category", "value"),
    Input("review-severity", "value"),  # first figure as the filter panel mounts, after the map has painted
    State("review-lang", "data"),
)
def update_total(start: str | None, end: str | None, categories: list | None, severities: list | None, lang: str):
    """Hazards discovered in the filter (``governance.discovered_count``) and the period shown."""
    lang = lang_of(lang)
    total = discovered_total(start, end, categories, severities)
    period = f"{start or '…'} – {end or '…'}"
    return f"{t('discovered', lang)}: {total:,}", f"{t('period', lang)}: {period}"


# Tables and chart wait until the map has painted (or 4 s): the map never waits for them.
dash.clientside_callback(
    ClientsideFunction(namespace="onemap", function_name="afterMapPaint"),
    Output("review-go", "data"),
    Input("review-hot", "url"),
    State("review-probes", "data"),
)


@callback(
    Output("review-trend-box", "children"),
    # the tables are created here, after the map has painted (DataTable's bundle is not on the map's path)
    Output("review-loop-box", "children"),
    Output("review-overdue-box", "children"),
    Output("review-listed-box", "children"),
    Output("review-inspection-box", "children"),
    Output("review-scorecard-box", "children"),
    Input("review-go", "data"),
    # the filter panel mounts after the map has painted (``deferred``): until then these are None
    Input("review-level", "value", allow_optional=True),
    State("review-dates", "start_date", allow_optional=True),
    State("review-dates", "end_date", allow_optional=True),
    State("review-category", "value", allow_optional=True),
    State("review-severity", "value", allow_optional=True),
    State("review-lang", "data"),
)
def update_tables(_go: float | None, level: str | None, start: str | None, end: str | None, categories: list | None,
                  severities: list | None, lang: str):
    """Trend, closed loop, lists, inspection and scorecard for one filter (once the filter panel
    is there: it mounts after the map has painted, and this runs again as it does)."""
    if level is None:
        raise PreventUpdate
    lang = lang_of(lang)
    tables = review_tables(start, end, categories, severities, level)
    flow = tables["flow"]
    fig = go.Figure()
    if len(flow):
        fig.add_bar(x=flow["month"], y=flow["discovered"], name=t("discovered", lang), marker_color="#E69F00")
        fig.add_scatter(x=flow["month"], y=flow["closed"], name=t("closed", lang), mode="lines+markers",
                        line={"color": "#0072B2", "width": 3})
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 30}, legend={"orientation": "h"},
                      font={"family": "Noto Sans CJK SC, sans-serif"}, plot_bgcolor="white")
    loop = _rates(tables["loop"].merge(tables["stages"], on=level, how="left").rename(columns={level: "area"}))
    graph = dcc.Graph(id="review-trend", figure=fig, config={"displaylogo": False, "displayModeBar": False},
                      style={"height": "280px"})
    rows = {"review-loop": _records(loop), "review-overdue": _records(tables["overdue"]),
            "review-listed": _records(tables["listed"]), "review-inspection": _records(_rates(tables["inspection"])),
            "review-scorecard": _records(_rates(tables["scorecard"]))}
    return (graph, *[table(tid, cols, rows[tid], page_size=size) for tid, (cols, size) in table_specs(lang).items()])


def response_figures(start: str | None, end: str | None, by: str) -> response.ResponsePerformance:
    """Measured response of the calls received in [start, end] (end day inclusive), by unit or
    town (``geo.response``; once per snapshot and period)."""

    def build() -> response.ResponsePerformance:
        flt = build_filter(start, end, None, None)
        with context.connection() as con:
            return response.response_performance(con, by=by, flt=flt, settings=context.settings())

    return engines.memo("review-response", (start, end, by), build)


def response_columns(by: str, lang: str) -> list[tuple[str, str]]:
    """The response table's columns (field, label) for ``by``."""
    head = ([("unit_name", t("response_unit", lang)), ("kind", t("response_kind", lang))] if by == "unit"
            else [("town", t("town", lang))])
    times = [(f"{m}_p{p}", t(f"{m}_p{p}", lang)) for m in response.MEASURES for p in response.PERCENTILES]
    return [*head, ("calls", t("response_calls", lang)), *times, ("turnout_met", t("turnout_met", lang)),
            ("on_scene_met", t("on_scene_met", lang))]


def response_rows(frame: pd.DataFrame, lang: str) -> list[dict[str, Any]]:
    """Rows as shown: times m:ss (``response.mmss``), shares in % with one decimal."""
    rows = []
    for rec in frame.to_dict("records"):
        row = {"unit_name": rec.get("unit_name") or rec.get("unit_id"), "town": rec.get("town"),
               "kind": LAYERS[rec["layer"]].label(lang) if rec.get("layer") in LAYERS else None,
               "calls": int(rec["calls"])}
        for m in response.MEASURES:
            for p in response.PERCENTILES:
                row[f"{m}_p{p}"] = response.mmss(rec[f"{m}_p{p}_s"])
        for kind in ("turnout", "on_scene"):
            share = rec[f"{kind}_met_share"]
            row[f"{kind}_met"] = "—" if pd.isna(share) else f"{100 * share:.1f}%"
        rows.append(row)
    return rows


@callback(
    Output("review-response-summary", "children"),
    Output("review-response-box", "children"),
    Output("review-response-trend-box", "children"),
    Output("review-response-worst-box", "children"),
    Output("review-response-note", "children"),
    Input("review-go", "data"),
    Input("review-response-by", "value"),
    State("review-dates", "start_date", allow_optional=True),
    State("review-dates", "end_date", allow_optional=True),
    State("review-lang", "data"),
)
def update_response(_go: float | None, by: str | None, start: str | None, end: str | None, lang: str):
    """The measured-response panel: district line, table by unit or town, monthly trend, slowest calls."""
    lang = lang_of(lang)
    if by not in ("unit", "town"):
        raise PreventUpdate
    if start is None and end is None:  # the filter panel mounts after the map: the opening period
        start, end = default_period()
    result = response_figures(start, end, by)
    d = result.district
    met = "—" if pd.isna(d["on_scene_met_share"]) else f"{100 * d['on_scene_met_share']:.1f}%"
    summary = t("response_summary", lang, calls=f"{int(d['calls']):,}", p50=response.mmss(d["total_p50_s"]),
                p90=response.mmss(d["total_p90_s"]), met=met)
    trend = result.trend
    fig = go.Figure()
    if len(trend):
        for p, color in zip(response.PERCENTILES, ("#56B4E9", "#D55E00"), strict=False):
            fig.add_scatter(x=trend["month"], y=trend[f"total_p{p}_s"] / 60.0, name=t(f"total_p{p}", lang),
                            mode="lines+markers", line={"color": color, "width": 3})
    fig.update_layout(margin={"l": 40, "r": 10, "t": 10, "b": 30}, legend={"orientation": "h"},
                      font={"family": "Noto Sans CJK SC, sans-serif"}, plot_bgcolor="white",
                      yaxis={"title": t("response_trend", lang)})
    graph = dcc.Graph(id="review-response-trend", figure=fig, config={"displaylogo": False, "displayModeBar": False},
                      style={"height": "240px"})
    worst = [{"id": r["id"], "call_time": pd.Timestamp(r["reported_at"]).strftime("%Y-%m-%d %H:%M"),
              "town": r["town"], "unit_name": r["unit_name"] or "—", "turnout": response.mmss(r["turnout_s"]),
              "travel": response.mmss(r["travel_s"]), "total": response.mmss(r["total_s"])}
             for r in result.worst.to_dict("records")]
    worst_cols = [("id", t("id", lang)), ("call_time", t("call_time", lang)), ("town", t("town", lang)),
                  ("unit_name", t("response_unit", lang)), ("turnout", t("turnout_time", lang)),
                  ("travel", t("travel_time", lang)), ("total", t("total_time", lang))]
    targets = result.targets
    note = t("response_note", lang, mt=response.mmss(targets["micro_station"][0]),
             ms=response.mmss(targets["micro_station"][1]), fs=response.mmss(targets["fire_station"][1]),
             unmatched=result.first_unit_unmatched, none=result.calls_without_unit)
    return (summary, table("review-response", response_columns(by, lang), response_rows(result.table, lang), page_size=12),
            graph, table("review-response-worst", worst_cols, worst, page_size=10), note)


@callback(
    Output("review-printed", "data"),
    Input("review-print", "n_clicks"),
    State("review-dates", "start_date"),
    State("review-dates", "end_date"),
    State("review-category", "value"),
    State("review-severity", "value"),
    prevent_initial_call=True,
)
def printed(n: int | None, start: str | None, end: str | None, categories: list | None,
            severities: list | None) -> dict[str, Any]:
    """The print button prints the page's report: an audit row ``report`` first (period,
    filters and the towns it covers), then the browser prints (the callback below)."""
    if not n:
        raise PreventUpdate
    towns = scope.towns()
    seq = actions.record_request("report", "review:print", after={
        "start": start, "end": end, "categories": categories or [], "severities": severities or [],
        "towns": list(towns) if towns is not None else None})
    return {"n": n, "audit_seq": seq}


dash.clientside_callback(
    "function(d) { if (d) { window.print(); } return ''; }",
    Output("review-print-dummy", "children"),
    Input("review-printed", "data"),
    prevent_initial_call=True,
)

mapview.register_map_callbacks(PAGE)
deferred.register(SIDE, mapview.painted_id(PAGE))
preload.register(PATH, opening_urls)
