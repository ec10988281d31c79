"""Incidents and alarms (警情): fire calls and IoT alarms with measured response times."""

from layers.base import LOCATION, REMARK, Field, LayerSpec, Style, own_id

STATUSES = ("待处置", "处置中", "已处置", "误报")
OPEN_STATUSES = STATUSES[:2]  # 待处置 / 处置中: the call is still being handled (its units are busy)
CLOSED_STATUSES = STATUSES[2:]  # 已处置 / 误报

SPEC = LayerSpec(
    name="incident",
    zh="警情",
    en="Incidents",
    geometry="point",
    fields=(
        own_id("警情编号", "接警编号", "警情编码", "接警单号"),
        Field("kind", "str", "警情类型", "Kind", required=True,
              choices=("火灾", "烟感报警", "电动车充电报警", "电气火灾监测", "燃气泄漏", "抢险救援", "社会救助", "其他"),
              aliases=("kind", "type", "类型", "警情类别", "报警类型")),
        Field("source", "str", "来源", "Source", choices=("119接警", "物联感知", "12345热线", "其他"),
              aliases=("source", "来源", "渠道")),
        Field("reported_at", "datetime", "接警时间", "Call received", required=True,
              aliases=("reported", "reported_at", "received_at", "time", "报警时间", "接警时间", "受理时间", "时间")),
        Field("dispatched_at", "datetime", "出动时间", "Rolling",
              aliases=("dispatched", "dispatched_at", "rolling_at", "出车时间", "出警时间", "出动时刻")),
        Field("arrived_at", "datetime", "到场时间", "First arrival",
              aliases=("arrived", "arrived_at", "first_arrival", "首车到场时间", "到达时间")),
        Field("cleared_at", "datetime", "处置完毕时间", "Cleared",
              aliases=("cleared", "cleared_at", "处置完毕", "处置结束时间", "结束时间", "完毕时间")),
        Field("units", "str", "出动力量", "Units",
              aliases=("units", "unit", "responding_units", "出动单位", "出动队站", "出动力量名称"),
              help="One or several responding units, separated by ; or 、 (also ，,/): "
                   "station or micro-station ids or names."),
        Field("response_s", "float", "响应时长(秒)", "Response (s)", aliases=("response", "response_s", "响应时间", "到场用时"),
              help="Call to first arrival in seconds, for files without the times; the times win when present."),
        Field("status", "str", "状态", "Status", choices=STATUSES, aliases=("status", "state")),
        Field("place_id", "str", "场所编号", "Place ID", aliases=("place", "place_id", "场所")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#000000", fill_color="#F0E442", radius=6.0),
    description_zh="119火警与物联感知报警",
    description_en="Fire calls and IoT alarms",
    time_order=("reported_at", "dispatched_at", "arrived_at", "cleared_at"),
    limit_intervals=True,
    duration_fields=("response_s",),
    sort_by="reported_at",
    assign_to_grid=True,
    z_order=95,
)
