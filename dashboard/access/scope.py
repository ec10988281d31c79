"""The one place that turns the request's principal into restrictions (issue 13): towns and masking.

A user is scoped to some towns (街镇) or the whole district, and sees personal fields (names,
phones, ID numbers: ``LayerSpec.personal_fields``) unmasked or masked (``geo.personal``). Both
come from ``current_principal()`` — set on the server before every request — and never from
the client: a filter, a URL parameter or a callback payload naming another town only narrows
what the scope allows (the intersection), never widens it.

- ``towns()``: the scope's towns, None for the whole district;
- ``scoped(flt)``: a ``geo.aggregate.Filter`` cut to the scope (an empty intersection matches
  nothing, never everything: ``NOWHERE``);
- ``map_filter(flt)``: the same for the map's ``geo.mapdata.MapFilter`` (``MapFilter.towns``);
- ``keep_towns(frame)``: rows of a district-wide table (the town scorecard, the worst uncovered
  places) in the scope;
- ``cache_key()``: what every cached answer must be keyed by as well (towns and masking): the
  caches of ``dashboard.components.snapshot_cache`` add it to every key, so a town user never
  gets the district's answer;
- ``sees_personal(page)`` / ``mask_fields(layer)`` / ``masked(data, layer)``: the masking.

With no users configured the principal is ``LOCAL`` (whole district, personal fields shown):
everything is as before sign-in existed — except the wall, a kiosk, which masks for ``LOCAL``
as it always did (``sees_personal("wall")``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Iterable
from typing import Any, TypeVar

import pandas as pd

from dashboard.access import Principal, current_principal
from geo import personal
from geo.aggregate import Filter
from geo.errors import ValidationError
from geo.mapdata import MapFilter
from layers.registry import LAYERS

NOWHERE = "\x00(no town in scope)"
"""The town of a ``Filter`` whose scope and criteria have no town in common: no row has it, so
the filter matches nothing (an empty ``Filter.towns`` would match every town)."""
KIOSK_PAGES: frozenset[str] = frozenset({"wall"})
"""Pages that mask personal fields for the local single user (no users configured), as they always did."""
T = TypeVar("T", pd.DataFrame, dict)


def _who(principal: Principal | None) -> Principal:
    return principal if principal is not None else current_principal()


def towns(principal: Principal | None = None) -> tuple[str, ...] | None:
    """The towns the principal may see, sorted (None: the whole district; empty: none)."""
    p = _who(principal)
    return None if p.towns is None else tuple(sorted(set(p.towns)))


def cache_key(principal: Principal | None = None) -> Hashable:
    """What distinguishes one principal's answers from another's: their towns and their masking.

    Principals with equal keys get equal answers (two viewers of the same town share them)."""
    p = _who(principal)
    return ("district" if p.towns is None else towns(p), p.sees_personal)


def town_allowed(town: Any, principal: Principal | None = None) -> bool:
    """Whether rows of ``town`` are in the scope (a row without a town is only in the district's)."""
    allowed = towns(principal)
    return allowed is None or (isinstance(town, str) and town in allowed)


def scoped(flt: Filter | None = None, principal: Principal | None = None) -> Filter:
    """``flt`` (None: everything) cut to the principal's towns: the filter's own towns that the
    scope allows, or all of the scope's when the filter names none; ``NOWHERE`` when none is left."""
    flt = flt or Filter()
    allowed = towns(principal)
    if allowed is None:
        return flt
    chosen = tuple(t for t in flt.towns if t in allowed) if flt.towns else allowed
    return flt.replace(towns=chosen or (NOWHERE,))


def map_filter(flt: MapFilter | None = None, principal: Principal | None = None,
               layer: str | None = None) -> MapFilter | None:
    """A map filter (None: everything) cut to the principal's towns (``MapFilter.towns``, applied by
    ``geo.mapdata.filter_sql`` on top of the filter's own criteria: a ``town`` criterion from the
    client can only narrow it).

    A filter on a personal field the principal sees masked (of ``layer``; of any layer when None)
    is refused (ValidationError): matching ``{"phone": [...1000 guesses]}`` would tell the hidden
    digits back in a few requests, and a name filter who is on the map."""
    refuse_personal_filter(flt, layer, principal)
    allowed = towns(principal)
    if allowed is None:
        return flt
    return dataclasses.replace(flt or MapFilter(), towns=allowed)


def refuse_personal_filter(flt: MapFilter | None, layer: str | None = None,
                           principal: Principal | None = None) -> None:
    """ValidationError when ``flt`` matches on a personal field the principal sees masked."""
    if flt is None or not flt.values or sees_personal(None, principal):
        return
    hidden = set(mask_fields(layer, None, principal)) if layer is not None else {
        f for spec in LAYERS.values() for f in spec.personal_fields}
    named = sorted(k for k, v in flt.values.items() if v is not None and k in hidden)
    if named:
        role = _who(principal).role.name
        raise ValidationError(f"filtering on the personal field(s) {named} needs a role that sees personal "
                              f"data (editor or admin); yours is {role}")


def keep_towns(frame: pd.DataFrame, column: str = "town", principal: Principal | None = None) -> pd.DataFrame:
    """Rows of ``frame`` whose ``column`` is a town of the scope (all rows for the whole district)."""
    allowed = towns(principal)
    if allowed is None:
        return frame
    if column not in frame:
        return frame.iloc[0:0]
    return frame[frame[column].isin(list(allowed))].reset_index(drop=True)


def sees_personal(page: str | None = None, principal: Principal | None = None) -> bool:
    """Personal fields unmasked for this principal (on ``page``): the role says; a kiosk page
    (``KIOSK_PAGES``) masks for the local single user of an app without users, as before."""
    p = _who(principal)
    if page in KIOSK_PAGES and p.source == "local":
        return False
    return p.sees_personal


def mask_fields(layer: str, page: str | None = None, principal: Principal | None = None) -> tuple[str, ...]:
    """The personal fields of ``layer`` to mask for the principal (none when they see them)."""
    if sees_personal(page, principal) or layer not in LAYERS:
        return ()
    return tuple(LAYERS[layer].personal_fields)


def masked(data: T, layer: str, page: str | None = None, principal: Principal | None = None) -> T:
    """A frame or a record of ``layer`` with its personal fields masked for the principal
    (``geo.personal``); unchanged for a principal who sees them."""
    fields = mask_fields(layer, page, principal)
    if not fields:
        return data
    if isinstance(data, pd.DataFrame):
        return personal.mask_frame(data, fields)
    return personal.mask_record(data, fields)


def masked_records(records: Iterable[dict[str, Any]], layer: str, page: str | None = None,
                   principal: Principal | None = None) -> list[dict[str, Any]]:
    """``masked`` over records."""
    return [masked(dict(r), layer, page, principal) for r in records]
