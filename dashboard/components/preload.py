"""Data a page's HTML preloads: the map's opening layers, fetched while the scripts load.

A page registers a function of its query arguments that returns the URLs its map opens
with (the same URLs its layout carries); ``dashboard.app`` adds one
``<link rel="preload" as="fetch">`` per URL to the page's HTML. The browser then fetches
the data in parallel with the JavaScript bundles, and the map's GeoJSON layers take it from
the preload cache when they mount instead of starting their requests ~0.5 s later.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable, Mapping

UrlsFn = Callable[[dict[str, str]], Iterable[str]]
_PAGES: dict[str, UrlsFn] = {}
log = logging.getLogger(__name__)


def register(path: str, urls: UrlsFn) -> None:
    """Preload ``urls(query args)`` with the HTML of the page at ``path`` (e.g. ``/wall``)."""
    _PAGES[path] = urls


def urls_for(path: str, args: Mapping[str, str]) -> list[str]:
    """The URLs the page at ``path`` preloads (none for an unknown page or when they cannot be built)."""
    make = _PAGES.get(path)
    if make is None:
        return []
    try:
        return list(dict.fromkeys(make(dict(args))))
    except Exception as exc:  # noqa: BLE001 - a preload is an optimisation: the page loads without it
        log.warning("no preload for %s: %s", path, exc)
        return []


def links(path: str, args: Mapping[str, str]) -> str:
    """``<link rel="preload">`` tags for the page at ``path`` (credentials mode of a plain ``fetch``)."""
    return "".join(f'<link rel="preload" as="fetch" crossorigin="anonymous" href="{html.escape(u)}">'
                   for u in urls_for(path, args))
