"""`onemap ingest LAYER FILE`: import a user's file into the store."""

from __future__ import annotations

import click

from dashboard.access import audit
from dashboard.commands import config_option, db_option, echo_json, json_option
from geo.ingest import IngestResult, ingest_file, reason_label
from geo.settings import Settings
from layers.registry import LAYERS


def _summary(result: IngestResult) -> list[str]:
    spec = LAYERS[result.layer]
    enc = f", {result.encoding}" if result.encoding else ""
    lines = [
        f"onemap: {spec.zh} {result.layer} ← {result.file} ({result.fmt}{enc}, crs {result.crs})",
        f"  读取 read      {result.rows_read:>10,}",
        f"  接收 accepted  {result.accepted:>10,}",
        f"  拒收 rejected  {result.rejected:>10,}",
    ]
    for code, n in result.rejected_by_reason.items():
        lines.append(f"      {reason_label(code)} ({code}): {n:,}")
    if result.repaired:
        lines.append(f"  修复 repaired  {result.repaired:>10,}  (see ingest_notes)")
    if result.assigned_to_grid:
        lines.append(f"  落网格 assigned to grids {result.assigned_to_grid:,}")
    mapped = ", ".join(f"{h}→{f}" for h, f in result.column_map.items())
    lines.append(f"  列 columns: {mapped}")
    if result.unmapped_columns:
        lines.append(f"  未使用的列 not used: {', '.join(result.unmapped_columns)}")
    lines += _unit_lines(result.units)
    for note in result.notes:
        lines.append(f"  注 note: {note}")
    if result.rejected:
        lines.append(
            "  拒收明细 rejected rows: SELECT row_number, field, reason, value, detail FROM rejected "
            f"WHERE file = '{result.file}' ORDER BY row_number"
        )
    lines.append(f"  {result.seconds:.2f} s → {result.db}")
    return lines


UNIT_REASONS = {"unknown": "未找到 unknown", "ambiguous": "重名 ambiguous"}
SHOWN_TEXT = 40  # characters of an unmatched unit text shown in the summary


def _unit_lines(report: dict | None) -> list[str]:
    """Summary lines of the unit report: matched count, then each unmatched text with its rows."""
    if not report or not report["named"]:
        return []
    lines = [f"  出动力量 units: 匹配 matched {report['matched']:,} / {report['named']:,}"]
    for item in report["unmatched"]:
        text = item["unit_text"]
        shown = text if len(text) <= SHOWN_TEXT else text[:SHOWN_TEXT] + f"…({len(text)} chars)"
        more = " …" if item["count"] > len(item["rows"]) else ""
        rows = ", ".join(str(r) for r in item["rows"]) + more
        reason = UNIT_REASONS.get(item["reason"], item["reason"])
        lines.append(f"      {shown!r} {reason} ×{item['count']} (rows {rows})")
    if report["more"]:
        lines.append(f"      … {report['more']} more unmatched texts (--json lists the first ones)")
    return lines


@click.command(name="ingest")
@click.argument("layer", type=click.Choice(list(LAYERS)), metavar="LAYER")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--crs",
    default=None,
    help="Source coordinates: wgs84, cgcs2000, gcj02 (AMap/Tencent), bd09 (Baidu) or EPSG:<code> "
    "(e.g. EPSG:4527 for a CGCS2000 Gauss-Kruger zone). Default: the file's own CRS, else wgs84.",
)
@click.option(
    "--lon",
    default=None,
    help="Longitude / x column when the header is not recognised (e.g. X坐标).",
)
@click.option(
    "--lat",
    default=None,
    help="Latitude / y column when the header is not recognised (e.g. Y坐标).",
)
@click.option(
    "--id",
    "id_column",
    default=None,
    help="Column holding the register's own id when the header is not recognised (e.g. 栓号); "
    "re-importing an edited register then updates its rows instead of adding them.",
)
@click.option(
    "--sheet", default=None, help="XLSX sheet name or 0-based number (default: the first sheet)."
)
@click.option(
    "--encoding",
    default=None,
    help="Text encoding of CSV / Shapefile (default: UTF-8 or GBK/GB18030, detected).",
)
@db_option
@config_option
@json_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(
    layer, file, crs, lon, lat, id_column, sheet, encoding, db, config, as_json, quiet
) -> None:
    """Import FILE into layer LAYER (`onemap layers` lists layers and the column names they accept).

    Formats: CSV/TSV (UTF-8 or GBK), XLSX, GeoJSON, GeoPackage, Shapefile (.shp or .zip),
    GeoParquet, OSM PBF (hydrant, fire_station, water_source). Rows that fail a check are
    stored in the `rejected` table with row number, field, reason and the raw row; the exit
    code is 0 whenever the file could be read.
    """
    settings = Settings.load(config)
    result = ingest_file(
        layer,
        file,
        db=db,
        crs=crs,
        lon=lon,
        lat=lat,
        id_column=id_column,
        sheet=sheet,
        encoding=encoding,
        settings=settings,
        progress=not (quiet or as_json),
    )
    audit.record_cli(result.db, "import", f"{layer}:{result.file}", after={
        "file": result.file, "layer": layer, "sha256": result.sha256, "rows_read": result.rows_read,
        "accepted": result.accepted, "rejected": result.rejected})
    if as_json:
        echo_json(result.to_dict())
        return
    for line in _summary(result):
        click.echo(line)


COMMANDS: list[click.Command] = [ingest]
