"""CLI commands by topic; `dashboard.cli` gathers each module's COMMANDS."""

from typing import Any

import click

from geo import jsonsafe

db_option = click.option(
    "--db", "db", type=click.Path(dir_okay=False), default=None,
    help="DuckDB file (default data/onemap.duckdb; env ONEMAP_DB).",
)
config_option = click.option(
    "--config", "config", type=click.Path(dir_okay=False, exists=True), default=None,
    help="TOML settings file (default ./onemap.toml; env ONEMAP_CONFIG).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (schema in the README).")


def echo_json(data: Any) -> None:
    """Print ``data`` as strict JSON (``geo.jsonsafe``: NaN/inf → null, frames → records)."""
    click.echo(jsonsafe.dumps(data))
