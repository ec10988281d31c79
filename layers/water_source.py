"""Fire water sources (消防水源): pools, natural intake points, docks, water cranes."""

from layers.base import LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

SPEC = LayerSpec(
    name="water_source",
    zh="消防水源",
    en="Water sources",
    geometry="point",
    fields=(
        own_id("水源编号", "水源编码"),
        NAME,
        Field("kind", "str", "类型", "Kind", required=True,
              choices=("消防水池", "天然水源取水点", "取水码头", "消防水鹤", "消防水箱"),
              aliases=("kind", "type", "水源类型", "类别")),
        Field("capacity_m3", "float", "容量(m³)", "Capacity (m³)", aliases=("capacity", "容量", "容积", "容量m3", "储水量")),
        Field("status", "str", "状态", "Status", choices=("正常", "损坏", "停用"), aliases=("status", "state", "使用状态")),
        Field("last_inspection", "date", "最近检查", "Last inspection", aliases=("last_inspection", "检查日期")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#009E73", radius=6.0),
    description_zh="消防水池、天然水源取水点、取水码头、消防水鹤",
    description_en="Fire pools, natural intake points, intake docks, water cranes",
    assign_to_grid=True,
    z_order=61,
)
