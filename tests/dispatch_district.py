"""A hand-made district for the dispatch picture, stored through the real ingest.

A 3 km × 3 km street grid (300 m blocks, one road class) and a call at its centre C
(1500 m east, 1500 m north). Along the streets from C every responder's distance is its
Manhattan distance, so the order by ETA is known by hand:

micro stations (one dispatch group)   fire stations
  M1 一号微站  300 m  busy: I-OPEN       F1 城中消防救援站  1500 m  消防救援站
  M2 二号微站  600 m  暂停执勤            F2 东区专职队      1800 m  政府专职消防队
  M3 三号微站  900 m  named by I-NOW      F3 西区专职队      3000 m  政府专职消防队
  M4 四号微站 1200 m  named by a closed call
  M5 五号微站 1500 m

Open calls: I-OPEN (处置中, far away, names M1 by id) and I-NOW (待处置, at C, names
M3 by its name); I-OLD (已处置) names M4 and F1. Vulnerable residents at 100, 200, 290
(inside the 300 m radius) and 315 m (outside) from C in a straight line. The key place
P1 (10 m from C) carries every pre-plan field, with a hostile hazmat text.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo import ingest
from geo.network import import_roads
from geo.settings import Settings

LAT0, LON0 = 31.0, 121.2
M_LON = 111_320.0 * np.cos(np.radians(LAT0))
M_LAT = 110_574.0
CENTRE = (1500.0, 1500.0)
HOSTILE_HAZMAT = "<img src=x onerror=alert(1)>{{7*7}}'; DROP TABLE key_place;--"


def ll(east: float, north: float) -> tuple[float, float]:
    """Longitude, latitude of a point ``east``/``north`` metres from the district's corner."""
    return LON0 + east / M_LON, LAT0 + north / M_LAT


def near_centre(de: float, dn: float) -> tuple[float, float]:
    return ll(CENTRE[0] + de, CENTRE[1] + dn)


def _csv(path: Path, rows: list[dict], at: list[tuple[float, float]]) -> Path:
    frame = pd.DataFrame(rows)
    frame["经度"] = [p[0] for p in at]
    frame["纬度"] = [p[1] for p in at]
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def micro_rows() -> tuple[list[dict], list[tuple[float, float]]]:
    rows = [
        {"编号": "M1", "名称": "一号微站", "状态": "在用", "执勤状态": "正常执勤"},
        {"编号": "M2", "名称": "二号微站", "状态": "在用", "执勤状态": "暂停执勤"},
        {"编号": "M3", "名称": "三号微站", "状态": "在用", "执勤状态": ""},
        {"编号": "M4", "名称": "四号微站", "状态": "在用", "执勤状态": "在岗"},
        {"编号": "M5", "名称": "五号微站", "状态": "在用", "执勤状态": ""},
    ]
    at = [near_centre(0, -300), near_centre(0, -600), near_centre(0, 900), near_centre(1200, 0), near_centre(-1500, 0)]
    return rows, at


def fire_rows() -> tuple[list[dict], list[tuple[float, float]]]:
    rows = [
        {"编号": "F1", "名称": "城中消防救援站", "类型": "消防救援站", "状态": "在役"},
        {"编号": "F2", "名称": "东区专职队", "类型": "政府专职消防队", "状态": "在役"},
        {"编号": "F3", "名称": "西区专职队", "类型": "政府专职消防队", "状态": "在役"},
    ]
    return rows, [ll(1500, 0), ll(3000, 1800), ll(0, 0)]


def incident_rows(closed: bool = False) -> tuple[list[dict], list[tuple[float, float]]]:
    """I-OPEN (closed when ``closed``), I-NOW at the centre, I-OLD long closed."""
    open_status, open_cleared = ("已处置", "2025-03-10 09:30:00") if closed else ("处置中", "")
    rows = [
        {"警情编号": "I-OPEN", "警情类型": "火灾", "接警时间": "2025-03-10 08:00:00", "出动时间": "2025-03-10 08:01:00",
         "到场时间": "2025-03-10 08:05:00", "处置完毕时间": open_cleared, "出动力量": "M1", "状态": open_status},
        {"警情编号": "I-NOW", "警情类型": "火灾", "接警时间": "2025-03-10 09:00:00", "出动时间": "2025-03-10 09:00:40",
         "到场时间": "", "处置完毕时间": "", "出动力量": "三号微站", "状态": "待处置"},
        {"警情编号": "I-OLD", "警情类型": "火灾", "接警时间": "2025-03-01 10:00:00", "出动时间": "2025-03-01 10:01:00",
         "到场时间": "2025-03-01 10:06:00", "处置完毕时间": "2025-03-01 11:00:00", "出动力量": "M4、F1", "状态": "已处置"},
    ]
    return rows, [ll(2700, 2700), near_centre(0, 0), ll(300, 300)]


def vulnerable_rows() -> tuple[list[dict], list[tuple[float, float]]]:
    rows = [
        {"人员编号": "V1", "姓名": "张三", "类别": "独居老人", "风险等级": "高", "行动能力": "不能行动", "年龄": 86,
         "联系电话": "13812345678", "监护人": "张小三 13900001111", "地址": "中心路1号"},
        {"人员编号": "V2", "姓名": "李四", "类别": "残疾人", "风险等级": "中", "行动能力": "需协助", "年龄": 52,
         "联系电话": "13700001234", "监护人": "", "地址": "中心路2号"},
        {"人员编号": "V3", "姓名": "王五", "类别": "独居老人", "风险等级": "高", "行动能力": "自理", "年龄": 79,
         "联系电话": "", "监护人": "", "地址": "南街3号"},
        {"人员编号": "V4", "姓名": "赵六", "类别": "卧床病人", "风险等级": "高", "行动能力": "不能行动", "年龄": 90,
         "联系电话": "13600005678", "监护人": "", "地址": "东街4号"},
    ]
    return rows, [near_centre(0, 100), near_centre(200, 0), near_centre(0, -290), near_centre(315, 0)]


def place_rows() -> tuple[list[dict], list[tuple[float, float]]]:
    rows = [{"场所编号": "P1", "名称": "国际大厦", "场所类别": "高层建筑", "排查等级": "三级", "最近检查": "2025-02-15",
             "层数": 28, "人员数量": 1200, "危险化学品": HOSTILE_HAZMAT, "负责人": "王小明", "联系电话": "13912345678",
             "地址": "中心路8号"}]
    return rows, [near_centre(10, 0)]


def build_district(tmp: Path) -> Path:
    """The district's DuckDB file, every layer through ``geo.ingest.ingest_file``; returns its path."""
    db = tmp / "dispatch.duckdb"
    lines = []
    for k in range(11):  # every street has a vertex at each crossing, so the streets join there
        lines.append(shapely.LineString([ll(k * 300, j * 300) for j in range(11)]))
        lines.append(shapely.LineString([ll(j * 300, k * 300) for j in range(11)]))
    roads = gpd.GeoDataFrame({"highway": ["residential"] * len(lines), "oneway": ["no"] * len(lines)}, geometry=lines, crs=4326)
    roads.to_file(tmp / "roads.gpkg")
    settings = Settings()
    import_roads(tmp / "roads.gpkg", db, settings)
    layers = {
        "micro_station": micro_rows(), "fire_station": fire_rows(), "incident": incident_rows(),
        "vulnerable_person": vulnerable_rows(), "key_place": place_rows(),
        "hydrant": ([{"编号": "H1", "名称": "大厦东栓", "状态": "正常"}, {"编号": "H2", "名称": "坏栓", "状态": "损坏"}],
                    [near_centre(0, 30), near_centre(0, 10)]),
        "hazard": ([{"编号": "Z1", "类别": "堵塞占用生命通道", "隐患等级": "一般", "状态": "立案", "场所编号": "P1",
                     "发现时间": "2025-03-01"}], [near_centre(10, 0)]),
    }
    for layer, (rows, at) in layers.items():
        result = ingest.ingest_file(layer, _csv(tmp / f"{layer}.csv", rows, at), db, crs="wgs84", settings=settings)
        assert result.rejected == 0, (layer, result)
    return db


def close_open_call(db: Path, tmp: Path) -> None:
    """The feed's update: I-OPEN is cleared (已处置), re-ingested through the real ingest."""
    rows, at = incident_rows(closed=True)
    result = ingest.ingest_file("incident", _csv(tmp / "incident_update.csv", rows, at), db, crs="wgs84")
    assert result.rejected == 0, result
