"""The Dash app: three pages on one map (``/wall``, ``/plan``, ``/review``) plus ``/``.

``create_app(settings, db_path)`` is called by ``onemap serve`` and ``onemap demo``.
All JS and CSS are served by the app itself (Dash bundles, dash-leaflet with Leaflet's
CSS inside, ``dashboard/assets``); nothing is fetched from a CDN, so the dashboard works
on an intranet with no internet (``Settings.tiles = "none"``, the default).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import dash
import flask
from dash import Dash, html
from dash._utils import split_callback_id
from werkzeug.exceptions import BadRequest, HTTPException

from dashboard.access import web as access_web
from dashboard.access.actions import register_actions
from dashboard.components import context, engines, inputs, preload
from dashboard.components.routes import register_routes
from geo.errors import OnemapError, ValidationError
from geo.settings import Settings

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


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
    access_web.install(app, settings, db_path)  # sign-in, the request's principal, roles, security headers
    register_routes(app.server)
    register_actions(app.server)
    guard_requests(app)
    if warm:
        engines.ensure_warm()
    return app


def _path_check(prefix: str) -> inputs.Check:
    """What the pages' location takes: a path under the app's prefix (Dash's router fails on others)."""
    def checked(value: object, where: str) -> None:
        inputs.text(value, where)
        if value is not None and not (isinstance(value, str) and value.startswith(prefix)):
            raise inputs.fail(where, f"a path starting with {prefix}", value)
    return checked


def _learn_layouts(app: Dash) -> None:
    """What the pages' controls take, read from their layouts in every language (``inputs.expect_from_layout``)."""
    filled = {f"{o['id']}.{o['property']}" for out in app.callback_map
              for o in (lambda spec: spec if isinstance(spec, list) else [spec])(split_callback_id(out))}
    trees = []
    for page in dash.page_registry.values():
        for lang in inputs.LANGUAGES:
            layout = page.get("layout")
            if layout is None:  # registered without a layout yet (another app in this process)
                continue
            try:
                trees.append(layout(lang=lang) if callable(layout) else layout)
            except OnemapError as exc:  # the page fails for its visitors too; its controls keep the defaults
                log.warning("controls of page %s not learned: %s", page["path"], exc)
    inputs.expect_from_layout(trees, filled)


def _json_error(message: str, status: int) -> flask.Response:
    return flask.Response(flask.json.dumps({"error": message}, ensure_ascii=False), status=status,
                          mimetype="application/json")


def guard_requests(app: Dash) -> None:
    """Bad input answers 4xx with ``{"error": message}``, never 500: one place for every route and callback.

    - Every Dash callback request is checked against the callback it names before Dash runs it
      (``inputs.check_dispatch``: envelope, ids, and the shape of every value).
    - A ``ValidationError`` (``inputs.BadInput`` is one) raised by a route or a callback while
      parsing its input is a 400 with its message.
    - Request bodies over ``inputs.MAX_BODY_BYTES`` are refused (413); other 4xx of the API and
      of callbacks (bad JSON, unknown URL) answer JSON too.
    """
    server = app.server
    server.config["MAX_CONTENT_LENGTH"] = inputs.MAX_BODY_BYTES
    dispatch_path = app.config.routes_pathname_prefix + "_dash-update-component"
    inputs.expect("_pages_location", "pathname", _path_check(app.config.requests_pathname_prefix))
    learned = threading.Event()

    @server.before_request
    def check_callback_request() -> None:
        if flask.request.path != dispatch_path or flask.request.method != "POST":
            return
        if not learned.is_set():
            _learn_layouts(app)
            learned.set()
        try:
            body = flask.request.get_json(force=True)
        except (BadRequest, RecursionError, ValueError):
            raise inputs.BadInput("a callback request must be a JSON object (the body is not JSON, "
                                  "or is nested too deeply)") from None
        inputs.check_dispatch(body, app.callback_map)

    @server.errorhandler(ValidationError)
    def bad_input(exc: ValidationError) -> flask.Response:
        return _json_error(str(exc), 400)

    @server.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> flask.Response | HTTPException:
        path = flask.request.path
        if path.startswith("/api/") or path == dispatch_path:
            return _json_error(f"{exc.name}: {exc.description}", exc.code or 400)
        return exc
