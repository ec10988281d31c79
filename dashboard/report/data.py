"""The figures, maps and tables of the committee report, gathered from the geo/ API.

``collect`` is the one place the report asks the database anything; every number comes
from the same functions the dashboard, CLI and notebooks use (``geo.governance``,
``geo.hotspots``, ``geo.coverage``, ``geo.water``). A section whose engine fails (e.g. no
responders stored) is left out with a note saying why, instead of failing the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import geopandas as gpd
import numpy as np
import pandas as pd

from geo import governance, staticmap, store
from geo.aggregate import Filter, to_timestamp
from geo.errors import OnemapError, ValidationError
from geo.settings import Settings
from layers import hazard as hazard_vocabulary

log = logging.getLogger(__name__)

TABLE_ROWS = 20  # rows shown per table in the printed report (the export has them all)
LISTED = hazard_vocabulary.LISTED_LEVELS  # the hazard spec's words, only for the text


@dataclass
class Section:
    """One numbered section: heading, optional image (PNG bytes), tables and notes."""

    key: str
    title: str
    lead: str = ""
    image: bytes | None = None
    image_alt: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything the template needs."""

    district: str
    town: str | None
    period_start: date | None
    period_end: date | None
    as_of: datetime
    generated: datetime
    summary: list[tuple[str, str, str]]  # (label, value, explanation)
    sections: list[Section]
    settings: Settings


# --------------------------------------------------------------------------- boundaries


def boundaries(con: duckdb.DuckDBPyConnection, town: str | None) -> tuple[str, gpd.GeoDataFrame | None,
                                                                           gpd.GeoDataFrame | None,
                                                                           gpd.GeoDataFrame | None]:
    """(district name, outline, town polygons, grids) for the maps; with ``town`` only that town."""
    admin = store.read_layer(con, "admin_area", columns=["id", "name", "level"])
    grids = store.read_layer(con, "grid", columns=["id", "name", "town"])
    district_rows = admin[admin["level"] == "区县"]
    district = str(district_rows["name"].iloc[0]) if len(district_rows) else "本辖区"
    towns = admin[admin["level"] == "街镇"][["name", "geometry"]]
    if not len(towns) and len(grids):
        towns = grids.dissolve(by="town", as_index=False)[["town", "geometry"]].rename(columns={"town": "name"})
    outline = district_rows if len(district_rows) else None
    if town:
        known_towns = sorted({str(t) for t in [*towns["name"].dropna(), *grids["town"].dropna()]})
        grids = grids[grids["town"] == town]
        towns = towns[towns["name"] == town]
        if not len(towns) and not len(grids):
            msg = f"town {town!r} has no grid or boundary in the database; towns: {', '.join(map(str, known_towns))}"
            raise ValidationError(msg)
        outline = towns if len(towns) else grids.dissolve()
        return district, outline, None, grids
    return district, outline, towns if len(towns) else None, None


# --------------------------------------------------------------------------- formatting


def pct(value: Any) -> str:
    """0.8333 → '83.3%'; missing → '—'."""
    return "—" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def num(value: Any, digits: int = 0) -> str:
    """Thousands separators; missing → '—'."""
    if value is None or pd.isna(value):
        return "—"
    return f"{float(value):,.{digits}f}"


def _day(value: Any) -> str:
    return "—" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------- sections


def _stage_line(con: duckdb.DuckDBPyConnection, flt: Filter) -> tuple[str, str, str]:
    """The summary line of median days per step of the closed loop (``governance.stage_days``)."""
    row = governance.stage_days(con, flt=flt).iloc[0]
    steps = " · ".join(f"{b} {num(row[governance.stage_column(*pair)], 1)}"
                       for pair, b in zip(governance.STAGES, hazard_vocabulary.STATUSES[1:], strict=True))
    reopened = f"；重新打开 {num(row['reopened'])} 条" if row["reopened"] else ""
    return "各环节中位天数", steps, f"发现→立案→派遣→处置→核查→结案，每步所用天数的中位数（天）{reopened}"


def _governance(con: duckdb.DuckDBPyConnection, flt: Filter, as_of: datetime, settings: Settings,
                summary: list[tuple[str, str, str]]) -> list[Section]:
    total = governance.closed_loop(con, by=(), flt=flt, as_of=as_of, settings=settings).iloc[0]
    summary += [
        ("发现隐患", num(total["discovered"]), "报告期内发现的火灾隐患（条）"),
        ("已结案", num(total["closed"]), f"截至 {as_of:%Y-%m-%d} 已结案（条）"),
        ("整改率", pct(total["rectification_rate"]), "已结案 / 发现"),
        ("超期未整改", num(total["overdue"]), "已过整改期限且未结案（条）"),
        ("重大隐患未结案", num(total["open_major"]), "等级为重大、尚未结案（条）"),
        ("挂牌督办未结案", num(total["listed_open"]), f"{'、'.join(LISTED)}尚未结案（条）"),
        ("结案天数中位数", num(total["median_days_to_close"], 1), "从发现到结案（天）"),
        _stage_line(con, flt),
    ]
    sections: list[Section] = []

    flow = governance.monthly_flow(con, flt=flt, as_of=as_of)
    trend = Section("trend", "月度趋势", "每月新发现的隐患与当月结案的隐患（条）。")
    if len(flow):
        fig = staticmap.line_chart(flow["month"], {"新发现": flow["discovered"], "结案": flow["closed"]},
                                   title="隐患月度趋势：新发现与结案", ylabel="条")
        trend.image, trend.image_alt = staticmap.to_png(fig), "隐患月度趋势图"
        table = pd.DataFrame({"月份": pd.to_datetime(flow["month"]).dt.strftime("%Y-%m"),
                              "新发现": flow["discovered"].map(num), "结案": flow["closed"].map(num)})
        trend.tables.append(("最近 12 个月", table.tail(12)))
    else:
        trend.notes.append("报告期内没有隐患记录。")
    sections.append(trend)

    year = governance.scorecard_year(as_of)
    score = governance.town_scorecard(con, year, as_of=as_of, settings=settings)
    rank = Section("towns", "街镇考核排名",
                   f"{year} 年度考核：整改率、按期整改率、排查合规率、一般隐患不出网格率、无反复率加权得分（满分 100）。")
    if len(score):
        fig = staticmap.bar_chart(score["town"].astype(str).tolist(), score["score"].to_numpy(dtype=float),
                                  title=f"{year} 年街镇考核得分", xlabel="得分", value_format="{:.1f}")
        rank.image, rank.image_alt = staticmap.to_png(fig), "街镇考核得分条形图"
        rank.tables.append(("街镇排名", pd.DataFrame({
            "排名": score["rank"].map(num), "街镇": score["town"], "发现隐患": score["discovered"].map(num),
            "整改率": score["rectification_rate"].map(pct), "按期整改率": score["on_time_rate"].map(pct),
            "排查合规率": score["inspection_compliance"].map(pct), "不出网格率": score["in_grid_share"].map(pct),
            "得分": score["score"].map(lambda v: num(v, 1)),
        })))
    else:
        rank.notes.append("没有可考核的街镇。")
    sections.append(rank)

    overdue = governance.overdue_hazards(con, flt=flt, as_of=as_of, settings=settings, limit=TABLE_ROWS)
    od = Section("overdue", "超期隐患",
                 f"已过整改期限仍未结案的隐患共 {num(total['overdue'])} 条；按超期天数列出前 {TABLE_ROWS} 条。")
    if len(overdue):
        od.tables.append(("超期隐患清单", _hazard_table(overdue, with_overdue=True)))
    else:
        od.notes.append("没有超期隐患。")
    sections.append(od)

    listed = governance.listed_hazards(con, flt, as_of=as_of, settings=settings, limit=TABLE_ROWS)
    ls = Section("listed", "挂牌督办事项",
                 f"{'、'.join(LISTED)}且尚未结案的隐患共 {num(total['listed_open'])} 条"
                 f"（区级在前，按发现时间排列，列出前 {TABLE_ROWS} 条）。")
    if len(listed):
        ls.tables.append(("挂牌督办清单", _hazard_table(listed, with_overdue=False)))
    else:
        ls.notes.append("没有未结案的挂牌督办事项。")
    sections.append(ls)

    insp = governance.inspection_compliance(con, by=("town",), as_of=as_of, flt=_area_only(flt), settings=settings)
    ins = Section("inspection", "三级网格化排查合规",
                  "一级（居村委，每月）、二级（街镇巡查，每季度）、三级（消防办，每半年）场所在周期内完成排查的比例。")
    if len(insp):
        overall = governance.inspection_compliance(con, by=(), as_of=as_of, flt=_area_only(flt), settings=settings,
                                                   per_class=False)
        summary.append(("排查合规率", pct(overall["compliance"].iloc[0]), "重点场所在排查周期内完成检查的比例"))
        ins.tables.append(("各街镇排查合规", _inspection_table(insp)))
    else:
        ins.notes.append("数据库中没有重点场所。")
    sections.append(ins)
    return sections


def _inspection_table(insp: pd.DataFrame) -> pd.DataFrame:
    """One row per town: places, compliance per class and overall, never inspected."""
    g = insp.groupby("town", sort=True)
    total = g[["places", "inspected_in_interval", "never_inspected", "overdue"]].sum()
    out = pd.DataFrame({"街镇": total.index, "场所数": total["places"].map(num).to_numpy()})
    for cls in sorted(insp["inspection_class"].astype(str).unique()):
        part = insp[insp["inspection_class"].astype(str) == cls].set_index("town")
        share = (part["inspected_in_interval"] / part["places"].where(part["places"] > 0)).reindex(total.index)
        out[f"{cls}级合规率"] = share.map(pct).to_numpy()
    overall = total["inspected_in_interval"] / total["places"].where(total["places"] > 0)
    out["总合规率"] = overall.map(pct).to_numpy()
    out["从未排查"] = total["never_inspected"].map(num).to_numpy()
    out["超期"] = total["overdue"].map(num).to_numpy()
    return out


def _area_only(flt: Filter) -> Filter:
    """The area part of a filter (inspection compliance has no time field)."""
    return Filter(towns=flt.towns, communities=flt.communities, grids=flt.grids)


def _hazard_table(frame: pd.DataFrame, with_overdue: bool) -> pd.DataFrame:
    out = pd.DataFrame({
        "编号": frame["id"], "街镇": frame["town"], "类别": frame["category"], "等级": frame["severity"],
        "状态": frame["status"], "督办": frame["supervision"], "发现日期": frame["discovered_at"].map(_day),
        "整改期限": frame["deadline"].map(_day),
    })
    if with_overdue:
        out["超期天数"] = frame["days_overdue"].map(num)
    return out


def _hotspots(con: duckdb.DuckDBPyConnection, flt: Filter, settings: Settings, outline: gpd.GeoDataFrame | None,
              towns: gpd.GeoDataFrame | None, grids: gpd.GeoDataFrame | None) -> Section:
    from geo import hotspots
    from geo.assign import points_in_polygons

    result = hotspots.hotspots(con, flt, settings=settings)
    table = result.table
    counts = hotspots.summary(table)
    hot = int(counts.get("hot_99", 0) + counts.get("hot_95", 0) + counts.get("hot_90", 0))
    sec = Section("hotspots", "隐患热点分布",
                  f"Getis-Ord Gi* 热点分析（H3 {result.res} 级六边形，邻域 {result.k} 环，Benjamini-Hochberg 校正）："
                  f"研究区 {num(result.n_cells)} 个单元、{num(result.total)} 条隐患，显著热点 {hot} 个"
                  f"（99%: {counts.get('hot_99', 0)}，95%: {counts.get('hot_95', 0)}，90%: {counts.get('hot_90', 0)}）。")
    fig = staticmap.hotspot_map(table, outline, towns if towns is not None else grids,
                                title=f"隐患热点（Gi*，H3 {result.res} 级）")
    sec.image, sec.image_alt = staticmap.to_png(fig), "隐患热点图"
    hot_cells = table[table["bin_fdr"] > 0]
    if len(hot_cells):
        polys = store.read_layer(con, "grid", columns=["id", "town"])
        idx = np.asarray(points_in_polygons(hot_cells["lon"].to_numpy(), hot_cells["lat"].to_numpy(),
                                            polys.geometry.to_numpy()))
        town_of = np.where(idx >= 0, polys["town"].to_numpy(dtype=object)[np.clip(idx, 0, None)], "(辖区外)")
        by_town = (pd.DataFrame({"town": town_of, "count": hot_cells["count"].to_numpy()})
                   .groupby("town").agg(cells=("count", "size"), hazards=("count", "sum"))
                   .sort_values(["cells", "hazards"], ascending=False).reset_index())
        sec.tables.append(("热点所在街镇", pd.DataFrame({
            "街镇": by_town["town"], "热点单元数": by_town["cells"].map(num), "热点内隐患": by_town["hazards"].map(num),
        })))
    return sec


def _coverage(con: duckdb.DuckDBPyConnection, settings: Settings, town: str | None,
              outline: gpd.GeoDataFrame | None, towns: gpd.GeoDataFrame | None,
              grids: gpd.GeoDataFrame | None, summary: list[tuple[str, str, str]]) -> Section:
    from geo import coverage, water
    from geo.coverage_inputs import load_scene

    micro_min, fire_min = settings.micro_station_minutes, settings.fire_station_minutes
    sec = Section("coverage", "响应覆盖与消火栓盲区",
                  f"微型消防站 {micro_min:g} 分钟到场（“1-3-5”）与消防站 {fire_min:g} 分钟到达（建标152-2017）"
                  f"可达的建成区；消火栓保护半径 {settings.hydrant_protection_radius_m:g} 米（GB 50974-2014）以外为盲区。")
    scene = load_scene(con, settings)
    result = coverage.compute_coverage(scene)
    blind = water.hydrant_blind_spots(scene)
    cells = result.cells[result.cells["built_up"]]
    bcells = blind.cells
    if town:
        cells = cells[cells["town"] == town]
        bcells = bcells[bcells["town"] == town]
    figures = coverage.summary(result, town=town)  # the wall's reach tiles come from the same two functions
    blind_figures = coverage.blind_spot_summary(blind, town=town)
    summary += [
        (f"微站{micro_min:g}分钟覆盖", pct(figures.get("area_share_micro_station")), "建成区面积中微型消防站可按时到场的比例"),
        (f"消防站{fire_min:g}分钟覆盖", pct(figures.get("area_share_fire_station")), "建成区面积中消防站可按时到达的比例"),
        ("综合覆盖", pct(figures["area_share"]), "任一力量可按时到达的建成区面积比例"),
        ("消火栓盲区", pct(blind_figures["blind_share"]),
         f"建成区面积中距正常消火栓超过 {settings.hydrant_protection_radius_m:g} 米的比例"),
    ]
    mode_note = "道路网络行驶时间" if result.mode == "network" else "直线距离估算（无道路数据）"
    sec.lead += f" 计算方式：{mode_note}。"
    draw = cells[cells["res"] == 9]
    bdraw = bcells[(bcells["res"] == 9) & bcells["blind"]]
    resp = result.responders
    pts = []
    for layer, label, color, marker in (("fire_station", "消防站", staticmap.COLORS["vermillion"], "s"),
                                        ("micro_station", "微型消防站", staticmap.COLORS["orange"], "o")):
        sel = resp[resp["layer"] == layer]
        if len(sel):
            pts.append((label, sel["lon"].to_numpy(), sel["lat"].to_numpy(), color, marker))
    areas = []
    if "eta_fire_station" in draw:
        areas.append((f"消防站{fire_min:g}分钟可达", draw.loc[draw["eta_fire_station"] <= result.targets_s["fire_station"], "cell"].to_numpy(np.uint64), staticmap.COLORS["sky"]))
    if "eta_micro_station" in draw:
        areas.append((f"微站{micro_min:g}分钟可达", draw.loc[draw["eta_micro_station"] <= result.targets_s["micro_station"], "cell"].to_numpy(np.uint64), staticmap.COLORS["green"]))
    fig = staticmap.coverage_map(outline, towns if towns is not None else grids, areas=areas,
                                 blind_cells=bdraw["cell"].to_numpy(np.uint64), points=pts,
                                 title=f"响应覆盖（微站{micro_min:g}分钟 / 消防站{fire_min:g}分钟）与消火栓盲区")
    sec.image, sec.image_alt = staticmap.to_png(fig), "响应覆盖与消火栓盲区图"
    fig_table = coverage.figures(result, level="town")
    if town:
        fig_table = fig_table[fig_table["name"] == town]
    sec.tables.append(("各街镇覆盖", pd.DataFrame({
        "街镇": fig_table["name"], "建成区(km²)": fig_table["area_km2"].map(lambda v: num(v, 2)),
        "覆盖面积": fig_table["area_share"].map(pct), "重点场所": fig_table["places"].map(num),
        "场所覆盖": fig_table["places_share"].map(pct),
    })))
    if len(result.unsnapped):
        sec.notes.append(f"{len(result.unsnapped)} 个力量点距道路过远，未计入覆盖。")
    return sec


def _response_times(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """The measured-response columns of a report table: counts, times m:ss, shares."""
    from geo.response import MEASURES, PERCENTILES, mmss

    names = {"turnout": "出动", "travel": "途中", "total": "到场"}
    out: dict[str, pd.Series] = {"警情数": frame["calls"].map(num)}
    for m in MEASURES:
        for p in PERCENTILES:
            out[f"{names[m]}P{p}"] = frame[f"{m}_p{p}_s"].map(mmss)
    out["出动达标率"] = frame["turnout_met_share"].map(pct)
    out["到场达标率"] = frame["on_scene_met_share"].map(pct)
    return out


def _response(con: duckdb.DuckDBPyConnection, flt: Filter, settings: Settings,
              summary: list[tuple[str, str, str]]) -> Section:
    """Measured response (``geo.response``): district tiles, per town, per first-due unit, by month, slowest calls."""
    from geo.response import mmss, response_performance

    by_town = response_performance(con, by="town", flt=flt, settings=settings)
    by_unit = response_performance(con, by="unit", flt=flt, settings=settings)
    d = by_town.district
    micro, station = by_town.targets["micro_station"], by_town.targets["fire_station"]
    summary += [
        ("到场用时P90", mmss(d["total_p90_s"]), "报告期内警情从接警到首车到场用时的第90百分位（分:秒）"),
        ("到场达标率", pct(d["on_scene_met_share"]),
         f"首出力量按时到场的警情比例：微站 {mmss(micro[1])}、消防站 {mmss(station[1])}"),
    ]
    sec = Section("response", "响应时效（实测）",
                  f"报告期内接警 {num(d['calls'])} 起。出动用时 = 出动时间 − 接警时间，途中用时 = 到场时间 − 出动时间，"
                  f"到场用时 = 到场时间 − 接警时间（分:秒）。首个出动力量计时；P50/P90 为最近秩百分位"
                  f"（第 ⌈p·n/100⌉ 小的用时，均为实际警情）。目标：微型消防站出动 {mmss(micro[0])}、到场 {mmss(micro[1])}"
                  f"（“1-3-5”）；消防站到场 {mmss(station[1])}（建标152-2017，以接警为调派时刻）。")
    district = pd.DataFrame([d])
    sec.tables.append(("全区", pd.DataFrame({"范围": ["全区"], **_response_times(district)})))
    if len(by_town.table):
        sec.tables.append(("各街镇", pd.DataFrame({"街镇": by_town.table["town"].fillna("（未落街镇）"),
                                                  **_response_times(by_town.table)})))
    if len(by_unit.table):
        kinds = by_unit.table["layer"].map({"micro_station": "微型消防站", "fire_station": "消防站"})
        sec.tables.append(("各首出力量", pd.DataFrame({"出动力量": by_unit.table["unit_name"].fillna(by_unit.table["unit_id"]),
                                                    "类型": kinds, **_response_times(by_unit.table)})))
    trend = by_town.trend
    if len(trend):
        sec.tables.append(("月度趋势（最近 12 个月）", pd.DataFrame({
            "月份": pd.to_datetime(trend["month"]).dt.strftime("%Y-%m"), **_response_times(trend)}).tail(12)))
    worst = by_town.worst
    if len(worst):
        sec.tables.append((f"到场最慢的 {len(worst)} 起警情", pd.DataFrame({
            "编号": worst["id"], "接警时间": pd.to_datetime(worst["reported_at"]).dt.strftime("%Y-%m-%d %H:%M"),
            "街镇": worst["town"], "出动力量": worst["unit_name"].fillna("—"),
            "出动": worst["turnout_s"].map(mmss), "途中": worst["travel_s"].map(mmss), "到场": worst["total_s"].map(mmss),
        })))
    if not d["calls"]:
        sec.notes.append("报告期内没有警情记录。")
    if by_town.first_unit_unmatched or by_town.calls_without_unit:
        sec.notes.append(f"首个出动力量未匹配到队站的警情 {by_town.first_unit_unmatched} 起、未填出动力量的警情 "
                         f"{by_town.calls_without_unit} 起：计入全区、街镇和月度数字，不计入各力量。")
    return sec


# --------------------------------------------------------------------------- assembly


def collect(
    con: duckdb.DuckDBPyConnection,
    settings: Settings | None = None,
    town: str | None = None,
    since: Any = None,
    until: Any = None,
    generated: datetime | None = None,
) -> ReportData:
    """Gather every figure, map and table of the report.

    ``since`` (inclusive) and ``until`` (exclusive) bound the hazards by discovery time. Without
    them the report covers the review page's opening period (``governance.default_period``:
    ``review_default_days`` up to the newest hazard's day); ``since`` alone runs to the end of
    that period, ``until`` alone starts ``review_default_days`` before it. Figures are taken as
    the period ends (``governance.figures_as_of``: now if it has not ended yet).
    """
    settings = settings or Settings()
    start, end = to_timestamp(since, "since"), to_timestamp(until, "until")
    if start is None or end is None:
        default = governance.default_period(con, settings)
        if end is None:
            end = default.end
        if start is None:
            start = end - timedelta(days=int(settings.review_default_days))
    if start >= end:
        msg = (f"--since {start:%Y-%m-%d} is not before --until {end:%Y-%m-%d}"
               + ("" if until else " (the day after the newest hazard); give an earlier --since or an --until"))
        raise ValidationError(msg)
    district, outline, towns, grids = boundaries(con, town)
    flt = Filter(start=start, end=end, towns=(town,) if town else ())
    as_of = governance.figures_as_of(None, flt)
    period_start, period_end = start, end - timedelta(days=1)
    summary: list[tuple[str, str, str]] = []
    sections: list[Section] = []
    failures: list[str] = []

    def attempt(name: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (OnemapError, ImportError, KeyError, ValueError) as exc:
            log.warning("report section %s left out: %s", name, exc)
            failures.append(f"{name}：{exc}")
            return None

    gov = attempt("隐患治理", _governance, con, flt, as_of, settings, summary) or []
    hs = attempt("隐患热点", _hotspots, con, flt, settings, outline, towns, grids)
    cov = attempt("响应覆盖", _coverage, con, settings, town, outline, towns, grids, summary)
    measured = attempt("响应时效", _response, con, flt, settings, summary)
    sections += [s for s in (hs, cov, measured) if s is not None] + gov
    order = ["hotspots", "coverage", "response", "trend", "towns", "overdue", "listed", "inspection"]
    sections.sort(key=lambda s: order.index(s.key))
    if failures:
        sections.append(Section("missing", "未能生成的内容", notes=failures))
    return ReportData(
        district=district, town=town,
        period_start=pd.Timestamp(period_start).date() if period_start is not None else None,
        period_end=pd.Timestamp(period_end).date() if period_end is not None else None,
        as_of=as_of, generated=generated or datetime.now(), summary=summary, sections=sections,
        settings=settings,
    )
