"""The Dash app: three pages on one map (``/wall``, ``/plan``, ``/review``) plus ``/``.

``create_app(settings, db_path)`` is called by ``onemap serve`` and ``onemap demo``.
All JS and CSS are served by the app itself (Dash bundles, dash-leaflet with Leaflet's
CSS inside, ``dashboard/assets``); nothing is fetched from a CDN, so the dashboard works
on an intranet with no internet (``Settings.tiles = "none"``, the default).
"""

from __future__ import annotations

from pathlib import Path

import dash
import flask
from dash import Dash, html

from dashboard.components import context, engines, preload
from dashboard.components.routes import register_routes
from geo.settings import Settings

HERE = Path(__file__).resolve().parent


# Lazy chunks every map page needs: fetched with the page instead of after the first render.
PRELOAD_CHUNKS: tuple[str, ...] = ("dash_leaflet/async-GeoJSON.js",)


def _preloads(prefix: str) -> str:
    return "".join(f'<link rel="preload" as="script" href="{prefix}_dash-component-suites/{c}">'
                   for c in PRELOAD_CHUNKS)


class OnemapDash(Dash):
    """Dash whose page HTML preloads the data layers the page's map opens with (``preload``)."""

    def interpolate_index(self, **kwargs: str) -> str:
        """The index HTML with the requested page's preload links among its meta tags."""
        path = "/" + (self.strip_relative_path(flask.request.path or "/") or "")
        kwargs["metas"] = kwargs.get("metas", "") + preload.links(path.rstrip("/") or "/", flask.request.args)
        return super().interpolate_index(**kwargs)


def create_app(settings: Settings, db_path: str, *, warm: bool = True) -> Dash:
    """The dashboard for the database ``db_path`` (read through a snapshot-following Reader).

    With ``warm`` (the default) a background thread computes at once what every visitor
    asks for (coverage scene, base coverage and overlays, wall KPIs, the review's default
    period), and again whenever a new snapshot lands; pages never wait for it.
    """
    context.configure(settings, db_path)
    app = OnemapDash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        serve_locally=True,
        title="一图作战",
        update_title=None,
        suppress_callback_exceptions=True,
        compress=False,
    )
    app.index_string = app.index_string.replace("<html>", '<html lang="zh-CN">').replace(
        "{%metas%}", "{%metas%}" + _preloads(app.config.requests_pathname_prefix))
    app.layout = html.Div(dash.page_container, className="om-root")
    register_routes(app.server)
    if warm:
        engines.ensure_warm()
    return app
