"""Incidents and alarms (警情): fire calls and IoT alarms with measured response times."""

from layers.base import LOCATION, REMARK, Field, LayerSpec, Style, own_id

SPEC = LayerSpec(
    name="incident",
    zh="警情",
    en="Incidents",
    geometry="point",
    fields=(
        own_id("警情编号", "接警编号", "警情编码", "接警单号"),
        Field("kind", "str", "警情类型", "Kind", required=True,
              choices=("火灾", "烟感报警", "电动车充电报警", "电气火灾监测", "燃气泄漏", "其他"),
              aliases=("kind", "type", "类型", "警情类别", "报警类型")),
        Field("source", "str", "来源", "Source", choices=("119接警", "物联感知", "12345热线", "其他"),
              aliases=("source", "来源", "渠道")),
        Field("reported_at", "datetime", "报警时间", "Reported", required=True,
              aliases=("reported", "reported_at", "time", "报警时间", "接警时间", "时间")),
        Field("arrived_at", "datetime", "到场时间", "Arrived", aliases=("arrived", "arrived_at", "到场时间")),
        Field("response_s", "float", "响应时长(秒)", "Response (s)", aliases=("response", "response_s", "响应时间", "到场用时")),
        Field("status", "str", "状态", "Status", choices=("待处置", "处置中", "已处置", "误报"), aliases=("status", "state")),
        Field("place_id", "str", "场所编号", "Place ID", aliases=("place", "place_id", "场所")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#000000", fill_color="#F0E442", radius=6.0),
    description_zh="119火警与物联感知报警",
    description_en="Fire calls and IoT alarms",
    time_order=("reported_at", "arrived_at"),
    sort_by="reported_at",
    assign_to_grid=True,
    z_order=95,
)
