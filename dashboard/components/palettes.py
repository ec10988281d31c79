"""Colour-blind-safe palettes: Okabe-Ito (categories), viridis (counts), ColorBrewer RdBu (Gi* bins).

Okabe & Ito 2008, "Color Universal Design"; viridis (van der Walt & Smith 2015);
ColorBrewer RdBu 7-class diverging (Brewer 2003), all readable with the common colour
vision deficiencies.
"""

from __future__ import annotations

OKABE_ITO: tuple[str, ...] = (
    "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
)
VIRIDIS_6: tuple[str, ...] = ("#440154", "#414487", "#2A788E", "#22A884", "#7AD151", "#FDE725")
# Gi* bins -3..3 (cold 99 % .. hot 99 %), ColorBrewer RdBu reversed so hot is red.
GI_BINS: dict[int, str] = {
    3: "#B2182B", 2: "#EF8A62", 1: "#FDDBC7", 0: "#F7F7F7", -1: "#D1E5F0", -2: "#67A9CF", -3: "#2166AC",
}
GI_BIN_KEYS: dict[int, str] = {
    3: "hot_99", 2: "hot_95", 1: "hot_90", 0: "not_significant", -1: "cold_90", -2: "cold_95", -3: "cold_99",
}
# Coverage: covered / not covered / blind spot (Okabe-Ito blue, grey, vermillion).
COVERED = "#0072B2"
UNCOVERED = "#D55E00"
BLIND = "#D55E00"
NEW_STATION = "#009E73"


def hex_ramp(dark: bool) -> list[str]:
    """Viridis classes for hexagon counts: bright = many on a dark wall, dark = many on paper."""
    return list(VIRIDIS_6) if dark else list(reversed(VIRIDIS_6))


def categorical(values: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Okabe-Ito colour per value (cycled when there are more than eight)."""
    return {str(v): OKABE_ITO[i % len(OKABE_ITO)] for i, v in enumerate(values)}


def isochrone_colors(minutes: list[float]) -> dict[str, str]:
    """Viridis steps per isochrone minute (short = dark, long = light)."""
    n = max(len(minutes), 1)
    idx = [round(i * (len(VIRIDIS_6) - 1) / max(n - 1, 1)) for i in range(n)]
    return {f"{m:g}": VIRIDIS_6[j] for m, j in zip(sorted(minutes), idx, strict=True)}
