"""What every map page reads when its layout is built: settings, data bounds, layer counts."""

from __future__ import annotations

from dashboard.components import context, engines, mapview
from geo import mapdata
from geo.mapdata import BBox
from geo.settings import Settings


def page_start() -> tuple[Settings, BBox | None, dict[str, int]]:
    """Settings, the data's bounding box and rows per layer, with the shared engines warming."""
    settings = context.settings()
    engines.ensure_warm()
    with context.connection() as con:
        bounds = mapdata.data_bounds(con)
        counts = mapview.layer_counts(con)
    return settings, bounds, counts
