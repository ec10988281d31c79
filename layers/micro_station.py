"""Micro fire stations (微型消防站): the "1-3-5" first responders."""

from layers.base import DUTY_STATUS, LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

SPEC = LayerSpec(
    name="micro_station",
    zh="微型消防站",
    en="Micro fire stations",
    geometry="point",
    fields=(
        own_id("微站编号", "微型消防站编号", "站点编号", "微站编码"),
        NAME,
        Field("kind", "str", "类型", "Kind", choices=("社区", "重点单位", "高配版"),
              aliases=("kind", "type", "站点类型", "类别")),
        Field("staff", "int", "人员", "Staff", aliases=("staff", "人数", "队员人数", "在岗人数")),
        Field("duty_24h", "bool", "24小时值守", "24 h duty", aliases=("duty_24h", "24h", "是否24小时", "全天值守")),
        Field("vehicles", "int", "车辆", "Vehicles", aliases=("vehicles", "车辆数", "消防车")),
        Field("phone", "str", "联系电话", "Phone", aliases=("phone", "tel", "电话")),
        Field("status", "str", "状态", "Status", choices=("在用", "建设中", "规划"), aliases=("status", "state")),
        DUTY_STATUS,
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#E69F00", radius=7.0),
    description_zh="“1-3-5”：1分钟响应、3分钟到场、5分钟处置",
    description_en='"1-3-5": respond in 1 min, on scene in 3, handle in 5',
    assign_to_grid=True,
    z_order=70,
)
