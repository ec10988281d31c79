"""Check every setting against its declared type and range (raises ConfigError).

``Settings.__post_init__`` calls :func:`check_settings`, so a value is checked however it
arrives: defaults, the TOML file, ``with_overrides`` and CLI options. The declared type
comes from the field's annotation (``float``, ``int``, ``str``, ``list``, ``dict``, with
``| None``); list items and dict values must have the kind of the default's items. A
number must be finite and ≥ 0 unless listed below; a message names the setting, shows the
value and says what is expected.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import Field
from typing import Any

from geo.errors import ConfigError
from layers.key_place import CATEGORIES as KEY_PLACE_CATEGORIES

#: Numbers that must be > 0 (a zero would divide by zero or mean "never").
POSITIVE = frozenset(
    {
        "micro_station_minutes", "fire_station_minutes", "isochrone_minutes",
        "station_area_limits_km2", "road_speeds_kmh", "urban_slowdown_factor",
        "radius_mode_speed_kmh", "hydrant_protection_radius_m", "hydrant_max_spacing_m",
        "siting_exact_time_limit_s", "inspection_interval_days", "recurring_window_days",
        "hazard_deadline_days", "warning_period_days", "warning_baseline_days",
        "server_threads", "wall_refresh_s", "review_default_days", "dispatch_per_kind",
        "ingest_memory_mb", "live_max_body_kb", "live_max_features", "live_fold_s", "live_keep_s",
    }
)
#: Probabilities and shares: strictly between 0 and 1.
FRACTIONS = frozenset(
    {
        "hotspot_fdr_alpha", "trend_alpha", "warning_alpha", "trend_hot_share",
        "trend_hot_confidence", "hotspot_confidence_levels",
    }
)
#: H3 resolutions: whole numbers 0-15.
H3_RESOLUTIONS = frozenset({"coverage_cluster_res", "hotspot_resolution"})
#: lon/lat boxes [min_lon, min_lat, max_lon, max_lat]: any sign, min < max.
BOXES = frozenset({"china_bounds", "area_of_interest"})
#: Dicts whose keys are a fixed vocabulary: only the default's keys are allowed.
FIXED_KEYS = frozenset({"hazard_deadline_days", "scorecard_weights"})
#: Allowed items of list settings drawn from a layer's vocabulary.
LIST_CHOICES: dict[str, tuple[str, ...]] = {
    "crowded_venue_categories": KEY_PLACE_CATEGORIES,
    "hazmat_categories": KEY_PLACE_CATEGORIES,
}
#: Item kind of list settings whose default is empty or None.
LIST_ITEMS: dict[str, type] = {"area_of_interest": float}


def _fail(name: str, value: Any, expected: str) -> ConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    msg = (
        f"setting `{name}` = {shown} ({type(value).__name__}): expected {expected}; "
        "fix it in onemap.toml or the option that sets it (`onemap settings` lists every setting)"
    )
    return ConfigError(msg)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(name: str, value: Any, whole: bool, where: str = "") -> None:
    """One number of setting ``name``: type, finite, range."""
    label = f"{name}{where}"
    kind = "a whole number" if whole else "a number"
    if not _is_number(value) or (whole and not isinstance(value, int)):
        raise _fail(label, value, kind)
    if not math.isfinite(value):
        raise _fail(label, value, f"{kind} (not NaN or infinity)")
    if name in FRACTIONS and not 0 < value < 1:
        raise _fail(label, value, "a number between 0 and 1 (exclusive)")
    if name in H3_RESOLUTIONS and not 0 <= value <= 15:
        raise _fail(label, value, "an H3 resolution 0-15")
    if name == "port" and not 1 <= value <= 65535:
        raise _fail(label, value, "a port 1-65535")
    if name in POSITIVE and value <= 0:
        raise _fail(label, value, f"{kind} greater than 0")
    if name not in BOXES and value < 0:
        raise _fail(label, value, f"{kind} ≥ 0")


def _item_kind(sample: Iterable[Any]) -> type | None:
    """float, int or str: the kind of a default's items (None when it has none)."""
    items = list(sample)
    if not items:
        return None
    if all(isinstance(i, str) for i in items):
        return str
    return int if all(isinstance(i, int) for i in items) else float


def _item(name: str, kind: type | None, value: Any, where: str) -> None:
    if kind is str and not isinstance(value, str):
        raise _fail(f"{name}{where}", value, "text")
    if kind in (int, float):
        _number(name, value, kind is int, where)


def _check_list(name: str, value: Any, default: Any) -> None:
    if not isinstance(value, (list, tuple)):
        raise _fail(name, value, "a list, e.g. " + repr(default))
    kind = LIST_ITEMS.get(name) or _item_kind(default or [])
    for i, item in enumerate(value):
        _item(name, kind, item, f"[{i}]")
        if name in LIST_CHOICES and item not in LIST_CHOICES[name]:
            raise _fail(f"{name}[{i}]", item, f"one of {list(LIST_CHOICES[name])}")
    if name in BOXES:
        if len(value) != 4 or not (value[0] < value[2] and value[1] < value[3]):
            raise _fail(name, value, "[min_lon, min_lat, max_lon, max_lat] with min < max")
    elif name in POSITIVE and not value:
        raise _fail(name, value, "at least one value")


def _check_dict(name: str, value: Any, default: dict[str, Any]) -> None:
    if not isinstance(value, dict):
        raise _fail(name, value, "a table of key = value, e.g. " + repr(default))
    unknown = sorted(str(k) for k in set(value) - set(default))
    if name in FIXED_KEYS and unknown:
        msg = (
            f"setting `{name}` has unknown key(s) {unknown}; known keys: {list(default)} "
            "(fix it in onemap.toml or the option that sets it)"
        )
        raise ConfigError(msg)
    kind = _item_kind(default.values())
    for key, item in value.items():
        if not isinstance(key, str):
            raise _fail(f"{name} key", key, "text")
        _item(name, kind, item, f"[{key!r}]")


def check_value(field: Field[Any], value: Any, default: Any) -> None:
    """Raise ConfigError when ``value`` does not fit the setting ``field`` (default ``default``)."""
    name = str(field.name)
    declared = str(field.type).replace(" ", "")
    if value is None and declared.endswith("|None"):
        return
    kind = declared.removesuffix("|None")
    if kind == "float":
        _number(name, value, whole=False)
    elif kind == "int":
        _number(name, value, whole=True)
    elif kind == "str":
        if not isinstance(value, str):
            raise _fail(name, value, "text")
    elif kind == "list":
        _check_list(name, value, default)
    elif kind == "dict":
        _check_dict(name, value, default)
