"""Offline map export: a folium map in ONE self-contained HTML file (for handouts and e-mail).

Every asset is inlined: Leaflet's JS and CSS come from ``dashboard/vendor/`` (npm
``leaflet@1.9.4``, BSD-2-Clause, licence kept beside it) with its images as data URIs;
folium's other default assets (jQuery, Bootstrap, Font Awesome, awesome-markers) are not
used and are dropped. No tiles: the map draws boundaries, grids and points on a plain
background, so it works on an intranet or with no network at all. ``render_offline``
refuses to write a file that still references an external script or stylesheet.

Large point layers (hazards always; any layer above ``max_points`` rows) are drawn as H3
hexagons with their counts, aggregated in DuckDB (``geo.mapdata.hex_features``); smaller
layers as circle markers coloured like the dashboard (layer spec style). The GeoJSON comes
from ``geo.mapdata`` (vectorised, coordinates rounded to ~0.1 m); colours are applied in the
browser by one small JS function, not per feature in Python.

User text never passes through a template. folium/branca render each element's script and
then parse that output again as a Jinja2 template, so a name like ``{{7*7}}`` would come out
as ``49`` and ``{{ lipsum.__globals__.os... }}`` would run Python. folium is therefore only
given text written in code (layer names from the specs, counts, colours) and empty layers;
the GeoJSON, the page title, the legend and the tooltips' contents go into the page after
folium has rendered it (``PageExtras``), as JSON with ``<``, ``>`` and ``&`` escaped, and the
browser puts every value into the page with ``textContent``, never as HTML.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import folium
import numpy as np

from geo import mapdata, store
from geo.errors import ConfigError, ValidationError
from geo.settings import Settings
from layers.base import LayerSpec
from layers.registry import LAYERS, get_spec

VENDOR = Path(__file__).resolve().parent / "vendor"
LEAFLET_DIR = VENDOR / "leaflet-1.9.4"
# Layers drawn as hexagons whatever their size (the issue: never 50k hazard markers).
ALWAYS_AGGREGATED: tuple[str, ...] = ("hazard", "incident")
HEX_COLORS: tuple[str, ...] = ("#FFF5B0", "#FED976", "#FEB24C", "#FD8D3C", "#F03B20", "#BD0026")
_EXTERNAL_ASSET = re.compile(r"""<(?:script|link|img|iframe)\b[^>]*(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


# The one function that puts data into the page: adds a layer's features, styles them and
# binds a tooltip whose cells are filled with textContent (a name is text, never markup).
FILL_JS = """
function onemapFill(layer, data, opts) {
  layer.addData(data);
  var s = opts.style;
  layer.setStyle(function (feature) {
    var style = Object.assign({}, s.base);
    if (s.by !== null) {
      var c = s.colors[String(feature.properties[s.by])] || s.fallback;
      style.color = c; style.fillColor = c;
    }
    return style;
  });
  if (!opts.fields.length) { return; }
  layer.bindTooltip(function (item) {
    var table = document.createElement('table');
    opts.fields.forEach(function (field, i) {
      var value = item.feature.properties[field];
      var row = table.insertRow();
      var th = document.createElement('th');
      th.textContent = opts.labels[i];
      row.appendChild(th);
      row.insertCell().textContent = (value === null || value === undefined) ? '' : String(value);
    });
    return table;
  }, {sticky: true, className: 'onemap-tip'});
}
"""
PAGE_CSS = (
    '.leaflet-container{background:#f2f2ee;font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif}'
    ".onemap-tip th{text-align:left;padding:1px 8px 1px 0}.onemap-tip td{text-align:left}"
)
_EMPTY = {"type": "FeatureCollection", "features": []}


def script_json(value: object) -> str:
    """``value`` as a JSON literal safe inside ``<script>``: ``<``, ``>``, ``&`` and line separators escaped.

    Raises ValueError on NaN or infinity (not JSON).
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                       ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return text


@dataclass
class PageExtras:
    """What goes into the page after folium has rendered it: every piece of user text and data.

    Attributes
    ----------
    title
        The page title (any text; written escaped).
    body
        HTML fragments for the body, already escaped by their builder.
    fills
        (folium variable of an empty GeoJSON layer, its GeoJSON, options of ``onemapFill``).
    """

    title: str = ""
    body: list[str] = field(default_factory=list)
    fills: list[tuple[str, dict, dict]] = field(default_factory=list)

    def add_layer(self, layer: folium.GeoJson, data: dict, fields: list[str], labels: list[str],
                  style: dict) -> None:
        """Fill ``layer`` (created empty) with ``data`` in the browser, with a tooltip of ``fields``."""
        self.fills.append((layer.get_name(), data, {"fields": fields, "labels": labels, "style": style}))

    def apply(self, text: str) -> str:
        """``text`` (folium's rendered page) with the title, body fragments and data put in."""
        head = (f"<title>{html.escape(self.title)}</title>" if self.title else "") + f"<style>{PAGE_CSS}</style>"
        script = FILL_JS + "".join(f"onemapFill({name}, {script_json(data)}, {script_json(opts)});\n"
                                   for name, data, opts in self.fills)
        head_at = text.index("</head>")  # after folium's stylesheets: ours win
        text = text[:head_at] + head + text[head_at:]
        body_at = text.rindex("</body>")
        text = text[:body_at] + "".join(self.body) + text[body_at:]
        end = text.rindex("</html>")
        return text[:end] + "<script>" + script + "</script>\n" + text[end:]


@dataclass(frozen=True)
class OfflineMap:
    """What ``export_map`` wrote: path, size in bytes, and each layer with how it is drawn."""

    path: Path
    size_bytes: int
    layers: tuple[tuple[str, str, int, bool], ...]  # (layer, "points"|"hexagons"|"polygons", features, shown)


# --------------------------------------------------------------------------- assets


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def leaflet_js() -> str:
    """Leaflet's minified JS without its source-map comment and attribution link (no URL left in a tag)."""
    text = (LEAFLET_DIR / "leaflet.js").read_text(encoding="utf-8")
    text = text.replace('href="https://leafletjs.com" ', "")
    return re.sub(r"//# sourceMappingURL=\S+\s*$", "", text)


def leaflet_css() -> str:
    """Leaflet's CSS with its images as data URIs."""
    css = (LEAFLET_DIR / "leaflet.css").read_text(encoding="utf-8")

    def inline(match: re.Match[str]) -> str:
        return f"url({_data_uri(LEAFLET_DIR / 'images' / match.group(1), 'image/png')})"

    return re.sub(r"url\(images/([\w.-]+\.png)\)", inline, css)


def render_offline(m: folium.Map, extras: PageExtras | None = None) -> str:
    """The map's HTML with Leaflet inlined and ``extras`` put in after rendering.

    Raises ConfigError if any external script/stylesheet remains.
    """
    m.default_js = [("leaflet", "onemap-inline://leaflet.js")]
    m.default_css = [("leaflet_css", "onemap-inline://leaflet.css")]
    text = (extras or PageExtras()).apply(m.get_root().render())
    text = text.replace('<script src="onemap-inline://leaflet.js"></script>',
                        "<script>" + leaflet_js() + "</script>")
    text = text.replace('<link rel="stylesheet" href="onemap-inline://leaflet.css"/>',
                        "<style>" + leaflet_css() + "</style>")
    leftover = _EXTERNAL_ASSET.search(text) or re.search(r"onemap-inline://", text)
    if leftover:
        snippet = text[leftover.start(): leftover.start() + 160]
        msg = (f"the offline map still loads an external asset: {snippet!r}; vendor it under "
               f"{VENDOR} and inline it in dashboard/offline_map.py")
        raise ConfigError(msg)
    return text


# --------------------------------------------------------------------------- layers


def _style(base: dict, colors: dict[str, str] | None = None, by: str | None = None,
           fallback: str | None = None) -> dict:
    """Options of ``onemapFill``'s style: ``base`` for every feature, colour looked up by ``by``."""
    return {"base": base, "by": by, "colors": colors or {}, "fallback": fallback}


def _empty_layer(name: str, extras: PageExtras, data: dict, fields: list[str], labels: list[str],
                 style: dict, **kwargs: Any) -> folium.GeoJson:
    """A folium GeoJSON layer created empty; ``extras`` fills it in the browser (module docstring)."""
    layer = folium.GeoJson(dict(_EMPTY, features=[]), name=name, **kwargs)
    extras.add_layer(layer, data, fields, labels, style)
    return layer


def _labels(spec: LayerSpec, fields: list[str]) -> list[str]:
    return [spec.field_label(f) if f in spec.field_names else f for f in fields]


def _polygon_layer(con: duckdb.DuckDBPyConnection, spec: LayerSpec,
                   extras: PageExtras) -> tuple[folium.GeoJson, int]:
    data = json.loads(mapdata.polygon_features(con, spec.name))
    n = len(data["features"])
    fields = [f for f in ("name", "town", "level") if f in spec.field_names] if n else []
    style = spec.style
    base = {"color": style.color, "weight": style.weight, "opacity": style.opacity,
            "fillColor": style.fill_color or style.color, "fillOpacity": style.fill_opacity,
            "dashArray": style.dash_array}
    layer = _empty_layer(f"{spec.zh} ({n})", extras, data, fields, _labels(spec, fields), _style(base))
    return layer, n


def _point_layer(con: duckdb.DuckDBPyConnection, spec: LayerSpec, n: int, extras: PageExtras) -> folium.GeoJson:
    data = json.loads(mapdata.point_features(con, spec.name, bbox=None))
    style = spec.style
    fill = style.fill_color or style.color
    fields = ["id", *[c for c in mapdata.point_columns(spec) if c != "id"]]
    return _empty_layer(
        f"{spec.zh} ({n})", extras, data, fields, _labels(spec, fields),
        _style({"weight": 1, "fillOpacity": 0.8}, dict(style.colors), style.color_by, fill),
        marker=folium.CircleMarker(radius=style.radius, weight=1, color=style.color, fill=True,
                                   fill_color=fill, fill_opacity=0.8),
    )


def _hex_layer(con: duckdb.DuckDBPyConnection, spec: LayerSpec, n: int, res: int, extras: PageExtras,
               show: bool = True) -> tuple[folium.GeoJson, int]:
    data = json.loads(mapdata.hex_features(con, spec.name, res))
    classes = {str(i): c for i, c in enumerate(HEX_COLORS)}
    fields = ["count"]
    aliases = ["数量"]
    if spec.style.color_by and spec.style.colors:
        top = list(spec.style.colors)[-1]
        fields.append("n_top")
        aliases.append(f"其中{top}")
    layer = _empty_layer(f"{spec.zh} ({n}, H3 {res}级六边形)", extras, data, fields, aliases,
                         _style({"weight": 1, "fillOpacity": 0.7}, classes, "cls", HEX_COLORS[0]), show=show)
    return layer, len(data["features"])


def _legend_html(entries: list[tuple[str, str]], title: str) -> str:
    rows = "".join(
        f'<div><span style="display:inline-block;width:12px;height:12px;background:{c};'
        f'border:1px solid #666;margin-right:6px;vertical-align:middle"></span>{html.escape(lab)}</div>'
        for lab, c in entries
    )
    return (
        '<div id="onemap-legend" style="position:fixed;bottom:18px;right:12px;z-index:1000;background:white;'
        'padding:8px 10px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:12px sans-serif;'
        f'max-width:240px"><b>{html.escape(title)}</b>{rows}</div>'
    )


def build_map(
    con: duckdb.DuckDBPyConnection,
    layers: list[str] | None = None,
    *,
    settings: Settings | None = None,
    max_points: int = 3000,
    hex_res: int = 8,
    title: str = "一图作战 离线地图",
) -> tuple[folium.Map, list[tuple[str, str, int, bool]], PageExtras]:
    """A folium map of the stored layers (no tiles) with a layer control and a legend.

    The map's layers are empty: their data, the title and the legend are in the returned
    ``PageExtras``, which ``render_offline`` puts in after folium has rendered the page.

    Parameters
    ----------
    layers
        Layer names (default: every layer with rows), drawn in the specs' z-order.
    max_points
        A point layer with more rows is drawn as H3 hexagons (hazards and incidents always are).
        Only one hexagon layer starts visible (hazards when drawn); the others are in the layer control.
    hex_res
        H3 resolution of those hexagons (one of the stored 7-10).
    title
        Any text: shown as the page title and in the box at the top.
    """
    settings = settings or Settings()
    if hex_res not in store.POINT_RESOLUTIONS:
        raise ValidationError(f"hex_res {hex_res} is not a stored H3 resolution; choose one of {store.POINT_RESOLUTIONS}")
    counts = store.table_counts(con)
    names = list(layers) if layers else [n for n, c in counts.items() if c]
    def aggregated(spec: LayerSpec) -> bool:
        return spec.geometry == "point" and (spec.name in ALWAYS_AGGREGATED or counts.get(spec.name, 0) > max_points)

    # Polygons first, then hexagons, then points on top; within each, the specs' z-order.
    rank = {"polygon": 0, "line": 0, "point": 2}
    specs = sorted((get_spec(n) for n in names),
                   key=lambda s: (rank[s.geometry] - (1 if aggregated(s) else 0), s.z_order))
    west = south = east = north = None
    bounds = con.execute(
        " UNION ALL ".join(f"SELECT min(lon), min(lat), max(lon), max(lat) FROM {s.name}" for s in specs)
        if specs else "SELECT NULL, NULL, NULL, NULL"
    ).fetchall()
    arr = np.array([[np.nan if v is None else v for v in row] for row in bounds], dtype=float)
    if np.isfinite(arr).any():
        west, south = np.nanmin(arr[:, 0]), np.nanmin(arr[:, 1])
        east, north = np.nanmax(arr[:, 2]), np.nanmax(arr[:, 3])
    center = [(south + north) / 2, (west + east) / 2] if west is not None else [31.0, 121.0]
    m = folium.Map(location=center, zoom_start=11, tiles=None, attribution_control=False, control_scale=True)
    if west is not None:
        m.fit_bounds([[south, west], [north, east]])
    drawn: list[tuple[str, str, int, bool]] = []
    extras = PageExtras(title=title)
    legend: list[tuple[str, str]] = []
    for spec in specs:
        n = counts.get(spec.name, 0)
        if spec.geometry == "polygon":
            layer, k = _polygon_layer(con, spec, extras)
            drawn.append((spec.name, "polygons", k, True))
            legend.append((spec.zh, spec.style.color))
        elif aggregated(spec):
            # One hexagon layer at a time reads well: hazards first, the others one click away.
            if "hazard" in names:
                show = spec.name == "hazard"
            else:
                show = not any(mode == "hexagons" and shown for _, mode, _, shown in drawn)
            layer, k = _hex_layer(con, spec, n, hex_res, extras, show=show)
            drawn.append((spec.name, "hexagons", k, show))
            legend.append((f"{spec.zh} (六边形: 数量由浅到深)", HEX_COLORS[-2]))
        else:
            layer = _point_layer(con, spec, n, extras)
            drawn.append((spec.name, "points", n, True))
            if spec.style.colors:
                legend += [(f"{spec.zh}: {v}", c) for v, c in spec.style.colors.items()]
            else:
                legend.append((spec.zh, spec.style.fill_color or spec.style.color))
        layer.add_to(m)
    folium.LayerControl(collapsed=False, position="topright").add_to(m)
    header = (
        '<div id="onemap-title" style="position:fixed;top:10px;left:56px;z-index:1000;background:white;'
        'padding:6px 12px;border-radius:4px;box-shadow:0 1px 4px rgba(0,0,0,.3);font:bold 15px sans-serif">'
        f"{html.escape(title)}</div>"
    )
    extras.body += [header, _legend_html(legend, "图例")]
    return m, drawn, extras


def export_map(
    out: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    layers: list[str] | None = None,
    *,
    settings: Settings | None = None,
    max_points: int = 3000,
    hex_res: int = 8,
    title: str = "一图作战 离线地图",
) -> OfflineMap:
    """Write the offline map of the database to ``out`` (one HTML file, no external asset)."""
    path = Path(out)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"export-map writes an HTML file; {path.name!r} does not end in .html")
    for name in layers or []:
        if name not in LAYERS:
            raise ValidationError(f"unknown layer {name!r} in --layers; known layers: {', '.join(LAYERS)}")
    con = store.connect(db)
    try:
        m, drawn, extras = build_map(con, layers, settings=settings, max_points=max_points, hex_res=hex_res,
                                     title=title)
    finally:
        con.close()
    text = render_offline(m, extras)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return OfflineMap(path=path, size_bytes=path.stat().st_size, layers=tuple(drawn))
