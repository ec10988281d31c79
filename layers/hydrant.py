"""Municipal fire hydrants (室外消火栓), GB 50974-2014 §7.2."""

from layers.base import LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

SPEC = LayerSpec(
    name="hydrant",
    zh="室外消火栓",
    en="Hydrants",
    geometry="point",
    fields=(
        own_id("消火栓编号", "消火栓编码", "消火栓号"),
        NAME,
        Field("status", "str", "状态", "Status", required=True, choices=("正常", "损坏", "水压不足", "停用"),
              aliases=("status", "state", "使用状态", "状况", "完好情况"),
              value_aliases=(("完好", "正常"), ("可用", "正常"), ("故障", "损坏"),
                             ("压力不足", "水压不足"), ("废弃", "停用"), ("停止使用", "停用"))),
        Field("hydrant_type", "str", "类型", "Type", choices=("地上式", "地下式", "室外消防水鹤"),
              aliases=("type", "形式", "栓型")),
        Field("pipe_diameter_mm", "float", "管径(mm)", "Pipe diameter (mm)",
              aliases=("diameter", "pipe_diameter", "管径", "管径mm", "口径")),
        Field("pressure_mpa", "float", "压力(MPa)", "Pressure (MPa)", aliases=("pressure", "压力", "水压", "水压mpa")),
        Field("last_inspection", "date", "最近检查", "Last inspection",
              aliases=("last_inspection", "inspected", "检查日期", "最近检查日期", "巡检日期")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#0072B2", radius=4.0, color_by="status",
                colors={"正常": "#0072B2", "损坏": "#D55E00", "水压不足": "#E69F00", "停用": "#000000"}),
    description_zh="市政消火栓，保护半径150米，间距120米 (GB 50974)",
    description_en="Municipal hydrants, 150 m protection radius, 120 m spacing (GB 50974)",
    assign_to_grid=True,
    z_order=60,
)
