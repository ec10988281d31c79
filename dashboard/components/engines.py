"""The analysis objects a page needs, built once per database snapshot and shared.

The coverage scene, the base coverage, the hydrant blind spots and per-session what-if
engines are expensive to build and cheap to query; they are kept here keyed by the
app's snapshot (``snapshot_cache.snapshot_token``), so a new ingest (a swapped snapshot)
rebuilds them. The first call that sees a new snapshot drops everything of the old one
(shared objects, every session's engine, page figures); the sessions' engines are also
bounded by bytes (``cache_max_mb``). No analysis happens here: everything is a call into ``geo/``.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from dashboard.components import context
from dashboard.components.snapshot_cache import SnapshotLRU, SnapshotToken, is_current, on_new_snapshot, snapshot_token
from geo import cache, coverage, water
from geo.coverage_inputs import Scene, load_scene
from geo.errors import OnemapError

_LOCK = threading.RLock()
_SHARED: dict[str, Any] = {}
_ENGINES: OrderedDict[str, tuple[SnapshotToken, coverage.CoverageEngine, list[dict[str, Any]]]] = OrderedDict()
_ENGINE_BYTES: dict[str, int] = {}  # session → bytes of its engine beyond the shared scene
_REFUSED: dict[str, dict[int, str]] = {}
_MAX_SESSIONS = 16
_MEMO = SnapshotLRU(256, name="page figures")
_WARMERS: list[Callable[[], Any]] = []
_WARMED: dict[str, Any] = {"token": None, "thread": None}
log = logging.getLogger(__name__)


def memo(name: str, key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per snapshot, ``name`` and ``key`` (an LRU of recent answers, bounded by bytes).

    Page figures that depend only on the data and their arguments (wall KPIs, review
    tables, base isochrones) are computed once per snapshot and shared by every visitor.
    """
    return _MEMO.get((name, key), build)


def peek(name: str, key: Hashable) -> Any | None:
    """What ``memo`` holds for ``name`` and ``key`` in the current snapshot, else None (never builds)."""
    return _MEMO.peek((name, key))


def on_warm(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Register a function computing what every visitor asks for (run by ``warm``)."""
    _WARMERS.append(fn)
    return fn


def warm() -> None:
    """Compute the shared figures of the current snapshot (scene, base coverage, registered warmers).

    Failures are logged, not raised: a page computes what it needs itself when asked.
    """
    for fn in (scene, base_coverage, base_summary, blind_spots, *_WARMERS):
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - warming is an optimisation, never fatal
            log.info("warm-up of %s skipped: %s", getattr(fn, "__name__", fn), exc)


def ensure_warm() -> None:
    """Start ``warm`` in a background thread when a new snapshot has landed (cheap otherwise)."""
    try:
        token = snapshot_token()  # a new one drops the old snapshot's objects before new ones are built
    except Exception:  # noqa: BLE001 - no reader yet
        return
    with _LOCK:
        running = _WARMED["thread"] is not None and _WARMED["thread"].is_alive()
        if _WARMED["token"] == token or running:
            return
        _WARMED["token"] = token
        thread = threading.Thread(target=warm, name="onemap-warm", daemon=True)
        _WARMED["thread"] = thread
    thread.start()


@atexit.register
def _join_warm() -> None:
    """Let a running warm-up finish before the interpreter tears DuckDB down (no abort at exit)."""
    thread = _WARMED.get("thread")
    if thread is not None and thread.is_alive():
        thread.join(timeout=30)


@on_new_snapshot
def _follow(token: SnapshotToken) -> None:
    """On a new snapshot, drop the shared objects and every session's engine of older ones."""
    with _LOCK:
        _SHARED.clear()
        _SHARED["token"] = token
        for session in [s for s, held in _ENGINES.items() if held[0] != token]:
            _forget_session(session)


def _forget_session(session: str) -> None:
    _ENGINES.pop(session, None)
    _ENGINE_BYTES.pop(session, None)
    _REFUSED.pop(session, None)


def _shared(name: str, build: Any) -> Any:
    token = snapshot_token()
    with _LOCK:
        if not is_current(token):  # an older snapshot than the newest seen: build, do not keep
            return build()
        _SHARED["token"] = token
        if name not in _SHARED:
            _SHARED[name] = build()
        return _SHARED[name]


def scene() -> Scene:
    """The coverage scene of the current snapshot."""
    def build() -> Scene:
        with context.connection() as con:
            return load_scene(con, context.settings())
    return _shared("scene", build)


def base_coverage() -> coverage.CoverageResult:
    """Coverage of the stored responders."""
    return _shared("coverage", lambda: coverage.compute_coverage(scene()))


def base_summary() -> dict[str, Any]:
    """District figures of the stored responders."""
    return _shared("summary", lambda: coverage.summary(base_coverage()))


def blind_spots() -> water.WaterBlindSpots:
    """Hydrant blind spots of the current snapshot."""
    return _shared("blind", lambda: water.hydrant_blind_spots(scene()))


def apply_edit(engine: coverage.CoverageEngine, edit: dict[str, Any]) -> coverage.WhatIf:
    """Apply one what-if edit (``{"action": add|move|remove, "id", "lon", "lat", "layer"}``)."""
    action = edit["action"]
    if action == "add":
        return engine.add(edit["id"], float(edit["lon"]), float(edit["lat"]), layer=edit.get("layer", "micro_station"),
                          name=edit.get("name"))
    if action == "move":
        return engine.move(edit["id"], float(edit["lon"]), float(edit["lat"]))
    if action == "remove":
        return engine.remove(edit["id"])
    raise ValueError(f"unknown what-if action {action!r}")


def scenario(session: str, edits: list[dict[str, Any]]) -> tuple[coverage.CoverageEngine, list[str]]:
    """The what-if engine of a browser session with ``edits`` applied, and why edits were refused.

    Edits that extend the ones already applied are applied incrementally (one bounded
    Dijkstra each); any other change replays the edits on a fresh engine. An edit the
    engine refuses (a station too far from the road network, an unknown id) is skipped
    and its message returned, so one bad click never breaks the scenario.
    """
    token = snapshot_token()
    with _LOCK:
        held = _ENGINES.get(session)
        if held is None or held[0] != token or held[2] != edits[: len(held[2])]:
            held = (token, coverage.CoverageEngine(scene()), [])
            _REFUSED.pop(session, None)
        _, engine, applied = held
        refused = _REFUSED.setdefault(session, {})
        for i, edit in enumerate(edits[len(applied):], start=len(applied)):
            try:
                apply_edit(engine, edit)
            except OnemapError as exc:
                refused[i] = str(exc)
        _ENGINES[session] = (token, engine, list(edits))
        _ENGINES.move_to_end(session)
        _ENGINE_BYTES[session] = cache.size_of(engine, shared=(engine.scene,))
        budget = cache.budget_bytes()
        while len(_ENGINES) > 1 and (len(_ENGINES) > _MAX_SESSIONS or sum(_ENGINE_BYTES.values()) > budget):
            _forget_session(next(iter(_ENGINES)))  # the least recent session
        return engine, [refused[i] for i in sorted(refused)]


def scenario_result(session: str, edits: list[dict[str, Any]]) -> coverage.CoverageResult:
    """The full coverage result of a session's scenario (frames rebuilt once per edit, under the lock)."""
    if not edits:
        return base_coverage()
    with _LOCK:
        engine, _ = scenario(session, edits)
        return engine.result


def refused_indices(session: str) -> set[int]:
    """Positions of the session's edits the engine refused (their stations are not drawn)."""
    with _LOCK:
        return set(_REFUSED.get(session, {}))
