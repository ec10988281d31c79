"""The feed API (issue 12): ``POST /api/v1/events/<layer>`` with a Bearer token.

Body: a GeoJSON Feature or FeatureCollection (``geo.live``), at most ``live_max_body_kb``.
Answers (JSON): ``201 {"accepted", "rejected": [{"index", "field", "reason", "value", ...}],
"ids", "unchanged"}`` when a record was accepted; ``400`` with the same shape when none was
(or ``{"error"}`` when the body is not GeoJSON); ``401`` without a valid token; ``403`` when
the token may not write the layer; ``404`` for an unknown layer; ``413`` over the size limit;
``415`` when the body is not JSON. Each accepted batch leaves an audit row (action ``event``),
written within half a second by ``AuditQueue``.

The route runs before sign-in (a ``before_request`` hook placed first): a feed platform has a
token, never a session, so a server with users does not send it to the sign-in page. The
server also starts the compactor (``geo.live.Compactor``) that folds the journal.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import flask

from dashboard.access import audit, set_current_principal
from dashboard.access.tokens import Keyring
from dashboard.components import inputs
from geo import jsonsafe, live
from geo.errors import OnemapError
from geo.settings import Settings

log = logging.getLogger(__name__)
PATH_RE = re.compile(r"^/api/v1/events/([^/]{1,64})/?$")
_STATE: dict[Any, Any] = {}
_LOCK = threading.Lock()


def _answer(data: Any, status: int) -> flask.Response:
    return flask.Response(jsonsafe.dumps(data), status=status, mimetype="application/json")


def _error(message: str, status: int) -> flask.Response:
    return _answer({"error": message}, status)


def install_feed(server: flask.Flask, settings: Settings, db_path: str | Path, prefix: str = "") -> None:
    """Add the feed route (first of the before-request hooks) and start the journal's compactor."""
    keyring = Keyring(db_path)
    prefix = prefix.rstrip("/")

    def feed_hook() -> flask.Response | None:
        path = flask.request.path[len(prefix):] if prefix and flask.request.path.startswith(prefix) else flask.request.path
        found = PATH_RE.match(path)
        if not found:
            return None
        if flask.request.method != "POST":
            return _error("POST a GeoJSON Feature or FeatureCollection here", 405)
        return handle(keyring, settings, Path(db_path), found.group(1))

    server.before_request_funcs.setdefault(None, []).insert(0, feed_hook)
    old = _STATE.get("compactor")
    if old is not None:
        old.stop()
    _STATE["compactor"] = live.Compactor(db_path, settings).start()


def handle(keyring: Keyring, settings: Settings, db: Path, layer: str) -> flask.Response:
    """One POST: token, layer, size, body, then ``geo.live.submit``; an audit row per accepted batch."""
    try:
        who = keyring.principal(flask.request.headers.get("Authorization"))
    except OnemapError as exc:
        return _error(str(exc), 503)
    if who is None:
        return _error('send "Authorization: Bearer <token>" with a valid token (onemap token create)', 401)
    principal, layers = who
    set_current_principal(principal)
    if layer not in live.feed_layers():
        return _error(f"no feed layer {layer[:40]!r}; one of {live.feed_layers()}", 404)
    if layer not in layers:
        return _error(f"the token of {principal.name!r} may write {list(layers)}, not {layer!r}", 403)
    limit = int(settings.live_max_body_kb * 1024)
    length = flask.request.content_length
    if length is not None and length > limit:
        return _error(f"the body has {length:,} bytes; at most {limit:,} (live_max_body_kb)", 413)
    data = flask.request.stream.read(limit + 1)
    if len(data) > limit:
        return _error(f"the body is over {limit:,} bytes (live_max_body_kb)", 413)
    if not flask.request.is_json:
        return _error("send the body as application/json (GeoJSON)", 415)
    try:
        body = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
        inputs.bounded_json(body, "body")
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        return _error(f"the body is not JSON GeoJSON: {str(exc)[:200]}", 400)
    except inputs.BadInput as exc:
        return _error(str(exc), 400)
    try:
        outcome = live.submit(db, layer, principal.name, body, settings)
    except live.LiveInputError as exc:
        return _error(str(exc), 400)
    if outcome.seqs:
        _audits(db).add(principal.name, layer, outcome)
    return _answer(outcome.answer(), 201 if outcome.accepted else 400)


def _audits(db: Path) -> AuditQueue:
    with _LOCK:
        queue = _STATE.get(("audit", db))
        if queue is None:
            queue = _STATE[("audit", db)] = AuditQueue(db)
        return queue


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class AuditQueue:
    """Audit rows of accepted batches, written by a thread in one transaction per ``FLUSH_S``.

    Opening the control database costs tens of milliseconds: written in the request, it would be
    most of a POST's time and cap the feed at a few batches a second. The events themselves are
    durable in the journal before the 201; the audit rows of the last ``FLUSH_S`` are lost only if
    the server dies in between (``geo.journal`` still holds every event with its source)."""

    FLUSH_S = 0.5

    def __init__(self, db: Path) -> None:
        self.db = db
        self._rows: list[tuple[str, str | None, str, str | None, Any, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._run, name="onemap-feed-audit", daemon=True).start()

    def add(self, source: str, layer: str, outcome: live.Outcome) -> None:
        row = (f"token:{source}", "feed", "event", f"{layer}:{outcome.seqs[0]}-{outcome.seqs[-1]}", None,
               {"accepted": outcome.accepted, "stored": len(outcome.seqs), "ids": outcome.ids[:20],
                "rejected": len(outcome.rejected)})
        with self._lock:
            self._rows.append(row)
        self._wake.set()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            audit.record_many(self.db, rows)
        except OnemapError as exc:
            log.warning("audit rows of %d feed batches not written: %s", len(rows), exc)
            with self._lock:
                self._rows[:0] = rows  # tried again at the next flush

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.FLUSH_S)
            self._wake.clear()
            self.flush()
