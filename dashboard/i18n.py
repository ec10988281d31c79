"""The one translation table of the dashboard: every label in Chinese (default) and English.

Layer and field names come from the layer specs (``spec.label(lang)``); everything else
the pages show comes from ``TEXT`` through ``t(key, lang)``. A test checks that every key
has both languages and that the pages use no key missing here.
"""

from __future__ import annotations

LANGS: tuple[str, ...] = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    # app and navigation
    "app_title": ("一图作战 · 基层消防", "One Map · Fire safety"),
    "nav_home": ("全域一图", "Overview"),
    "nav_wall": ("指挥大屏", "Command wall"),
    "nav_plan": ("规划分析", "Planning"),
    "nav_review": ("研判会商", "Review"),
    "lang_switch": ("English", "中文"),
    "home_intro": ("全区消防力量、水源、重点场所与隐患一张图。选择页面：",
                   "Fire resources, water, key places and hazards of the district on one map. Pages:"),
    "home_wall": ("指挥中心大屏：实时计数、滚动信息、调度图", "Command-centre wall: live counts, ticker, dispatch picture"),
    "home_plan": ("规划分析：覆盖范围、盲区、增站推演、选址建议", "Planning: coverage, blind spots, what-if stations, siting"),
    "home_review": ("研判会商：热点、趋势、闭环处置、考核", "Review: hotspots, trends, closed loop, town scorecard"),
    "no_data": ("数据库中暂无数据：运行 onemap demo 或 onemap ingest 导入数据。",
                "The database holds no data yet: run onemap demo or onemap ingest."),
    # map
    "legend": ("图例", "Legend"),
    "legend_hex": ("每格数量（少 → 多）", "Count per hexagon (few → many)"),
    "legend_cluster": ("聚合点：数字为点数", "Clusters: number of points"),
    "roads": ("道路", "Roads"),
    "basemap_none": ("无底图（离线）", "No basemap (offline)"),
    "basemap": ("底图", "Basemap"),
    "popup_loading": ("加载中…", "Loading…"),
    "popup_error": ("详情加载失败", "Could not load details"),
    "hex_tooltip": ("本格 {n} 个", "{n} in this hexagon"),
    # filters
    "filters": ("筛选", "Filters"),
    "filter_layer": ("图层", "Layer"),
    "filter_time": ("时间范围", "Time range"),
    "color_by": ("着色字段", "Colour by"),
    "all": ("全部", "All"),
    "apply": ("应用", "Apply"),
    "reset": ("重置", "Reset"),
    # wall
    "wall_title": ("基层消防一图作战 · 指挥大屏", "Fire-safety one map · Command wall"),
    "kpi_open": ("未结案隐患", "Open hazards"),
    "kpi_major": ("重大隐患", "Major open"),
    "kpi_overdue": ("超期未改", "Overdue"),
    "kpi_listed": ("挂牌督办", "Listed for supervision"),
    # minutes: the configured micro_station_minutes / fire_station_minutes (never a literal)
    "kpi_micro_reach": ("微站{minutes}分钟覆盖", "Micro station {minutes}-min reach"),
    "kpi_station_reach": ("消防站{minutes}分钟覆盖", "Fire station {minutes}-min reach"),
    "kpi_blind": ("消火栓盲区（建成区）", "Hydrant blind spots (built-up area)"),
    "kpi_alarms_today": ("今日警情", "Alarms today"),
    "kpi_hazards_today": ("今日新增隐患", "New hazards today"),
    "kpi_unit_km2": ("平方公里", "km²"),
    "kpi_unit_cells": ("处", "cells"),
    "ticker_title": ("最新动态", "Latest"),
    "ticker_hazard": ("隐患", "Hazard"),
    "ticker_alarm": ("警情", "Alarm"),
    "updated_at": ("更新于", "Updated"),
    "rotate_town": ("轮播街镇", "Rotating towns"),
    "whole_district": ("全区", "Whole district"),
    "dispatch_title": ("调度图", "Dispatch picture"),
    "dispatch_pick": ("选择警情查看调度", "Pick an incident to see its dispatch"),
    "dispatch_none": ("暂无警情", "No incidents"),
    "dispatch_responders": ("出动力量（按到场时间）", "Responders by ETA"),
    "dispatch_hydrants": ("最近可用消火栓", "Nearest working hydrants"),
    "dispatch_water": ("最近水源", "Nearest water sources"),
    "dispatch_place": ("涉及场所", "Key place"),
    "dispatch_place_hazards": ("场所未结隐患", "Open hazards of the place"),
    "dispatch_unavailable": ("调度引擎尚不可用", "The dispatch engine is not available yet"),
    "dispatch_no_responder": ("无出动力量可经道路到达此处", "No responder reaches this point by road"),
    "eta": ("预计到场", "ETA"),
    "minutes_short": ("分", "min"),
    "seconds_short": ("秒", "s"),
    "metres": ("米", "m"),
    "within_target": ("达标", "On target"),
    "not_within_target": ("超时", "Late"),
    # plan
    "plan_title": ("规划分析", "Planning"),
    "responder_type": ("力量类型", "Responder type"),
    "coverage_overlay": ("覆盖图层", "Coverage overlay"),
    "isochrones": ("等时圈", "Isochrones"),
    "first_due": ("首到责任区", "First-due areas"),
    "blind_spots": ("消火栓盲区", "Hydrant blind spots"),
    "minutes": ("分钟", "minutes"),
    "whatif": ("增站推演", "What-if"),
    "whatif_help": ("点击地图添加站点；拖动站点移动；点击站点后可删除。",
                    "Click the map to add a station; drag to move it; click a station to remove it."),
    "whatif_add": ("点击地图添加", "Click map to add"),
    "whatif_remove": ("删除所选站点", "Remove selected"),
    "whatif_reset": ("清空推演", "Reset scenario"),
    "reach": ("覆盖率", "Reach"),
    "reach_area": ("建成区面积覆盖", "Built-up area covered"),
    "reach_places": ("重点场所覆盖", "Key places covered"),
    "reach_weight": ("加权需求覆盖", "Weighted demand covered"),
    "change": ("变化", "Change"),
    "suggest": ("建议选址", "Suggest sites"),
    "suggest_k": ("站点数 k", "Number of sites k"),
    "suggest_run": ("计算", "Compute"),
    "gain": ("增益", "Gain"),
    "rank": ("序号", "Rank"),
    "worst_uncovered": ("覆盖最差区域", "Worst uncovered places"),
    "export": ("导出方案", "Export scenario"),
    "export_geojson": ("GeoJSON", "GeoJSON"),
    "export_csv": ("CSV", "CSV"),
    "coverage_unavailable": ("覆盖分析引擎尚不可用", "The coverage engine is not available yet"),
    "mode_network": ("路网模式", "Road network"),
    "mode_radius": ("直线半径模式", "Straight-line radius"),
    "scenario": ("推演方案", "Scenario"),
    "new_station": ("新增站点", "New station"),
    "area_km2": ("面积(km²)", "Area (km²)"),
    "weight": ("需求权重", "Demand weight"),
    "places": ("场所", "Places"),
    "cells": ("网格单元", "Cells"),
    "town": ("街镇", "Town"),
    "lon": ("经度", "Longitude"),
    "lat": ("纬度", "Latitude"),
    # review
    "review_title": ("研判会商", "Committee review"),
    "hotspots": ("隐患热点 (Gi*)", "Hazard hotspots (Gi*)"),
    "hot_99": ("热点 99%", "Hot spot 99%"),
    "hot_95": ("热点 95%", "Hot spot 95%"),
    "hot_90": ("热点 90%", "Hot spot 90%"),
    "not_significant": ("不显著", "Not significant"),
    "cold_90": ("冷点 90%", "Cold spot 90%"),
    "cold_95": ("冷点 95%", "Cold spot 95%"),
    "cold_99": ("冷点 99%", "Cold spot 99%"),
    "category": ("隐患类别", "Category"),
    "monthly_trend": ("月度趋势：新增与结案", "Monthly trend: new and closed"),
    "discovered": ("新增", "New"),
    "closed": ("结案", "Closed"),
    "closed_loop": ("闭环处置", "Closed loop"),
    "by_level": ("统计层级", "Group by"),
    "level_town": ("街镇", "Town"),
    "level_grid": ("网格", "Grid"),
    "level_community": ("社区", "Community"),
    "overdue_list": ("超期未改清单", "Overdue hazards"),
    "supervised_list": ("挂牌督办清单", "Listed for supervision"),
    "inspection": ("排查合规率", "Inspection compliance"),
    "scorecard": ("街镇考核", "Town scorecard"),
    "print": ("打印", "Print"),
    "period": ("统计期", "Period"),
    "analytics_unavailable": ("研判分析模块尚不可用", "The analytics engine is not available yet"),
    "rectification_rate": ("整改率", "Rectification rate"),
    "median_days": ("结案中位天数", "Median days to close"),
    "overdue": ("超期", "Overdue"),
    "open": ("未结", "Open"),
    "open_major": ("重大未结", "Major open"),
    "listed_open": ("督办未结", "Listed open"),
    "recurring": ("反复场所", "Recurring places"),
    "in_grid_share": ("不出网格率", "Fixed in grid"),
    "compliance": ("合规率", "Compliance"),
    "inspection_class": ("排查等级", "Class"),
    "score": ("得分", "Score"),
    "on_time_rate": ("按期整改率", "On-time rate"),
    "no_recurrence_rate": ("无反复率", "No recurrence"),
    "days_overdue": ("超期天数", "Days overdue"),
    "deadline": ("整改期限", "Deadline"),
    "supervision": ("督办级别", "Supervision"),
    "status": ("状态", "Status"),
    "severity": ("等级", "Severity"),
    "discovered_at": ("发现时间", "Discovered"),
    "grid": ("网格", "Grid"),
    "community": ("社区", "Community"),
    "id": ("编号", "ID"),
    "places_total": ("场所数", "Places"),
    "in_interval": ("按期排查", "In interval"),
    "never_inspected": ("从未排查", "Never inspected"),
}


def t(key: str, lang: str = "zh", **values: object) -> str:
    """The label ``key`` in ``lang`` (zh or en), with ``{name}`` placeholders filled.

    Raises KeyError naming the missing key: a label must never silently fall back.
    """
    try:
        zh, en = TEXT[key]
    except KeyError:
        raise KeyError(f"no translation for {key!r}; add it to dashboard/i18n.py TEXT") from None
    text = en if lang == "en" else zh
    return text.format(**values) if values else text


def lang_of(value: object) -> str:
    """A valid language code from a URL parameter or store value (zh by default)."""
    return "en" if value == "en" else "zh"
