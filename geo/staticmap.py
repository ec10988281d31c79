"""Static map images and charts rendered on the server with matplotlib (for the report, notebooks).

No tiles, no network: maps draw the district and town boundaries, grids, H3 cells and
points from the store, in WGS-84 lon/lat with the aspect corrected for latitude. Text is
set in Noto Sans CJK (Debian ``fonts-noto-cjk``); ``cjk_font()`` fails with a clear
message when it is missing rather than drawing boxes.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot state, safe in
threads) and ``to_png`` turns it into bytes. Colours are Okabe-Ito (colour-blind safe).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import geopandas as gpd
import matplotlib
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from geo import h3index
from geo.errors import ConfigError

CJK_FAMILIES: tuple[str, ...] = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC")
FONT_PACKAGE = "fonts-noto-cjk"

# Okabe-Ito palette and the diverging hot/cold scale of Gi* bins (ArcGIS Gi_Bin colours).
COLORS: dict[str, str] = {
    "black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
    "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7",
    "grey": "#999999",
}
GI_BIN_COLORS: dict[int, str] = {3: "#B2182B", 2: "#EF8A62", 1: "#FDDBC7", 0: "#F7F7F7",
                                 -1: "#D1E5F0", -2: "#67A9CF", -3: "#2166AC"}
GI_BIN_LABELS: dict[int, str] = {3: "热点 99%", 2: "热点 95%", 1: "热点 90%", 0: "不显著",
                                 -1: "冷点 90%", -2: "冷点 95%", -3: "冷点 99%"}

_FONT: str | None = None


# --------------------------------------------------------------------------- fonts


def cjk_font() -> str:
    """Family name of an installed Noto Sans CJK font; ConfigError naming the package when missing."""
    global _FONT
    if _FONT is not None:
        return _FONT
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            _FONT = family
            return family
    # The font may have been installed after matplotlib built its cache: rescan once.
    for path in font_manager.findSystemFonts():
        if "NotoSansCJK" in path.replace(" ", "") or "NotoSansCJK" in path:
            font_manager.fontManager.addfont(path)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            _FONT = family
            return family
    msg = (f"no CJK font for maps and charts: none of {', '.join(CJK_FAMILIES)} is installed; "
           f"install the Debian package {FONT_PACKAGE} (`apt-get install {FONT_PACKAGE}`, or `make browser`)")
    raise ConfigError(msg)


@contextmanager
def _style() -> Iterator[None]:
    """matplotlib settings for every figure of this module: CJK font, no pyplot."""
    family = cjk_font()
    with matplotlib.rc_context({
        "font.family": [family, "DejaVu Sans"],
        "axes.unicode_minus": False,
        "font.size": 9,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "legend.fontsize": 8,
        "legend.frameon": True,
        "legend.framealpha": 0.9,
        "hatch.linewidth": 0.6,
    }):
        yield


def new_figure(width_in: float = 7.0, height_in: float = 6.0) -> Figure:
    """A figure (no pyplot) sized in inches; draw inside ``with style():`` or use the helpers below."""
    return Figure(figsize=(width_in, height_in), layout="constrained")


def to_png(fig: Figure, dpi: int = 150) -> bytes:
    """PNG bytes of a figure, rendered with the CJK font."""
    buf = io.BytesIO()
    with _style():
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI to embed a PNG in one HTML file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------- drawing blocks


def _polygon_rings(geoms: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Exterior rings of (multi)polygons as coordinate arrays, and the index of their geometry."""
    parts, index = shapely.get_parts(geoms, return_index=True)
    rings = shapely.get_exterior_ring(parts)
    coords, ring_idx = shapely.get_coordinates(rings, return_index=True)
    splits = np.flatnonzero(np.diff(ring_idx)) + 1
    return np.split(coords, splits), index[np.unique(ring_idx)]


def draw_polygons(ax: Axes, geoms: Sequence[shapely.Geometry] | np.ndarray, *, facecolors: object = "none",
                  edgecolor: str = COLORS["grey"], linewidth: float = 0.4, alpha: float = 1.0,
                  zorder: int = 1) -> PolyCollection:
    """(Multi)polygons as one PolyCollection; ``facecolors`` one colour or one per geometry."""
    arr = np.asarray(geoms, dtype=object)
    rings, idx = _polygon_rings(arr) if len(arr) else ([], np.array([], dtype=int))
    fc = facecolors
    if isinstance(facecolors, (list, np.ndarray, pd.Series)) and len(facecolors) == len(arr):
        fc = np.asarray(facecolors, dtype=object)[idx].tolist()
    coll = PolyCollection(rings, facecolors=fc, edgecolors=edgecolor, linewidths=linewidth,
                          alpha=alpha, zorder=zorder)
    ax.add_collection(coll)
    return coll


def draw_cells(ax: Axes, cells: np.ndarray, colors: object, *, edgecolor: str = "none",
               linewidth: float = 0.0, alpha: float = 0.85, zorder: int = 2, hatch: str | None = None) -> PolyCollection:
    """H3 cells (uint64) as hexagons; ``colors`` one colour or one per cell; ``hatch`` e.g. '////'."""
    cells = np.asarray(cells, dtype=np.uint64)
    coll = draw_polygons(ax, h3index.cell_polygons(cells), facecolors=colors, edgecolor=edgecolor,
                         linewidth=linewidth, alpha=alpha, zorder=zorder)
    if hatch:
        coll.set_hatch(hatch)
    return coll


def draw_points(ax: Axes, lon: np.ndarray, lat: np.ndarray, *, color: str, size: float = 12.0,
                marker: str = "o", label: str | None = None, zorder: int = 5, edgecolor: str = "white") -> None:
    """Points as one scatter (vectorised)."""
    ax.scatter(np.asarray(lon), np.asarray(lat), s=size, c=color, marker=marker, label=label,
               zorder=zorder, edgecolors=edgecolor, linewidths=0.4)


def base_map(boundary: gpd.GeoDataFrame | None, towns: gpd.GeoDataFrame | None = None,
             grids: gpd.GeoDataFrame | None = None, *, title: str = "", width_in: float = 7.0,
             height_in: float = 6.5, label_towns: bool = True) -> tuple[Figure, Axes]:
    """A map figure with grids (faint), town boundaries (labelled) and the district outline.

    The axes are in lon/lat with the aspect corrected for latitude (1 / cos φ); no tiles.
    """
    fig = new_figure(width_in, height_in)
    ax = fig.add_subplot()
    frames = [f for f in (boundary, towns, grids) if f is not None and len(f)]
    if grids is not None and len(grids):
        draw_polygons(ax, grids.geometry.to_numpy(), edgecolor="#BBBBBB", linewidth=0.25, zorder=1)
    if towns is not None and len(towns):
        draw_polygons(ax, towns.geometry.to_numpy(), edgecolor="#555555", linewidth=0.8, zorder=6)
        if label_towns and "name" in towns:
            reps = shapely.point_on_surface(towns.geometry.to_numpy())
            for name, x, y in zip(towns["name"], shapely.get_x(reps), shapely.get_y(reps), strict=True):
                ax.annotate(str(name), (x, y), ha="center", va="center", fontsize=7, color="#333333", zorder=7,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.6})
    if boundary is not None and len(boundary):
        draw_polygons(ax, boundary.geometry.to_numpy(), edgecolor="#222222", linewidth=1.4, zorder=8)
    if frames:
        minx, miny, maxx, maxy = pd.concat([f.geometry for f in frames]).total_bounds
        padx, pady = (maxx - minx) * 0.02, (maxy - miny) * 0.02
        ax.set_xlim(minx - padx, maxx + padx)
        ax.set_ylim(miny - pady, maxy + pady)
        ax.set_aspect(1.0 / np.cos(np.radians((miny + maxy) / 2)))
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    _scale_bar(ax)
    return fig, ax


def _scale_bar(ax: Axes) -> None:
    """A kilometre scale bar in the lower left (length rounded to 1, 2 or 5 × 10ⁿ km)."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    if x1 <= x0 or y1 <= y0:
        return
    km_per_deg = 111.32 * np.cos(np.radians((y0 + y1) / 2))
    target = (x1 - x0) * km_per_deg / 5
    exp = 10 ** np.floor(np.log10(target))
    length_km = max(m * exp for m in (1, 2, 5) if m * exp <= target)
    dx = length_km / km_per_deg
    bx, by = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.04
    ax.plot([bx, bx + dx], [by, by], color="black", linewidth=2, zorder=9, solid_capstyle="butt")
    label = f"{length_km:g} 公里"
    ax.annotate(label, (bx + dx / 2, by), xytext=(0, 3), textcoords="offset points", ha="center",
                va="bottom", fontsize=7, zorder=9)


def legend(ax: Axes, entries: Mapping[str, str], *, kind: str = "patch", loc: str = "upper right",
           title: str | None = None) -> None:
    """A legend from label → colour (patches or point markers)."""
    if kind == "patch":
        handles = [Patch(facecolor=c, edgecolor="#666666", linewidth=0.3, label=lab) for lab, c in entries.items()]
    else:
        handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor=c, markeredgecolor="white",
                          markersize=6, label=lab) for lab, c in entries.items()]
    if handles:
        ax.add_artist(ax.legend(handles=handles, loc=loc, title=title)).set_zorder(20)


# --------------------------------------------------------------------------- maps


def hotspot_map(table: pd.DataFrame, boundary: gpd.GeoDataFrame | None, towns: gpd.GeoDataFrame | None = None,
                *, title: str = "隐患热点 (Gi*)", bin_column: str = "bin_fdr") -> Figure:
    """Cells coloured by their Gi* bin (hot 99/95/90 %, not significant, cold), FDR-corrected by default.

    ``table`` has ``cell`` (uint64) and ``bin_column`` (−3..3), as ``geo.hotspots.hotspots().table``.
    """
    with _style():
        fig, ax = base_map(boundary, towns, title=title)
        if len(table):
            bins = table[bin_column].fillna(0).astype(int).clip(-3, 3).to_numpy()
            colors = [GI_BIN_COLORS[int(b)] for b in bins]
            draw_cells(ax, table["cell"].to_numpy(np.uint64), colors, alpha=0.9)
            present = sorted(set(bins.tolist()), reverse=True)
            legend(ax, {GI_BIN_LABELS[b]: GI_BIN_COLORS[b] for b in present}, title="Gi* 分级")
    return fig


def count_map(cells: np.ndarray, counts: np.ndarray, boundary: gpd.GeoDataFrame | None,
              towns: gpd.GeoDataFrame | None = None, *, title: str = "", cmap: str = "YlOrRd",
              label: str = "数量") -> Figure:
    """Cells shaded by a count (e.g. hazards per H3 cell), with a colour bar."""
    with _style():
        fig, ax = base_map(boundary, towns, title=title)
        if len(cells):
            counts = np.asarray(counts, dtype=float)
            norm = matplotlib.colors.Normalize(vmin=0, vmax=max(float(np.nanmax(counts)), 1.0))
            colormap = matplotlib.colormaps[cmap]
            draw_cells(ax, cells, colormap(norm(counts)).tolist(), alpha=0.85)
            sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=colormap)
            fig.colorbar(sm, ax=ax, shrink=0.5, label=label)
    return fig


def coverage_map(boundary: gpd.GeoDataFrame | None, towns: gpd.GeoDataFrame | None = None, *,
                 areas: Sequence[tuple[str, np.ndarray | gpd.GeoSeries, str]] = (),
                 blind_cells: np.ndarray | None = None, blind_label: str = "消火栓盲区",
                 points: Sequence[tuple[str, np.ndarray, np.ndarray, str, str]] = (),
                 title: str = "响应覆盖") -> Figure:
    """Reach areas, blind spots and responders on one map.

    Parameters
    ----------
    areas
        (label, H3 cells (uint64) or polygons, colour), drawn translucent in order
        (e.g. 5-min fire-station reach, then 3-min micro-station reach).
    blind_cells
        H3 cells drawn in vermillion (e.g. hydrant blind spots).
    points
        (label, lon, lat, colour, marker) of responders.
    """
    with _style():
        fig, ax = base_map(boundary, towns, title=title)
        entries: dict[str, str] = {}
        for i, (label, geoms, color) in enumerate(areas):
            arr = geoms.to_numpy() if isinstance(geoms, gpd.GeoSeries) else np.asarray(geoms)
            if arr.dtype == np.uint64:
                draw_cells(ax, arr, color, alpha=0.45, zorder=2 + i)
            elif len(arr):
                draw_polygons(ax, arr, facecolors=color, edgecolor="none", alpha=0.45, zorder=2 + i)
            entries[label] = color
        hatched: dict[str, str] = {}
        if blind_cells is not None and len(blind_cells):
            # Hatched, not filled: the reach underneath stays visible.
            draw_cells(ax, np.asarray(blind_cells, dtype=np.uint64), "none", edgecolor=COLORS["vermillion"],
                       linewidth=0.0, alpha=1.0, zorder=4 + len(areas), hatch="//////")
            hatched[blind_label] = COLORS["vermillion"]
        handles = [Patch(facecolor=c, alpha=0.6, edgecolor="#666666", linewidth=0.3, label=lab) for lab, c in entries.items()]
        handles += [Patch(facecolor="white", edgecolor=c, hatch="//////", linewidth=0.0, label=lab)
                    for lab, c in hatched.items()]
        if handles:
            ax.add_artist(ax.legend(handles=handles, loc="upper right", title="覆盖")).set_zorder(20)
        marks: dict[str, str] = {}
        for label, lon, lat, color, marker in points:
            draw_points(ax, lon, lat, color=color, marker=marker, size=22, zorder=10)
            marks[label] = color
        legend(ax, marks, kind="point", loc="lower right")
    return fig


# --------------------------------------------------------------------------- charts


def line_chart(x: Sequence[object], series: Mapping[str, Sequence[float]], *, title: str = "",
               ylabel: str = "", width_in: float = 7.0, height_in: float = 3.2) -> Figure:
    """Lines over time (e.g. hazards discovered and closed per month)."""
    palette = [COLORS["vermillion"], COLORS["blue"], COLORS["green"], COLORS["orange"], COLORS["purple"]]
    with _style():
        fig = new_figure(width_in, height_in)
        ax = fig.add_subplot()
        xs = pd.to_datetime(pd.Series(list(x))) if len(x) else pd.Series([], dtype="datetime64[ns]")
        for (label, ys), color in zip(series.items(), palette, strict=False):
            ax.plot(xs, np.asarray(ys, dtype=float), marker="o", markersize=3, linewidth=1.6, label=label, color=color)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
        if series:
            ax.legend(loc="upper left")
        if len(xs):
            ax.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%Y-%m"))
            fig.autofmt_xdate(rotation=30)
    return fig


def bar_chart(labels: Sequence[str], values: Sequence[float], *, title: str = "", xlabel: str = "",
              color: str = COLORS["blue"], width_in: float = 7.0, height_in: float | None = None,
              value_format: str = "{:g}") -> Figure:
    """Horizontal bars, largest on top (e.g. towns ranked by score)."""
    height = height_in or max(2.0, 0.28 * len(labels) + 0.9)
    with _style():
        fig = new_figure(width_in, height)
        ax = fig.add_subplot()
        y = np.arange(len(labels))[::-1]
        vals = np.asarray(values, dtype=float)
        ax.barh(y, vals, color=color)
        ax.set_yticks(y, [str(v) for v in labels])
        for yi, v in zip(y, vals, strict=True):
            if np.isfinite(v):
                ax.annotate(value_format.format(v), (v, yi), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=7)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.spines[["top", "right"]].set_visible(False)
    return fig
