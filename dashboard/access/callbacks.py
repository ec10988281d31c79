"""Which Dash callbacks a role may fire: only those of pages it may open (issue 13).

Every page's layout (in every language) names the component ids it holds; a registered
callback belongs to the pages holding its outputs (or, when its outputs are made at run time,
its inputs and states). A callback request (``POST /_dash-update-component``) is refused
with 403 unless the callback belongs to a page the principal may open: the wall account fires
only the wall page's callbacks, and only the admin the audit page's. The pages router (it
fills ``_pages_content`` from the location) is checked by the path it is asked to render.
A body that is not a callback request of this app answers 400 (fail closed).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import dash
import flask
from dash import Dash
from dash._utils import split_callback_id
from werkzeug.exceptions import BadRequest

from dashboard.access import PAGES, Principal

log = logging.getLogger(__name__)
LANGS = ("zh", "en")
ROUTER_ID = "_pages_location"
# a callback whose page cannot be told (its page failed to build) only for a role opening every page
_EVERY_PAGE = frozenset(PAGES)


def _id_key(cid: Any) -> str:
    return json.dumps(cid, sort_keys=True, ensure_ascii=False) if isinstance(cid, dict) else str(cid)


def _fits(declared: Any, held: Any) -> bool:
    """A declared id (wildcards ``["ALL"]`` etc. in a pattern) matches an id a layout holds."""
    if isinstance(declared, str) or isinstance(held, str):
        return declared == held
    return set(declared) == set(held) and all(isinstance(v, list) or held[k] == v for k, v in declared.items())


def _page_name(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _components(tree: Any) -> list[Any]:
    from dashboard.components.inputs import _components as walk

    return list(walk(tree))


def _layout_ids(app: Dash) -> tuple[dict[str, set[str]], list[tuple[Any, str]], set[str], bool]:
    """(string id → pages, [(dict id, page)], ids of the app's own layout, whether a page failed)."""
    by_id: dict[str, set[str]] = {}
    patterned: list[tuple[Any, str]] = []
    failed = False
    for page in dash.page_registry.values():
        layout, name = page.get("layout"), _page_name(page["module"])
        for lang in LANGS:
            try:
                tree = layout(lang=lang) if callable(layout) else layout
            except Exception as exc:  # noqa: BLE001 - a broken page: its callbacks stay unknown (refused)
                log.warning("page %s: ids not learned for the role gate: %s", name, exc)
                failed = True
                continue
            for comp in _components(tree):
                cid = getattr(comp, "id", None)
                if isinstance(cid, dict):
                    patterned.append((cid, name))
                elif cid is not None:
                    by_id.setdefault(str(cid), set()).add(name)
    shared = {str(getattr(c, "id", None)) for c in _components(app.layout) if getattr(c, "id", None) is not None}
    return by_id, patterned, shared, failed


def _pages_of(ids: list[Any], by_id: dict[str, set[str]], patterned: list[tuple[Any, str]]) -> set[str]:
    found: set[str] = set()
    for cid in ids:
        if isinstance(cid, dict):
            found |= {page for held, page in patterned if _fits(cid, held)}
        else:
            found |= by_id.get(str(cid), set())
    return found


class CallbackPages:
    """The pages each registered callback belongs to, learned once per app (first callback request).

    When a page's layout failed to build (its callbacks stay refused to all but the admin), it is
    tried again ``RETRY_S`` later: a passing failure (a busy database, a layer imported a minute
    later) must not leave the page's callbacks refused until a restart."""

    RETRY_S = 15.0

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, frozenset[str] | None] = {}
        self._learned_from = -1
        self._retry_at: float | None = None
        self._clock = clock

    def pages(self, app: Dash, key: str) -> frozenset[str] | None:
        """The pages of callback ``key``; None for the pages router (the app's own layout)."""
        with self._lock:
            retry = self._retry_at is not None and self._clock() >= self._retry_at
            if self._learned_from != len(app.callback_map) or retry:
                self._learn(app)
            return self._table.get(key, frozenset())

    def _learn(self, app: Dash) -> None:
        by_id, patterned, shared, failed = _layout_ids(app)
        self._retry_at = self._clock() + self.RETRY_S if failed else None
        table: dict[str, frozenset[str] | None] = {}
        for key, spec in app.callback_map.items():
            outs = split_callback_id(key)
            out_ids = [o["id"] for o in (outs if isinstance(outs, list) else [outs])]
            in_ids = [d["id"] for d in (spec.get("inputs") or []) + (spec.get("state") or [])]
            if out_ids and all(_id_key(i) in shared for i in out_ids):
                table[key] = None
                continue
            table[key] = frozenset(_pages_of(out_ids, by_id, patterned) or _pages_of(in_ids, by_id, patterned))
        self._table, self._learned_from = table, len(app.callback_map)


_PAGES = CallbackPages()


def _body() -> dict[str, Any] | None:
    try:
        body = flask.request.get_json(force=True, silent=True)
    except (BadRequest, RecursionError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _router_path(body: dict[str, Any]) -> str | None:
    for item in body.get("inputs") or []:
        if isinstance(item, dict) and item.get("id") == ROUTER_ID and item.get("property") == "pathname":
            value = item.get("value")
            return value if isinstance(value, str) else None
    return None


def refusal(app: Dash, principal: Principal) -> tuple[str, int] | None:
    """None when ``principal`` may fire the requested callback, else (why not, HTTP status)."""
    from dashboard.access.gate import page_of

    body = _body()
    key = body.get("output") if body else None
    if not isinstance(key, str) or key not in app.callback_map:
        return "a callback request must be a JSON object naming a callback of this app", 400
    pages = _PAGES.pages(app, key)
    who = f"{principal.name} ({principal.role.name})"
    if pages is None:  # the pages router: may this role open the page it is asked to render?
        path = _router_path(body) or "/"
        try:
            page = page_of("/" + (app.strip_relative_path(path) or ""))
        except Exception:  # noqa: BLE001 - Dash cannot read the path: no page of ours
            page = None
        if page is None or principal.may_open(page):
            return None
        return f"{who} may not open the page {path[:200]!r}", 403
    if pages & principal.role.pages or (not pages and _EVERY_PAGE <= principal.role.pages):
        return None
    shown = ", ".join(sorted(pages)) or "no known page"
    return f"{who} may not update the components of {shown} (callback {key[:120]})", 403
