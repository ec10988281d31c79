"""`onemap hotspots` and `onemap figures`: the committee's figures on the command line.

Thin wrappers: parse options into a ``Filter`` and ``Settings``, call ``geo/``, print a
table or JSON (schema in the README).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
import pandas as pd

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import store
from geo.aggregate import Filter, data_as_of, to_records, to_timestamp
from geo.errors import ValidationError
from geo.settings import Settings
from layers.registry import LAYERS

# Layers with a time field that hotspots can be computed for (hazards, incidents/alarms).
TIMED_LAYERS = [name for name, spec in LAYERS.items() if spec.sort_by and spec.geometry == "point"]
SECTIONS = ("closed-loop", "flow", "inspection", "scorecard", "wall")
AREA_BY = {"town": "town", "community": "community", "grid": "grid_id"}


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The shared filter options (time window, categorical fields, area)."""
    opts = [
        click.option("--from", "start", default=None, help="Start (inclusive), e.g. 2025-01-01."),
        click.option("--to", "end", default=None, help="End (exclusive), e.g. 2025-07-01."),
        click.option("--category", multiple=True, help="Hazard category (隐患类别); repeat for several."),
        click.option("--severity", multiple=True, help="一般 or 重大; repeat for both."),
        click.option("--status", multiple=True, help="Status (发现 立案 派遣 处置 核查 结案)."),
        click.option("--source", multiple=True, help="Source (网格巡查, 12345热线, 物联感知, ...)."),
        click.option("--supervision", multiple=True, help="挂牌督办: 无, 街镇挂牌, 区级挂牌."),
        click.option("--kind", multiple=True, help="Incident kind (火灾, 烟感报警, ...), for --layer incident."),
        click.option("--town", "towns", multiple=True, help="Town/street (街镇) name as stored."),
        click.option("--community", "communities", multiple=True, help="Community (社区/村) name as stored."),
        click.option("--grid", "grids", multiple=True, help="Grid id (网格编号)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _filter(kw: dict[str, Any]) -> Filter:
    names = ("start", "end", "category", "severity", "status", "source", "supervision", "kind",
             "towns", "communities", "grids")
    return Filter(**{n: kw.pop(n) for n in names})


def _as_of(value: str | None, con: Any, flt: Filter | None = None) -> datetime:
    """``--as-of``: a date/time, ``latest`` (the newest hazard in the database), else the
    figures' one rule (``governance.figures_as_of``: the end of ``--to``, now if later or none)."""
    from geo.governance import figures_as_of

    if value is None:
        return figures_as_of(None, flt)
    if value.strip().lower() == "latest":
        return data_as_of(con) or datetime.now()
    return to_timestamp(value, "--as-of") or datetime.now()


def _echo_json(payload: dict[str, Any]) -> None:
    echo_json(payload)  # the one strict conversion (geo.jsonsafe): an infinite ratio prints null


def _echo_table(title: str, frame: pd.DataFrame, limit: int | None = None) -> None:
    click.echo(f"\n{title}")
    if frame.empty:
        click.echo("  (none)")
        return
    shown = frame.head(limit) if limit else frame
    with pd.option_context("display.width", 200, "display.max_columns", 40, "display.float_format", "{:.3f}".format):
        click.echo(shown.to_string(index=False))
    if limit and len(frame) > limit:
        click.echo(f"  ... {len(frame) - limit} more (--json for all)")


@click.command()
@db_option
@config_option
@click.option("--layer", type=click.Choice(TIMED_LAYERS), default="hazard", show_default=True,
              help="Which points to count (incidents include the IoT alarms).")
@click.option("--res", type=click.IntRange(7, 10), default=None, help="H3 resolution (default: setting hotspot_resolution, 8).")
@click.option("--k", type=click.IntRange(1, 10), default=None, help="Neighbours within k rings (default: setting hotspot_k_ring, 1).")
@filter_options
@click.option("--all", "all_cells", is_flag=True, help="List every cell, not only the significant ones.")
@click.option("--trends", is_flag=True, help="Add emerging hot spot categories from monthly counts.")
@click.option("--warnings", "warn", is_flag=True, help="Add the rate-warning list of grids.")
@click.option("--as-of", "as_of", default=None, help="Warnings: end of the current period (date, 'latest' or now).")
@click.option("--period", type=click.IntRange(1, 366), default=None,
              help="Warnings: period in days (default: warning_period_days, 30; 7 in special periods).")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows per table in the text output.")
@json_option
def hotspots(db, config, layer, res, k, all_cells, trends, warn, as_of, period, limit, as_json, **kw) -> None:
    """Getis-Ord Gi* hotspots on H3 cells (ArcGIS bins, FDR), trends and warnings."""
    from geo.hotspots import BIN_ZH
    from geo.hotspots import hotspots as compute_hotspots
    from geo.trends import emerging_hotspots, rate_warnings

    settings = Settings.load(config, warning_period_days=period)
    flt = _filter(kw)
    con = store.connect(db)
    result = compute_hotspots(con, flt, res=res, k=k, settings=settings, layer=layer)
    table = result.table if all_cells else result.table[result.table["bin_fdr"] != 0]
    table = table.sort_values("z", ascending=False, ignore_index=True)
    payload: dict[str, Any] = {
        "layer": layer, "res": result.res, "k": result.k, "filter": flt.as_dict(),
        "study_area": result.study_area, "n_cells": result.n_cells, "total": result.total,
        "summary": result.summary(),
        "cells": to_records(table.drop(columns=["significant"])),
    }
    trend_table = warn_table = None
    if trends:
        trend_table = emerging_hotspots(con, flt, res=result.res, k=result.k, settings=settings, layer=layer)
        trend_table = trend_table[trend_table["category"] != ""]
        payload["trends"] = to_records(trend_table)
    if warn:
        t = _as_of(as_of, con)
        warn_table = rate_warnings(con, t, flt, settings, layer=layer)
        warn_table = warn_table[warn_table["warn"]]
        payload["as_of"] = t.isoformat()
        payload["warnings"] = to_records(warn_table)
    if as_json:
        _echo_json(payload)
        return
    click.echo(f"{LAYERS[layer].zh} Gi* 热点分析: H3 res {result.res}, k = {result.k}, "
               f"{result.n_cells} cells ({result.study_area}), {result.total} points")
    click.echo("  " + "  ".join(f"{BIN_ZH[b]} {n}" for b, n in zip(BIN_ZH, result.summary().values(), strict=True)))
    cols = ["h3", "count", "z", "p", "q", "bin_fdr"]
    _echo_table("cells (bin_fdr ±3/±2/±1 = 99/95/90 % after FDR):", table[cols], limit)
    if trend_table is not None:
        _echo_table("emerging hot spots (趋势):", trend_table[["h3", "category_zh", "total", "months_hot",
                                                             "trend_z", "trend_p"]], limit)
    if warn_table is not None:
        _echo_table(f"warnings (预警) as of {payload['as_of']}:", warn_table[["area", "town", "community", "current",
                                                                          "baseline", "ratio", "q"]], limit)


@click.command()
@click.argument("sections", nargs=-1, type=click.Choice(SECTIONS))
@db_option
@config_option
@click.option("--by", type=click.Choice(list(AREA_BY)), default="town", show_default=True,
              help="Area level of the closed-loop and inspection tables.")
@click.option("--monthly", is_flag=True, help="Closed-loop figures per month as well.")
@click.option("--as-of", "as_of", default=None,
              help="Figures as of this date/time ('latest' = newest hazard; default: the end of --to, or now).")
@click.option("--year", type=int, default=None, help="Scorecard year (default: the year that --as-of ends).")
@filter_options
@json_option
def figures(sections, db, config, by, monthly, as_of, year, as_json, **kw) -> None:
    """Closed loop (闭环), monthly flow, inspection compliance, town scorecard (考核) and wall KPIs."""
    from geo import governance as gov

    settings = Settings.load(config)
    flt = _filter(kw)
    con = store.connect(db)
    t = _as_of(as_of, con, flt)
    chosen = sections or SECTIONS
    group = [AREA_BY[by], "month"] if monthly else [AREA_BY[by]]
    payload: dict[str, Any] = {"as_of": t.isoformat(), "by": group, "filter": flt.as_dict()}
    tables: dict[str, pd.DataFrame] = {}
    if "closed-loop" in chosen:
        tables["closed_loop"] = gov.closed_loop(con, group, flt, t, settings)
    if "flow" in chosen:
        tables["flow"] = gov.monthly_flow(con, flt, (), t)
    if "inspection" in chosen:
        tables["inspection"] = gov.inspection_compliance(con, (AREA_BY[by],), t, flt, settings)
    if "scorecard" in chosen:
        y = year or gov.scorecard_year(t)
        if datetime(y, 1, 1) > t:
            raise ValidationError(f"--year {y} starts after --as-of {t:%Y-%m-%d}; pick an earlier year")
        tables["scorecard"] = gov.town_scorecard(con, y, t, settings)
        payload["year"] = y
    for name, frame in tables.items():
        payload[name] = to_records(frame)
    wall = gov.wall_kpis(con, t, settings, flt) if "wall" in chosen else None
    if wall is not None:
        payload["wall"] = wall.as_dict()
    if as_json:
        _echo_json(payload)
        return
    titles = {"closed_loop": "隐患闭环 closed loop", "flow": "每月新增/结案 monthly flow",
              "inspection": "检查合规 inspection compliance", "scorecard": f"街镇考核 scorecard {payload.get('year')}"}
    click.echo(f"as of {t:%Y-%m-%d %H:%M}")
    for name, frame in tables.items():
        _echo_table(titles[name], frame)
    if wall is not None:
        click.echo(f"\n大屏 wall: 未结案 {wall.open_hazards}  重大未结案 {wall.open_major}  超期 {wall.overdue}  "
                   f"挂牌未结 {wall.listed_open}  今日隐患 {wall.hazards_today}  今日警情 {wall.alarms_today}")


COMMANDS: list[click.Command] = [hotspots, figures]
