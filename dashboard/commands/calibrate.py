"""`onemap calibrate`: fit the road model's slow-down factor to measured travel times."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pandas as pd

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.calibrate import SKIP_REASONS, Calibration, calibrate_store, mmss, write_calibration
from geo.settings import Settings

DEFAULT_SETTINGS_FILE = "onemap.toml"


def settings_file(config: str | None) -> Path:
    """The TOML file ``--write`` updates: ``--config``, else ``ONEMAP_CONFIG``, else ./onemap.toml
    (the file ``Settings.load`` reads, so the next command uses what was written)."""
    return Path(config or os.environ.get("ONEMAP_CONFIG") or DEFAULT_SETTINGS_FILE)


def _echo_ratios(title: str, frame: pd.DataFrame, key: str) -> None:
    click.echo(title)
    click.echo(f"  {key:<16} {'calls':>6} {'p50':>6} {'p90':>6}")
    for row in frame.itertuples(index=False):
        click.echo(f"  {str(getattr(row, key)):<16} {row.calls:>6} {row.p50:>6.2f} {row.p90:>6.2f}")


def _echo_fit(fit: Calibration, settings: Settings) -> None:
    skipped = sum(fit.skipped.values())
    click.echo(f"road model calibration: {fit.used} calls used, {skipped} skipped")
    for key, n in fit.skipped.items():
        click.echo(f"  skipped {n}: {SKIP_REASONS[key]}")
    marker = (f"calibrated on {settings.road_calibration_date} with {settings.road_calibration_calls} calls"
              if settings.road_calibration_calls else "default assumption")
    click.echo("fit: least absolute deviation of log travel times (factor = exp(median log(free-flow / measured)))")
    click.echo(f"  urban_slowdown_factor: {fit.factor_before:g} now ({marker}) → {fit.factor:.3f} fitted")
    b, a = fit.error_before, fit.error_after
    click.echo(f"  |measured − modelled| travel (nearest rank): p50 {mmss(b['p50_s'])} → {mmss(a['p50_s'])}, "
               f"p90 {mmss(b['p90_s'])} → {mmss(a['p90_s'])}")
    click.echo(f"ratio measured / modelled at the current factor {fit.factor_before:g} (p50/p90, nearest rank):")
    _echo_ratios(" by road class (OSM class of the route's last edge: the call's street):", fit.by_class, "road_class")
    _echo_ratios(" by town:", fit.by_town, "town")
    _echo_ratios(" by hour of the rolling time:", fit.by_hour, "hour")


@click.command(name="calibrate")
@db_option
@config_option
@click.option("--write", is_flag=True,
              help="Write the fitted factor (with the number of calls and the date) into the settings file.")
@json_option
def calibrate_cmd(db, config, write, as_json) -> None:
    """Fit the road model's slow-down factor to measured travel (出动时间 → 到场时间) of real calls."""
    settings = Settings.load(config)
    con = store.connect(store.resolve_db_path(db, settings))
    try:
        fit = calibrate_store(con, settings)
    finally:
        con.close()
    target = settings_file(config)
    written = str(write_calibration(target, fit)) if write else None
    if as_json:
        echo_json({**fit.to_dict(), "written_to": written})
        return
    _echo_fit(fit, settings)
    if written:
        click.echo(f"written to {written}: urban_slowdown_factor = {round(fit.factor, 4)} "
                   f"(road_calibration_calls = {fit.used}); /plan and `onemap coverage` use it from now on")
    else:
        click.echo(f"nothing written; `onemap calibrate --write` stores the factor in {target}")


COMMANDS = [calibrate_cmd]
