"""What every map page reads when its layout is built: settings, data bounds, layer counts."""

from __future__ import annotations

from dashboard.access import scope
from dashboard.components import context, engines, mapview
from geo import mapdata
from geo.mapdata import BBox
from geo.settings import Settings


def page_start() -> tuple[Settings, BBox | None, dict[str, int]]:
    """Settings, the data's bounding box and rows per layer, with the shared engines warming.

    Bounds and counts are read once per snapshot and scope (the page's HTML preload and its layout
    both ask for them); a town user's map opens on their towns, with their towns' counts.
    """
    settings = context.settings()
    engines.ensure_warm()

    def build() -> tuple[BBox | None, dict[str, int]]:
        with context.connection() as con:
            towns = scope.towns()
            return mapdata.data_bounds(con, towns), mapview.layer_counts(con, towns)

    bounds, counts = engines.memo("page-start", None, build)
    return settings, bounds, dict(counts)
