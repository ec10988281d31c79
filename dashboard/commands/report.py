"""Report and export commands: `report`, `export-map`, `export`."""

from __future__ import annotations

import json

import click

from dashboard.commands import config_option, db_option, json_option
from geo.settings import Settings


@click.command(name="export-map")
@db_option
@config_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--layers", "layers", default=None,
              help="Comma-separated layer names (default: every layer with rows; `onemap layers` lists them).")
@click.option("--max-points", default=3000, show_default=True, type=int,
              help="A point layer with more rows is drawn as H3 hexagons (hazards and incidents always are).")
@click.option("--hex-res", default=8, show_default=True, type=click.IntRange(7, 10),
              help="H3 resolution of the hexagons (7-10).")
@click.option("--title", default="一图作战 离线地图", show_default=True, help="Title shown on the map.")
@json_option
def export_map_cmd(db, config, out, layers, max_points, hex_res, title, as_json) -> None:
    """Write an offline map: ONE self-contained HTML file (no CDN, no tiles) with a layer control."""
    from dashboard.offline_map import export_map

    settings = Settings.load(config)
    names = [n.strip() for n in layers.split(",") if n.strip()] if layers else None
    result = export_map(out, db, names, settings=settings, max_points=max_points, hex_res=hex_res, title=title)
    if as_json:
        click.echo(json.dumps({"out": str(result.path), "size_bytes": result.size_bytes,
                               "layers": [{"layer": n, "drawn_as": m, "features": k} for n, m, k in result.layers]},
                              ensure_ascii=False, indent=2))
        return
    click.echo(f"onemap: wrote {result.path} ({result.size_bytes / 1e6:.1f} MB)")
    for name, mode, n in result.layers:
        click.echo(f"  {name:<14} {mode:<9} {n:>8,}")


COMMANDS: list[click.Command] = [export_map_cmd]
