"""The audited actions of the app: a hazard's status change and a /plan scenario's publish.

Routes (JSON in, JSON out; a body must be ``application/json``):

- ``POST /api/v1/hazard/<id>/status`` ``{"status": "立案", "note": "..."?}`` — editors
  (``status.change``); the status is one of the hazard layer's ``STATUSES`` and the move follows
  the closed loop (``geo.workflow``; 409 otherwise); the step's time (``filed_at`` ...) is set to
  now if empty, the times of later steps are cleared (a reopened hazard is open again). Written
  through the live journal (``geo.live``, a history row per field) and folded at once.
- ``POST /api/v1/scenarios`` ``{"name": ..., "edits": [...], "responder": ..., "session": ...?}``,
  or the document /plan exports with a ``name`` — planners (``scenario.publish``); the figures
  are recomputed on the server, never taken from the body. ``GET /api/v1/scenarios`` lists,
  ``GET /api/v1/scenarios/<id>`` returns one (``read``).

Each action leaves an audit row (``audit.record``) with the principal's name and role. A
principal without the action gets 403; sign-in (``dashboard.access.web``) answers 401 first
when users exist and nobody is signed in. Bad bodies answer 4xx with ``{"error": ...}``.
"""

from __future__ import annotations

import json
import sys
import unicodedata
import uuid
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import dash
import flask
from werkzeug.exceptions import BadRequest

from dashboard.access import Principal, audit, current_principal
from dashboard.access.control import open_control
from dashboard.components import context, inputs
from geo import jsonsafe, live, workflow
from geo.errors import OnemapError
from layers.hazard import SPEC as HAZARD, STATUSES

MAX_ID_CHARS = 200
"""Longest hazard or scenario id a URL may carry."""
MAX_NAME = 100
"""Longest scenario name."""
MAX_NOTE = 500
"""Longest note of a status change (kept in the audit row)."""
STEP_TIMES = workflow.STEP_TIMES
"""The time field each status step sets: 发现 → discovered_at, 立案 → filed_at, ..., 结案 → closed_at."""


class Refused(Exception):
    """An action refused with an HTTP status and a message (403, 404, 409, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def db_path() -> Path:
    """The running app's data file (its control file lies beside it)."""
    return context.reader().path


def actor_of(principal: Principal) -> str:
    """The audit actor: the user's name; ``token:<source>`` for a feed token."""
    return f"token:{principal.name}" if principal.source == "token" else principal.name


def record_request(action: str, obj: str | None = None, before: Any = None, after: Any = None) -> int:
    """An audit row for the running request's principal (routes and callbacks)."""
    who = current_principal()
    return audit.record(db_path(), actor_of(who), who.role.name, action, obj, before, after)


def require(action: str) -> Principal:
    """The request's principal when it may take ``action``; Refused(403) otherwise."""
    who = current_principal()
    if not who.may(action):
        raise Refused(403, f"role {who.role.name!r} may not {action}")
    return who


def _clean_text(value: Any, where: str, most: int, *, required: bool = True) -> str | None:
    """Text of at most ``most`` characters with no control characters, stripped."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise inputs.fail(where, f"text of 1 to {most} characters", value)
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise inputs.fail(where, "text without control characters", value)
    return value.strip()


def json_body(allowed: set[str]) -> dict[str, Any]:
    """The request's JSON object, with only ``allowed`` keys (BadInput otherwise; 415 if not JSON)."""
    if not flask.request.is_json:
        raise Refused(415, "send the body as application/json")
    try:
        body = flask.request.get_json()
    except (BadRequest, RecursionError, ValueError):
        raise inputs.BadInput("the body is not JSON, or is nested too deeply") from None
    if not isinstance(body, dict):
        raise inputs.fail("body", "a JSON object", body)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise inputs.BadInput(f"unknown keys {unknown[:5]!r}; the body takes {sorted(allowed)}")
    inputs.bounded_json(body, "body")
    return body


def _answer(data: Any, status: int = 200) -> flask.Response:
    return flask.Response(jsonsafe.dumps(data), status=status, mimetype="application/json")


# --------------------------------------------------------------------------- status change


def change_status(who: Principal, hazard_id: str, status: str, note: str | None) -> dict[str, Any]:
    """Move hazard ``hazard_id`` to ``status`` and audit it; the answer's body.

    Written through the live journal (``geo.live``: the closed-loop rules, a history row per
    field changed), then folded at once so every reader sees it as before. An editor moving a
    closed hazard back reopens it on purpose (the feed must say ``"reopen": true``)."""
    db = db_path()
    row = live.stored_rows(db, HAZARD, [hazard_id]).get(hazard_id)
    if row is None or (who.towns is not None and row.get("town") not in who.towns):
        raise Refused(404, f"no hazard {hazard_id[:60]!r}")
    if row["status"] == status:
        raise Refused(409, f"hazard {hazard_id[:60]!r} is already {status}")
    feature = {"type": "Feature", "geometry": None,
               "properties": {"id": hazard_id, "status": status, "reopen": True}}
    outcome = live.submit(db, "hazard", actor_of(who), feature, context.settings())
    if not outcome.accepted:
        reasons = "; ".join(str(r.get("detail") or r.get("reason")) for r in outcome.rejected)
        raise Refused(409, f"hazard {hazard_id[:60]!r}: {reasons}"[:500])
    live.fold(db, context.settings())
    after_row = live.stored_rows(db, HAZARD, [hazard_id])[hazard_id]
    keys = ["status", *STEP_TIMES.values()]
    changed_before = {k: row.get(k) for k in keys if after_row.get(k) != row.get(k)}
    changed_after = {k: after_row.get(k) for k in changed_before}
    seq = audit.record(db, actor_of(who), who.role.name, "status-change", f"hazard:{hazard_id}",
                       changed_before, {**changed_after, **({"note": note} if note else {})})
    return {"id": hazard_id, "status": status, "before": changed_before, "after": changed_after, "audit_seq": seq}


def _status_route(hazard_id: str) -> flask.Response:
    who = require("status.change")
    _clean_text(hazard_id, "hazard id", MAX_ID_CHARS)
    body = json_body({"status", "note"})
    status = body.get("status")
    if status not in STATUSES:
        raise inputs.fail("status", f"one of {list(STATUSES)}", status)
    note = _clean_text(body.get("note"), "note", MAX_NOTE, required=False)
    return _answer(change_status(who, hazard_id, status, note))


# --------------------------------------------------------------------------- scenarios


def _plan_page() -> ModuleType:
    """The /plan page module as Dash imported it (``pages.plan``: importing it again would re-register it)."""
    for page in dash.page_registry.values():
        if page.get("path") == "/plan":
            return sys.modules[page["module"]]
    raise Refused(404, "the /plan page is not part of this app")


def _scenario_input(body: dict[str, Any]) -> tuple[str, list, str, str]:
    """(name, edits, responder, session) of a publish body: plain or the /plan export with a name."""
    plan = _plan_page()
    inner = body.get("scenario") if body.get("type") == "FeatureCollection" else body
    if not isinstance(inner, dict):
        raise inputs.fail("scenario", 'an object {"edits": [...], "responder": ...}', inner)
    name = _clean_text(body.get("name"), "name", MAX_NAME)
    edits = inner.get("edits")
    if not isinstance(edits, list) or not edits:
        raise inputs.fail("edits", "a non-empty list of what-if edits", edits)
    plan.check_edits(edits, "edits")
    responder = inner.get("responder")
    inputs.one_of(plan.RESPONDERS)(responder, "responder")
    session = body.get("session")
    if session is None:
        session = uuid.uuid4().hex
    plan.check_session(session, "session")
    return name, edits, responder, session


def publish(who: Principal, name: str, edits: list, responder: str, session: str) -> dict[str, Any]:
    """Store the scenario (figures recomputed here) in the control db and audit it; its summary."""
    doc = _plan_page().scenario_document(edits, session, responder)
    sid, at = uuid.uuid4().hex[:16], datetime.now().replace(microsecond=0)
    with open_control(db_path()) as con:
        con.execute("INSERT INTO scenarios (id, name, owner, published_at, body) VALUES (?, ?, ?, ?, ?)",
                    [sid, name, actor_of(who), at, jsonsafe.dumps({**doc, "name": name, "towns": _towns(who)})])
    seq = audit.record(db_path(), actor_of(who), who.role.name, "scenario-publish", f"scenario:{sid}", None,
                       {"name": name, "responder": responder, "edits": len(edits), "after": doc["scenario"]["after"]})
    return {"id": sid, "name": name, "owner": actor_of(who), "published_at": at.isoformat(sep=" "),
            "url": f"/api/v1/scenarios/{sid}", "audit_seq": seq, "after": doc["scenario"]["after"]}


def _towns(who: Principal) -> list[str] | None:
    """The towns a scenario's figures are of: its publisher's scope (None: the whole district)."""
    return None if who.towns is None else sorted(who.towns)


def _visible(doc: dict[str, Any], who: Principal) -> bool:
    """A scenario shows to a principal whose scope holds every town its figures are of: a town
    user never sees a district scenario's figures (or another town's)."""
    if who.towns is None:
        return True
    towns = doc.get("towns")
    return isinstance(towns, list) and set(towns) <= set(who.towns)


def list_scenarios(who: Principal) -> list[dict[str, Any]]:
    """Published scenarios ``who`` may see, newest first (without their bodies)."""
    with open_control(db_path()) as con:
        found = con.execute("SELECT id, name, owner, published_at, body FROM scenarios "
                            "ORDER BY published_at DESC, id").fetchall()
    out = []
    for sid, name, owner, at, body in found:
        doc = json.loads(body)
        if not _visible(doc, who):
            continue
        inner = doc.get("scenario", {})
        out.append({"id": sid, "name": name, "owner": owner, "published_at": at.isoformat(sep=" "),
                    "responder": inner.get("responder"), "edits": len(inner.get("edits", []))})
    return out


def get_scenario(sid: str, who: Principal) -> dict[str, Any]:
    """One published scenario's document; Refused(404) when there is none or ``who`` may not see
    it (the same answer: ids cannot be probed)."""
    with open_control(db_path()) as con:
        row = con.execute("SELECT body FROM scenarios WHERE id = ?", [sid]).fetchone()
    doc = json.loads(row[0]) if row is not None else None
    if doc is None or not _visible(doc, who):
        raise Refused(404, f"no scenario {sid[:60]!r}")
    return doc


# --------------------------------------------------------------------------- routes


def register_actions(server: flask.Flask) -> None:
    """Add the action routes to the Flask server; Refused answers its status as JSON."""

    from dashboard.access.feed import install_feed

    install_feed(server, context.settings(), db_path())

    @server.errorhandler(Refused)
    def refused(exc: Refused) -> flask.Response:
        return _answer({"error": str(exc)}, exc.status)

    @server.route("/api/v1/hazard/<hazard_id>/status", methods=["POST"])
    def hazard_status(hazard_id: str) -> flask.Response:
        return _status_route(hazard_id)

    @server.route("/api/v1/scenarios", methods=["GET", "POST"])
    def scenarios() -> flask.Response:
        if flask.request.method == "GET":
            return _answer(list_scenarios(require("read")))
        who = require("scenario.publish")
        body = json_body({"name", "edits", "responder", "session", "type", "features", "scenario"})
        return _answer(publish(who, *_scenario_input(body)), 201)

    @server.route("/api/v1/scenarios/<sid>")
    def scenario(sid: str) -> flask.Response:
        who = require("read")
        _clean_text(sid, "scenario id", MAX_ID_CHARS)
        return _answer(get_scenario(sid, who))


def publish_message(name: Any, edits: list, responder: str, session: str, lang: str) -> str:
    """Publish from the /plan page for the request's principal; the message to show there."""
    from dashboard.i18n import t

    who = current_principal()
    if not who.may("scenario.publish"):
        return t("publish_denied", lang, role=who.role.name)
    if not edits:
        return t("publish_empty", lang)
    if not isinstance(name, str) or not name.strip():
        return t("publish_need_name", lang)
    try:
        clean = _clean_text(name, "name", MAX_NAME)
        done = publish(who, clean, edits, responder, session)
    except (inputs.BadInput, OnemapError) as exc:
        return t("publish_bad", lang, why=str(exc))
    return t("publish_done", lang, name=done["name"], id=done["id"])
