"""``/``: the overview map (全域一图) of every layer, with links to the three pages."""

from __future__ import annotations

from typing import Any

import dash
from dash import html

from dashboard.components import context, mapview, preload
from dashboard.components.chrome import navbar
from dashboard.components.page_start import page_start
from dashboard.i18n import lang_of, t

PAGE = "home"
PATH = "/"
dash.register_page(__name__, path=PATH, name="全域一图", title="一图作战 · 全域一图")


def map_options() -> dict[str, Any]:
    """How the overview map opens (shared by the layout and the HTML preload)."""
    settings, bounds, counts = page_start()
    return {"settings": settings, "bounds": bounds, "version": context.version(), "size_hint": (1900, 960),
            "visible": mapview.default_visible(counts, settings)}


def opening_urls(_args: dict[str, str]) -> list[str]:
    """The data URLs the overview map opens with."""
    return list(mapview.opening_urls(PAGE, **map_options()).values())


def layout(lang: str = "zh", **_: Any) -> html.Div:
    """Overview: navigation, a short index of the pages and the map."""
    lang = lang_of(lang)
    options = map_options()
    counts = page_start()[2]
    cards = html.Div([
        html.Span(t("home_intro", lang)),
        html.A(t("home_wall", lang), href="/wall" + ("?lang=en" if lang == "en" else ""), className="om-card"),
        html.A(t("home_plan", lang), href="/plan" + ("?lang=en" if lang == "en" else ""), className="om-card"),
        html.A(t("home_review", lang), href="/review" + ("?lang=en" if lang == "en" else ""), className="om-card"),
    ], className="om-index")
    body = [mapview.map_panel(PAGE, lang, **options,
                              clustered_layers=mapview.clustered(counts, options["settings"]), counts=counts)]
    if options["bounds"] is None:
        body.insert(0, html.Div(t("no_data", lang), className="om-note"))
    return html.Div([navbar(PATH, lang), cards, html.Div(body, className="om-home-map")], className="om-page")


mapview.register_map_callbacks(PAGE)
preload.register(PATH, opening_urls)
