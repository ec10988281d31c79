"""Report and export commands: `report`, `export-map`, `export`."""

from __future__ import annotations

import click

from dashboard.access import audit
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
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
    db_path = store.resolve_db_path(db, settings)
    result = export_map(out, db_path, names, settings=settings, max_points=max_points, hex_res=hex_res, title=title)
    audit.record_cli(db_path, "export", f"export-map:{result.path}", after={
        "out": str(result.path), "size_bytes": result.size_bytes, "layers": [n for n, *_ in result.layers]})
    if as_json:
        echo_json({"out": str(result.path), "size_bytes": result.size_bytes,
                   "layers": [{"layer": n, "drawn_as": m, "features": k, "shown": v}
                              for n, m, k, v in result.layers]})
        return
    click.echo(f"onemap: wrote {result.path} ({result.size_bytes / 1e6:.1f} MB)")
    for name, mode, n, shown in result.layers:
        click.echo(f"  {name:<14} {mode:<9} {n:>8,}{'' if shown else '  (hidden at start)'}")


def _filter(towns: tuple[str, ...], since: str | None, until: str | None):  # noqa: ANN202
    """A geo.aggregate.Filter from the shared options (None when nothing is filtered)."""
    if not towns and not since and not until:
        return None
    from geo.aggregate import Filter

    return Filter(start=since, end=until, towns=tuple(towns))


@click.command(name="export")
@click.argument("name")
@db_option
@config_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="File to write: .gpkg (GeoPackage), .parquet (GeoParquet) or .csv (UTF-8 with BOM).")
@click.option("--zh", is_flag=True, help="Chinese column headers (编号, 隐患类别, ...).")
@click.option("--geometry", "geometry", type=click.Choice(["auto", "lonlat", "wkt", "none"]), default="auto",
              show_default=True, help="CSV only: points as lon/lat columns, other shapes as WKT (auto).")
@click.option("--town", "towns", multiple=True, help="Only this town/street (repeatable).")
@click.option("--since", default=None, help="From this date (inclusive), on the layer's time field.")
@click.option("--until", default=None, help="Until this date (exclusive).")
@json_option
def export_cmd(name, db, config, out, zh, geometry, towns, since, until, as_json) -> None:
    """Export a layer or an analysis result (`onemap export --help` lists them) to GPKG/GeoParquet/CSV.

    NAME is a layer (hazard, hydrant, grid, ...) or a result: hotspots, emerging_hotspots,
    rate_warnings, closed_loop, overdue_hazards, inspection_compliance, recurring_places,
    coverage_cells, coverage_areas, first_due, uncovered, isochrones, hydrant_blind_spots,
    hydrant_blind_places, hydrant_spacing, nearest_water.
    """
    from geo import export, store

    settings = Settings.load(config)
    con = store.connect(store.resolve_db_path(db, settings))
    try:
        path, rows = export.export_any(con, name, out, settings=settings, flt=_filter(towns, since, until),
                                       zh=zh, csv_geometry=geometry)
    finally:
        con.close()
    audit.record_cli(store.resolve_db_path(db, settings), "export", f"{name}:{path}", after={
        "name": name, "out": str(path), "rows": rows, "towns": list(towns), "since": since, "until": until})
    if as_json:
        echo_json({"name": name, "out": str(path), "format": export.export_format(path), "rows": rows})
        return
    click.echo(f"onemap: wrote {rows:,} rows of {name} to {path}")


@click.command(name="report")
@db_option
@config_option
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="FILE.html (one self-contained file) or FILE.pdf (A4, printed by headless Chromium).")
@click.option("--town", default=None, help="Report on one town/street only (街镇名称).")
@click.option("--since", default=None,
              help="First day of the period (YYYY-MM-DD, inclusive; default: review_default_days before --until).")
@click.option("--until", default=None,
              help="Day after the period (YYYY-MM-DD, exclusive; default: the day after the newest hazard); "
                   "figures are taken then (now, if the period has not ended).")
@json_option
def report_cmd(db, config, out, town, since, until, as_json) -> None:
    """Write the fire-safety committee report (Chinese): summary, hotspots, coverage, trends, tables."""
    from dashboard.report import build_report

    settings = Settings.load(config)
    db_path = store.resolve_db_path(db, settings)
    result = build_report(out, db_path, town=town, since=since, until=until, settings=settings)
    data = result.data
    audit.record_cli(db_path, "report", f"report:{result.path}", after={
        "out": str(result.path), "format": result.format, "town": town, "since": since, "until": until})
    if as_json:
        echo_json({
            "out": str(result.path), "format": result.format, "size_bytes": result.size_bytes,
            "district": data.district, "town": data.town,
            "period": [str(data.period_start) if data.period_start else None,
                       str(data.period_end) if data.period_end else None],
            "as_of": data.as_of.isoformat(), "summary": [{"label": k, "value": v} for k, v, _ in data.summary],
            "sections": [s.title for s in data.sections],
        })
        return
    click.echo(f"onemap: wrote the report {result.path} ({result.size_bytes / 1e6:.1f} MB, {len(data.sections)} sections)")
    click.echo(f"  period {data.period_start} – {data.period_end} (hazards by discovery day), "
               f"figures as of {data.as_of:%Y-%m-%d %H:%M}")


COMMANDS: list[click.Command] = [report_cmd, export_map_cmd, export_cmd]
