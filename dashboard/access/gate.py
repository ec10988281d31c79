"""What a role may open, checked on the server for every request (issue 13).

- Pages: ``/``, ``/wall``, ``/plan``, ``/review``, ``/audit`` map to ``PAGES``; a role that may
  not open one gets the 403 page (the wall account opens ``/wall`` only).
- ``/api/…``: the role needs ``read``.
- Dash callbacks (``/_dash-update-component``): see ``callbacks``.
"""

from __future__ import annotations

import flask
from dash import Dash

from dashboard.access import PAGES, Principal
from dashboard.access import pages as html_pages

PAGE_PATHS: dict[str, str] = {"home": "/", "wall": "/wall", "plan": "/plan", "review": "/review", "audit": "/audit",
              "province": "/province"}
_BY_PATH = {path: name for name, path in PAGE_PATHS.items()}


def page_of(path: str) -> str | None:
    """The page name of URL path ``path`` (``/plan/`` → ``plan``), None for other paths."""
    return _BY_PATH.get(path.rstrip("/") or "/")


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
        return require("read")
    if path == "/_dash-update-component":
        from dashboard.access import callbacks

        refused = callbacks.refusal(app, principal)
        return json_error(*refused) if refused else None
    return None
