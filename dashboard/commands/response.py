"""`onemap response`: measured response performance (响应时效) on the command line.

A thin wrapper: parse the options into a ``Filter``, call ``geo.response.response_performance``,
print a table (times as m:ss) or JSON (seconds; schema in the README).
"""

from __future__ import annotations

from typing import Any

import click
import pandas as pd

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.aggregate import Filter, to_records, to_timestamp
from geo.errors import ValidationError
from geo.response import BY, MEASURES, PERCENTILE_DEFINITION, PERCENTILES, incident_towns, mmss, response_performance
from geo.settings import Settings

LAYER_ZH = {"micro_station": "微站", "fire_station": "消防站"}


def period_filter(start: str | None, end: str | None, town: str | None) -> Filter:
    """``--from`` (inclusive) / ``--to`` (exclusive) dates and ``--town`` as a Filter (bad dates: ValidationError)."""
    begin, until = to_timestamp(start, "--from"), to_timestamp(end, "--to")
    for name, text, value in (("--from", start, begin), ("--to", end, until)):
        if text is not None and value is None:  # NaN, NaT, '' parse to no time at all
            raise ValidationError(f"`{name}` = {text[:40]!r} is not a date; use ISO format such as 2025-06-30")
    if begin is not None and until is not None and until <= begin:
        raise ValidationError(f"--to {until:%Y-%m-%d} is not after --from {begin:%Y-%m-%d}")
    return Filter(start=begin, end=until, towns=(town,) if town else ())


def check_town(con: Any, town: str | None) -> None:
    """An unknown ``--town`` is an error listing the towns calls are assigned to."""
    if town is None:
        return
    known = incident_towns(con)
    if town not in known:
        shown = town if len(town) <= 40 else town[:40] + "…"
        raise ValidationError(f"--town {shown!r}: no call is assigned to that town; towns: {', '.join(known) or '(none)'}")


def display_table(frame: pd.DataFrame, group: list[str]) -> pd.DataFrame:
    """The figures as printed: times m:ss, shares in %, counts."""
    out = pd.DataFrame({c: frame[c] for c in group})
    if "month" in out:
        out["month"] = pd.to_datetime(out["month"]).dt.strftime("%Y-%m")
    if "layer" in out:
        out["layer"] = out["layer"].map(lambda v: LAYER_ZH.get(v, v))
    out["calls"] = frame["calls"]
    for m in MEASURES:
        for p in PERCENTILES:
            out[f"{m} p{p}"] = frame[f"{m}_p{p}_s"].map(mmss)
    for kind in ("turnout", "on_scene"):
        out[f"{kind} met"] = [f"{100 * s:.1f}% ({m}/{j})" if j else "—" for s, m, j in
                              zip(frame[f"{kind}_met_share"], frame[f"{kind}_met"], frame[f"{kind}_judged"], strict=True)]
    return out


def _echo(title: str, frame: pd.DataFrame) -> None:
    click.echo(f"\n{title}")
    if frame.empty:
        click.echo("  (none)")
        return
    with pd.option_context("display.width", 220, "display.max_columns", 40):
        click.echo(frame.to_string(index=False))


def _echo_text(result: Any, settings: Settings) -> None:
    targets = result.targets
    start, end = result.filter.start, result.filter.end
    click.echo(f"响应时效 response performance — calls received {f'{start:%Y-%m-%d}' if start else '…'} to "
               f"{f'{end:%Y-%m-%d}' if end else '…'} (end exclusive)")
    click.echo(f"targets: 微站 turnout ≤ {mmss(targets['micro_station'][0])}, on scene ≤ {mmss(targets['micro_station'][1])} "
               f"(1-3-5, seed 004); 消防站 turnout ≤ {mmss(targets['fire_station'][0])}, on scene ≤ "
               f"{mmss(targets['fire_station'][1])} from the call (建标152)")
    click.echo(f"percentiles: {PERCENTILE_DEFINITION}")
    group = {"unit": ["layer", "unit_id", "unit_name"], "town": ["town"], "month": ["month"]}[result.by]
    district = pd.DataFrame([result.district])
    _echo("全区 district", display_table(district.assign(area="全区"), ["area"]))
    _echo(f"by {result.by}", display_table(result.table, group))
    if result.by != "month":
        _echo("月度趋势 by month", display_table(result.trend, ["month"]))
    worst = result.worst
    shown = pd.DataFrame({"id": worst["id"], "call": pd.to_datetime(worst["reported_at"]).dt.strftime("%Y-%m-%d %H:%M"),
                          "town": worst["town"], "unit": worst["unit_name"].fillna("—"),
                          "turnout": worst["turnout_s"].map(mmss), "travel": worst["travel_s"].map(mmss),
                          "total": worst["total_s"].map(mmss)})
    _echo(f"最慢的 {settings.response_worst_calls} 起 worst calls", shown)
    click.echo(f"\ncalls without a unit: {result.calls_without_unit}; first unit matching no station: "
               f"{result.first_unit_unmatched}; intervals left out as data errors: {result.invalid}")
    for row in result.unmatched.head(10).itertuples(index=False):
        click.echo(f"  unmatched {row.unit_text!r} ({row.reason}) × {row.calls}")


@click.command(name="response")
@db_option
@config_option
@click.option("--by", type=click.Choice(list(BY)), default="unit", show_default=True,
              help="Rows per first-due unit, per town (街镇) or per month.")
@click.option("--from", "start", default=None, help="Calls received from this date (inclusive), e.g. 2025-01-01.")
@click.option("--to", "end", default=None, help="Calls received before this date (exclusive), e.g. 2025-07-01.")
@click.option("--town", default=None, help="Only calls in this town/street (街镇), as stored.")
@json_option
def response(db, config, by, start, end, town, as_json) -> None:
    """Measured response (响应时效): turnout, travel, total at p50/p90 and shares meeting the 1-3-5 / 5-min targets."""
    settings = Settings.load(config)
    flt = period_filter(start, end, town)
    con = store.connect(db)
    try:
        check_town(con, town)
        result = response_performance(con, by=by, flt=flt, settings=settings)
    finally:
        con.close()
    if as_json:
        payload = result.as_dict()
        for key in ("rows", "trend", "worst", "unmatched"):
            payload[key] = to_records(payload[key])
        echo_json(payload)
        return
    _echo_text(result, settings)


COMMANDS: list[click.Command] = [response]
