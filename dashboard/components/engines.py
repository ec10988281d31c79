"""The analysis objects a page needs, built once per database snapshot and shared.

The coverage scene, the base coverage, the hydrant blind spots and per-session what-if
engines are expensive to build and cheap to query; they are kept here keyed by the
Reader's snapshot version, so a new ingest (a swapped snapshot) rebuilds them. No
analysis happens here: everything is a call into ``geo/``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from dashboard.components import context
from geo import coverage, water
from geo.coverage_inputs import Scene, load_scene

_LOCK = threading.RLock()
_SHARED: dict[str, Any] = {}
_ENGINES: OrderedDict[str, tuple[int, coverage.CoverageEngine, list[dict[str, Any]]]] = OrderedDict()
_MAX_SESSIONS = 16


def _shared(name: str, build: Any) -> Any:
    version = context.version()
    with _LOCK:
        if _SHARED.get("version") != version:
            _SHARED.clear()
            _SHARED["version"] = version
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


def scenario(session: str, edits: list[dict[str, Any]]) -> tuple[coverage.CoverageEngine, coverage.WhatIf | None]:
    """The what-if engine of a browser session with ``edits`` applied, and the last edit's figures.

    Edits that extend the ones already applied are applied incrementally (one bounded
    Dijkstra each); any other change replays the edits on a fresh engine.
    """
    version = context.version()
    with _LOCK:
        held = _ENGINES.get(session)
        if held is None or held[0] != version or held[2] != edits[: len(held[2])]:
            held = (version, coverage.CoverageEngine(scene()), [])
        _, engine, applied = held
        last = None
        for edit in edits[len(applied):]:
            last = apply_edit(engine, edit)
        _ENGINES[session] = (version, engine, list(edits))
        _ENGINES.move_to_end(session)
        while len(_ENGINES) > _MAX_SESSIONS:
            _ENGINES.popitem(last=False)
        return engine, last
