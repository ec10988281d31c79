"""What the browser sends, checked in one place before any callback runs.

Every Dash callback request (``POST /_dash-update-component``) passes ``check_dispatch`` first
(``dashboard.app`` calls it before Dash): the body must name a registered callback and carry
exactly its inputs, states and outputs, with the ids and properties the callback declared, and
every value must have the shape of its property (``PROPERTY_CHECKS``: a click count is a count,
a date picker's date an ISO date, a dropdown's value text or numbers), or the stricter shape a
page declared for one component with ``expect`` (a layer dropdown takes a layer name). Anything
else raises ``BadInput``, which the app answers with HTTP 400 and ``{"error": message}``; the
message names the component, the property, the value and what it takes. Callbacks therefore
see only values of the right shape, and new callbacks are covered without a line of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping
from typing import Any

from geo import mapdata
from geo.errors import ValidationError

Check = Callable[[Any, str], None]
"""A value check: ``check(value, where)`` raises BadInput naming ``where`` when the value does not fit."""

MAX_DEPTH: int = 12
"""Deepest nesting of any value a callback receives (a GeoJSON click on a polygon is about 6)."""
MAX_TEXT: int = 2_000
"""Longest text a control's value may be (names, ids, dates, languages are far shorter)."""
MAX_ITEMS: int = 1_000
"""Most items of a multi-select, a pattern-matching input list or a store's list."""
MAX_BODY_BYTES: int = 8 * 1024 * 1024
"""Largest callback request body (the biggest legitimate one, a what-if session's edits, is a few kB)."""
MAX_COUNT: int = 10**9
"""Largest click or interval count."""


class BadInput(ValidationError):
    """A request's value does not fit what the route or callback takes (answered with HTTP 400)."""


def _shown(value: Any, limit: int = 80) -> str:
    """``value`` as JSON text for a message, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(where: str, takes: str, value: Any) -> BadInput:
    """The BadInput for ``where`` (component.property) taking ``takes``, got ``value``."""
    return BadInput(f"{where} takes {takes}; got {_shown(value)}")


# --------------------------------------------------------------------------- value checks


def bounded_json(value: Any, where: str) -> None:
    """Any JSON value at most ``MAX_DEPTH`` deep, with finite numbers and at most ``MAX_ITEMS`` per list."""
    todo = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise BadInput(f"{where} is nested more than {MAX_DEPTH} levels deep; got {_shown(value)}")
        if isinstance(item, float) and not math.isfinite(item):
            raise fail(where, "finite numbers only", value)
        if isinstance(item, (list, dict)):
            if len(item) > MAX_ITEMS:
                raise BadInput(f"{where} holds {len(item):,} items; at most {MAX_ITEMS:,}")
            todo.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_TEXT
    if isinstance(value, (bool, int)):
        return True
    return isinstance(value, float) and math.isfinite(value)


def selection(value: Any, where: str) -> None:
    """A control's value: None, text, a finite number, true/false, or a list of those."""
    if value is None or _scalar(value):
        return
    if isinstance(value, list) and len(value) <= MAX_ITEMS and all(v is None or _scalar(v) for v in value):
        return
    raise fail(where, f"text (up to {MAX_TEXT} characters), a number or a list of those", value)


def count(value: Any, where: str) -> None:
    """A click or interval count: None or a whole number from 0."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT):
        return
    raise fail(where, "a count (a whole number from 0)", value)


def date(value: Any, where: str) -> None:
    """A date picker's date: None or an ISO date (``geo.mapdata.parse_date``)."""
    try:
        mapdata.parse_date(value, where)
    except ValidationError as exc:
        raise BadInput(str(exc)) from None


def text(value: Any, where: str) -> None:
    """None or text up to ``MAX_TEXT`` characters."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_TEXT):
        return
    raise fail(where, f"text up to {MAX_TEXT} characters", value)


def mapping(value: Any, where: str) -> None:
    """None or a JSON object (``bounded_json``): click data, a store of settings."""
    if value is not None and not isinstance(value, dict):
        raise fail(where, "an object", value)
    bounded_json(value, where)


def position(value: Any, where: str) -> None:
    """A marker position: ``[lat, lng]`` or ``{"lat": .., "lng": ..}`` in finite degrees (or None)."""
    if value is None:
        return
    pair = [value.get("lat"), value.get("lng")] if isinstance(value, dict) else value
    if (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            and math.isfinite(v) for v in pair)
            and -90 <= pair[0] <= 90 and -180 <= pair[1] <= 180):
        return
    raise fail(where, "a position [lat, lng] in degrees", value)


def flag(value: Any, where: str) -> None:
    """None, true or false (a toggle kept in a store)."""
    if value is not None and not isinstance(value, bool):
        raise fail(where, "true or false", value)


def optional(check: Check) -> Check:
    """``check`` that lets None through (a control not mounted yet)."""
    def checked(value: Any, where: str) -> None:
        if value is not None:
            check(value, where)
    return checked


def one_of(allowed: Collection[Any] | Callable[[], Collection[Any]], *, allow_none: bool = False) -> Check:
    """A check taking one of ``allowed`` (or a function giving them, read at request time)."""
    def checked(value: Any, where: str) -> None:
        options = list(allowed() if callable(allowed) else allowed)
        if (value is None and allow_none) or (_scalar(value) and value in options):
            return
        raise fail(where, f"one of {_shown(options, 400)}", value)
    return checked


def subset_of(allowed: Collection[Any] | Callable[[], Collection[Any]]) -> Check:
    """A check taking None or a list of distinct items of ``allowed`` (a checklist)."""
    def checked(value: Any, where: str) -> None:
        options = list(allowed() if callable(allowed) else allowed)
        if value is None or (isinstance(value, list) and len(value) <= len(options)
                             and all(_scalar(v) and v in options for v in value)):
            return
        raise fail(where, f"a list of items of {_shown(options, 400)}", value)
    return checked


def whole_number(lo: int, hi: int, *, allow_none: bool = True) -> Check:
    """A check taking a whole number from ``lo`` to ``hi`` (a number input)."""
    def checked(value: Any, where: str) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
                and float(value).is_integer() and lo <= value <= hi:
            return
        raise fail(where, f"a whole number from {lo} to {hi}", value)
    return checked


PROPERTY_CHECKS: dict[str, Check] = {
    "n_clicks": count, "n_intervals": count, "n_submit": count, "n_blur": count,
    "start_date": date, "end_date": date, "date": date,
    "value": selection,
    "clickData": mapping, "hoverData": mapping, "dblclickData": mapping,
    "position": position,
    "pathname": text, "search": text, "hash": text, "href": text,
}
"""What each component property takes, whatever the component (a property not listed: ``bounded_json``)."""

_EXPECTED: dict[tuple[str, str], Check] = {}


def expect(component_id: str, prop: str, check: Check) -> None:
    """Declare what ``component_id.prop`` takes, stricter than its property's default (pages call it
    at import next to their callbacks, e.g. a layer dropdown takes a layer name)."""
    _EXPECTED[(component_id, prop)] = check


def check_value(component_id: Any, prop: str, value: Any) -> None:
    """Raise BadInput unless ``value`` fits ``component_id.prop``: a page's ``expect``, else what the
    layout declares (``expect_from_layout``), else ``PROPERTY_CHECKS``."""
    cid = component_id if isinstance(component_id, str) else json.dumps(component_id, sort_keys=True)
    where = f"{cid}.{prop}"
    bounded_json(value, where)
    check = (_EXPECTED.get((cid, prop)) or _FROM_LAYOUT.get((cid, prop))) if isinstance(component_id, str) else None
    (check or PROPERTY_CHECKS.get(prop, bounded_json))(value, where)


# --------------------------------------------------------------------------- from the layouts

LANGUAGES: tuple[str, ...] = ("zh", "en")
LANG_STORE_SUFFIX = "-lang"
"""A ``dcc.Store`` whose id ends so holds the page's language (every page keeps one: ``plan-lang``)."""
CHOICE_CONTROLS: frozenset[str] = frozenset({"Dropdown", "RadioItems", "Checklist"})
_FROM_LAYOUT: dict[tuple[str, str], Check] = {}


def _components(tree: Any) -> list[Any]:
    """Every Dash component in ``tree``, including those held in other props (a deferred box's store)."""
    out, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (list, tuple)):
            todo.extend(node)
        elif isinstance(node, dict):
            todo.extend(node.values())
        elif hasattr(node, "_prop_names"):
            out.append(node)
            todo.extend(getattr(node, name, None) for name in node._prop_names if name != "id")
    return out


def _option_values(options: Any) -> list[Any]:
    if isinstance(options, dict):
        return list(options)
    return [o.get("value") if isinstance(o, dict) else o for o in options or []]


def _text_choice(multi: bool) -> Check:
    """A control whose options a callback fills: text (a list of texts when it is multi)."""
    def checked(value: Any, where: str) -> None:
        items = value if multi and isinstance(value, list) else [value]
        if (multi or not isinstance(value, list)) and len(items) <= MAX_ITEMS \
                and all(v is None or (isinstance(v, str) and len(v) <= MAX_TEXT) for v in items):
            return
        raise fail(where, "a list of texts" if multi else "a text", value)
    return checked


def expect_from_layout(trees: list[Any], filled_by_callbacks: set[str]) -> None:
    """Declare what a layout's controls take, so every page is covered without a line of its own.

    - a dropdown, radio list or checklist takes one of its options (a list of them when it is
      multi or a checklist); one whose ``options`` a callback fills (``filled_by_callbacks`` holds
      ``"id.options"``) takes text (declare numbers with ``expect``);
    - a store named ``<page>-lang`` takes a language of ``LANGUAGES``.
    ``trees`` are layouts of the same pages (one per language): their options are merged.
    """
    choices: dict[str, tuple[bool, set[Any] | None]] = {}
    for comp in (c for tree in trees for c in _components(tree)):
        cid, kind = getattr(comp, "id", None), type(comp).__name__
        if not isinstance(cid, str):
            continue
        if kind == "Store" and cid.endswith(LANG_STORE_SUFFIX):
            _FROM_LAYOUT[(cid, "data")] = one_of(LANGUAGES, allow_none=True)
        if kind not in CHOICE_CONTROLS:
            continue
        multi = kind == "Checklist" or bool(getattr(comp, "multi", False))
        dynamic = f"{cid}.options" in filled_by_callbacks
        known = choices.get(cid, (multi, set()))[1]
        values = None if dynamic or known is None else known | set(_option_values(getattr(comp, "options", None)))
        choices[cid] = (multi, values)
    for cid, (multi, values) in choices.items():
        if values is None:
            check = _text_choice(multi)
        else:
            check = subset_of(sorted(values, key=str)) if multi else one_of(sorted(values, key=str), allow_none=True)
        _FROM_LAYOUT[(cid, "value")] = check


# --------------------------------------------------------------------------- callback requests

_WILDCARDS = (["ALL"], ["MATCH"], ["ALLSMALLER"])


def _id_fits(sent: Any, declared: str | dict[str, Any]) -> bool:
    """Whether a sent component id is the declared one (a pattern's wildcards take any text or number)."""
    if isinstance(declared, str):
        return sent == declared
    if not isinstance(sent, dict) or set(sent) != set(declared):
        return False
    return all(_scalar(sent[k]) if v in _WILDCARDS else sent[k] == v for k, v in declared.items())


def _check_dependency(output: str, key: str, dep: Mapping[str, Any], item: Any) -> None:
    """One input or state as sent (a list of them for a pattern-matching id) against its declaration."""
    declared: str | dict[str, Any] = json.loads(dep["id"]) if dep["id"].startswith("{") else dep["id"]
    prop = dep["property"]
    items = item if isinstance(declared, dict) else [item]
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise fail(f"{output}: {key} {dep['id']}.{prop}", "a list of components", item)
    for one in items:
        if not (isinstance(one, dict) and _id_fits(one.get("id"), declared) and one.get("property") == prop):
            raise fail(f"callback {output}: {key}", f"{dep['id']}.{prop} in this place", one)
        check_value(one["id"], prop, one.get("value"))


def _check_outputs(output: str, sent: Any, multi: bool, n_outputs: int) -> None:
    if multi:
        ok = isinstance(sent, list) and len(sent) == n_outputs
        items = sent if ok else []
    else:
        ok, items = isinstance(sent, (dict, list)), ([sent] if isinstance(sent, dict) else sent or [])
    ok = ok and len(items) <= MAX_ITEMS and all(
        (isinstance(o, dict) and isinstance(o.get("property"), str) and isinstance(o.get("id"), (str, dict)))
        or (isinstance(o, list) and len(o) <= MAX_ITEMS) for o in items)
    if not ok:
        raise fail(f"callback {output}: outputs", f"the {n_outputs} output(s) of the callback", sent)
    bounded_json(sent, f"callback {output}: outputs")


def check_dispatch(body: Any, callbacks: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise BadInput unless ``body`` is a callback request this app can run as declared.

    ``callbacks`` is the app's ``callback_map``; the body must name one of its outputs and send
    its outputs, inputs and states in the declared order, ids and properties, each value fitting
    ``check_value``.
    """
    if not isinstance(body, dict):
        raise fail("a callback request", "a JSON object with output, outputs, inputs and state", body)
    output = body.get("output")
    if not isinstance(output, str) or output not in callbacks:
        raise fail("output", "the output of a callback of this app", output)
    cb = callbacks[output]
    multi = output.startswith("..")
    _check_outputs(output, body.get("outputs"), multi, output.count("...") + 1 if multi else 1)
    for key in ("inputs", "state"):
        declared = cb.get(key) or []
        sent = body.get(key, [] if key == "state" else None)
        if not isinstance(sent, list) or len(sent) != len(declared):
            names = [f"{d['id']}.{d['property']}" for d in declared]
            raise fail(f"callback {output}: {key}", f"{len(declared)} item(s) {names}", sent)
        for dep, item in zip(declared, sent, strict=True):
            _check_dependency(output, key, dep, item)
    changed = body.get("changedPropIds", [])
    if not (isinstance(changed, list) and len(changed) <= MAX_ITEMS
            and all(isinstance(c, str) and len(c) <= MAX_TEXT for c in changed)):
        raise fail("changedPropIds", "a list of 'id.property' texts", changed)
