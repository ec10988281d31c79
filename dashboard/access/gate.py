"""What a role may open, checked on the server for every request (issue 13).

- Pages: ``/``, ``/wall``, ``/plan``, ``/review``, ``/audit`` map to ``PAGES``; a role that may
  not open one gets the 403 page (the wall account opens ``/wall`` only).
- ``/api/…``: the role needs ``read``; the data of one page (``/api/overlay/<page>-…``, the
  published scenarios of ``/plan``) also needs that page: the wall account reads the map's
  layers, not /plan's isochrones or scenarios;
- a Dash page missing from ``PAGE_PATHS`` (a page added without a role rule) is refused to
  everyone (``UNLISTED``), never open to all.
- Dash callbacks (``/_dash-update-component``): see ``callbacks``.
"""

from __future__ import annotations

import dash
import flask
from dash import Dash

from dashboard.access import PAGES, Principal
from dashboard.access import pages as html_pages

PAGE_PATHS: dict[str, str] = {"home": "/", "wall": "/wall", "plan": "/plan", "review": "/review", "audit": "/audit",
              "province": "/province"}
_BY_PATH = {path: name for name, path in PAGE_PATHS.items()}


UNLISTED = "(unlisted page)"
"""The page name of a Dash page that ``PAGE_PATHS`` does not list: no role opens it."""
API_PAGES: dict[str, str] = {"/api/v1/scenarios": "plan"}
"""API paths (and what lies under them) holding one page's data: the page a role must open."""
OVERLAY = "/api/overlay/"


def page_of(path: str) -> str | None:
    """The page name of URL path ``path`` (``/plan/`` → ``plan``), ``UNLISTED`` for a Dash page
    not in ``PAGE_PATHS``, None for other paths."""
    key = path.rstrip("/") or "/"
    found = _BY_PATH.get(key)
    if found is None and any(key == (page.get("path") or "").rstrip("/") for page in dash.page_registry.values()):
        return UNLISTED
    return found


def api_page(path: str) -> str | None:
    """The page whose data API path ``path`` serves (``/api/overlay/plan-iso.geojson`` → ``plan``);
    ``UNLISTED`` for an overlay named after no page; None for the shared map data."""
    if path.startswith(OVERLAY):
        page = path[len(OVERLAY):].split("-", 1)[0]
        return page if page in PAGES else UNLISTED
    for prefix, page in API_PAGES.items():
        if path == prefix or path.startswith(prefix + "/"):
            return page
    return None


def first_page(principal: Principal) -> str:
    """The path of the first page the principal may open (``/`` for most, ``/wall`` for the wall)."""
    return PAGE_PATHS[next(p for p in PAGES if principal.may_open(p))]


def check(app: Dash, principal: Principal, path: str) -> flask.Response | None:
    """None when ``principal`` may have this request, else the 403 answer."""
    from dashboard.access.web import json_error, require

    page = page_of(path)
    if page is not None and flask.request.method in ("GET", "HEAD"):
        if principal.may_open(page):
            return None
        return html_pages.denied(f"{principal.name} ({principal.role.label_zh})", home=first_page(principal))
    if path.startswith("/api/"):
        owner = api_page(path)
        if owner is not None and not principal.may_open(owner):
            return json_error(f"{principal.name} ({principal.role.name}) may not read the data of the page {owner}",
                              403)
        return require("read")
    if path == "/_dash-update-component":
        from dashboard.access import callbacks

        refused = callbacks.refusal(app, principal)
        return json_error(*refused) if refused else None
    return None
