"""Page chrome: the navigation bar with the language switch, KPI tiles, panels and tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dash import dash_table, html

from dashboard.access import current_principal
from dashboard.i18n import t

PAGES: tuple[tuple[str, str, str], ...] = (
    ("/", "nav_home", "home"), ("/wall", "nav_wall", "wall"), ("/plan", "nav_plan", "plan"),
    ("/review", "nav_review", "review"), ("/province", "nav_province", "province"), ("/audit", "nav_audit", "audit"),
)
"""(path, label key, page name of ``dashboard.access.PAGES``): the navbar shows the pages the
request's principal may open (a viewer sees no audit link; the wall account only the wall)."""


def navbar(path: str, lang: str, dark: bool = False) -> html.Nav:
    """Links to the pages (keeping the language) and a link switching the language."""
    suffix = "?lang=en" if lang == "en" else ""
    other = "zh" if lang == "en" else "en"
    who = current_principal()
    links = [html.A(t(key, lang), href=href + suffix, className="om-nav-link" + (" active" if href == path else ""))
             for href, key, page in PAGES if who.may_open(page)]
    return html.Nav([
        html.Span(t("app_title", lang), className="om-brand"),
        html.Div(links, className="om-nav-links"),
        html.A(t("lang_switch", lang), href=f"{path}?lang={other}", className="om-lang", id="lang-switch"),
    ], className="om-nav" + (" om-nav-dark" if dark else ""))


def kpi_tile(tile_id: str, label: str, value: str = "–", unit: str = "", tone: str = "") -> html.Div:
    """A KPI tile: big number, unit and label; ``tone`` (alert, warn, ok) colours the number."""
    return html.Div([
        html.Div([html.Span(value, id=tile_id, className="om-kpi-value"), html.Span(unit, className="om-kpi-unit")]),
        html.Div(label, className="om-kpi-label"),
    ], className=f"om-kpi {('om-kpi-' + tone) if tone else ''}")


def panel(title: str, children: Any, panel_id: str | None = None, class_name: str = "") -> html.Section:
    """A titled panel of a side bar or report."""
    kwargs = {"id": panel_id} if panel_id else {}
    return html.Section([html.H3(title, className="om-panel-title"), html.Div(children, className="om-panel-body")],
                        className=f"om-panel {class_name}", **kwargs)


def note(text: str) -> html.Div:
    """A grey note (an engine missing, no data)."""
    return html.Div(text, className="om-note")


def table(table_id: str, columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]] | None = None,
          page_size: int = 12, sortable: bool = True, dark: bool = False) -> dash_table.DataTable:
    """A sortable DataTable; ``columns`` are (field, label) pairs. Cell text is never HTML."""
    header = {"backgroundColor": "#1b2636" if dark else "#eef2f6", "fontWeight": "600",
              "color": "#e8eef5" if dark else "#1b2636"}
    cell = {"fontFamily": "inherit", "fontSize": "14px", "padding": "4px 8px", "textAlign": "left",
            "backgroundColor": "#0f1826" if dark else "white", "color": "#e8eef5" if dark else "#1b2636",
            "border": "1px solid #2a3a50" if dark else "1px solid #dde3ea", "whiteSpace": "normal",
            "height": "auto", "maxWidth": "260px"}
    return dash_table.DataTable(
        id=table_id, columns=[{"name": label, "id": field} for field, label in columns], data=rows or [],
        sort_action="native" if sortable else "none", page_size=page_size, style_header=header,
        style_cell=cell, style_table={"overflowX": "auto"}, markdown_options={"html": False},
    )
