"""CLI of the province view: `onemap export-partition` and `onemap province run`."""

from __future__ import annotations

import click

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo.aggregate import to_timestamp
from geo.errors import ValidationError
from geo.settings import Settings


@click.command("export-partition")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Directory of the province dataset (created; this district's partition replaced).")
@db_option
@click.option("--district", default=None,
              help="Partition key of the district (default: the adcode of its 区县 admin area).")
@click.option("--name", default=None, help="District name for the manifest (default: the admin area's).")
@json_option
def export_partition(out, db, district, name, as_json) -> None:
    """Write every layer of the district database as partitioned GeoParquet (README, "Province view")."""
    from geo import partition

    counts = partition.export_partition(db or _default_db(), out, district, name)
    if as_json:
        echo_json({"out": out, "tables": counts})
        return
    click.echo(f"export-partition: {len(counts)} tables, {counts.get('hazard', 0):,} hazards → {out}")


def _default_db() -> str:
    from geo import store

    return str(store.resolve_db_path())


@click.group("province")
def province() -> None:
    """The province view on Apache Spark (README, "Province view on Spark")."""


@province.command("run")
@click.option("--data", "data", required=True, type=click.Path(file_okay=False, exists=True),
              help="Province dataset written by onemap export-partition.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Directory for the job's Parquet results (the /province page reads it).")
@click.option("--master", default="local[*]", show_default=True,
              help="Spark master: local[N] or spark://host:port.")
@click.option("--as-of", "as_of", default=None, help="Moment the figures are taken at (ISO; default now).")
@click.option("--district", "districts", multiple=True, help="Only these districts (repeatable).")
@config_option
@json_option
def run(data, out, master, as_of, districts, config, as_json) -> None:
    """Run the province job: counts by district, town and H3 cell, and every district's figures."""
    from geo.province import job

    if not (master.startswith("local") or master.startswith("spark://") or master in ("yarn",)
            or master.startswith("k8s://")):
        raise ValidationError(f"--master {master!r}: use local[N], spark://host:port, yarn or k8s://…")
    moment = to_timestamp(as_of, "--as-of")
    result = job.run(data, out, master, moment, Settings.load(config), districts=list(districts) or None)
    if as_json:
        echo_json(result)
        return
    rows = result["rows"]
    click.echo(f"province run: {rows['district_rank']} districts, {rows['hazard_cells']:,} cell rows, "
               f"counts {result['counts_s']} s, district figures {result['districts_s']} s → {out}")


COMMANDS = [export_partition, province]
