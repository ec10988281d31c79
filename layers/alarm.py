"""IoT alarms (物联感知报警) and the devices that raise them (物联设备, with their heartbeats).

An alarm is one event from a sensor platform: which device, what kind of device, how
serious, when, where, and whether an operator has acknowledged (确认) or closed (关闭) it.
A device row carries its kind and place and the time of its last heartbeat (心跳); a device
silent longer than ``Settings.device_offline_after_s`` counts offline (``geo.devices``).
Heartbeats arrive as partial updates of ``device`` (an id and ``last_seen_at``) through the
feed API, so a platform that only sends heartbeats never re-sends a device's place.
"""

from layers.base import LOCATION, REMARK, Field, LayerSpec, Style, own_id

KINDS = ("烟感", "电动自行车充电桩", "电气火灾监控", "火灾自动报警联网", "消防水压")
"""Device kinds of the 一网统管 IoT scenarios: smoke detector, e-bike charging pile, electrical
fire monitoring (GB 14287), fire-alarm interconnection (GB 26875 remote monitoring), water pressure."""
KIND_SPELLINGS = (
    ("独立式烟感", "烟感"), ("烟感探测器", "烟感"), ("独立式感烟火灾探测报警器", "烟感"), ("smoke", "烟感"),
    ("充电桩", "电动自行车充电桩"), ("电动车充电桩", "电动自行车充电桩"), ("智能充电桩", "电动自行车充电桩"),
    ("charging", "电动自行车充电桩"),
    ("电气火灾", "电气火灾监控"), ("电气火灾监控系统", "电气火灾监控"), ("electrical", "电气火灾监控"),
    ("火灾报警联网", "火灾自动报警联网"), ("火灾自动报警系统", "火灾自动报警联网"), ("fire_alarm", "火灾自动报警联网"),
    ("水压", "消防水压"), ("消防水压监测", "消防水压"), ("water_pressure", "消防水压"),
)
LEVELS = ("火警", "预警", "故障")  # a fire signal, an early warning (over-temperature, leakage current), a fault
STATUSES = ("未确认", "已确认", "已关闭")
OPEN_STATUSES = STATUSES[:2]

_KIND = dict(name="kind", type="str", zh="设备类型", en="Device kind", required=True, choices=KINDS,
             value_aliases=KIND_SPELLINGS)

SPEC = LayerSpec(
    name="alarm",
    zh="物联报警",
    en="IoT alarms",
    geometry="point",
    fields=(
        own_id("报警编号", "告警编号", "报警单号", "告警ID"),
        Field("device_id", "str", "设备编号", "Device ID", required=True,
              aliases=("device", "device_id", "设备ID", "设备编码", "终端编号", "传感器编号", "设备号")),
        Field(**_KIND, aliases=("kind", "device_type", "设备类别", "感知类型", "设备种类")),
        Field("level", "str", "报警级别", "Level", choices=LEVELS,
              value_aliases=(("火灾报警", "火警"), ("fire", "火警"), ("warning", "预警"), ("fault", "故障")),
              aliases=("level", "alarm_level", "告警级别", "级别", "报警类型", "告警类型")),
        Field("alarm_at", "datetime", "报警时间", "Alarm time", required=True,
              aliases=("time", "alarm_at", "alarm_time", "reported_at", "告警时间", "发生时间", "时间")),
        Field("status", "str", "处理状态", "Status", choices=STATUSES,
              value_aliases=(("待确认", "未确认"), ("确认", "已确认"), ("关闭", "已关闭"), ("已处理", "已关闭"),
                             ("new", "未确认"), ("acknowledged", "已确认"), ("closed", "已关闭")),
              aliases=("status", "state", "状态", "确认状态")),
        Field("acknowledged_at", "datetime", "确认时间", "Acknowledged",
              aliases=("acknowledged", "acknowledged_at", "ack_at", "确认时刻")),
        Field("closed_at", "datetime", "关闭时间", "Closed", aliases=("closed", "closed_at", "处理完毕时间", "关闭时刻")),
        Field("place_id", "str", "场所编号", "Place ID", aliases=("place", "place_id", "场所", "单位编号")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#000000", fill_color="#D55E00", radius=6.0, color_by="level",
                colors={"火警": "#D55E00", "预警": "#E69F00", "故障": "#999999"}),
    description_zh="烟感、充电桩、电气火灾、火灾报警联网、消防水压等物联感知报警",
    description_en="Smoke detectors, e-bike charging piles, electrical fire, fire-alarm interconnection, water pressure",
    time_order=("alarm_at", "acknowledged_at", "closed_at"),
    sort_by="alarm_at",
    assign_to_grid=True,
    z_order=96,
)

DEVICE_SPEC = LayerSpec(
    name="device",
    zh="物联设备",
    en="IoT devices",
    geometry="point",
    fields=(
        own_id("设备编号", "设备编码", "终端编号", "设备ID"),
        Field(**_KIND, aliases=("kind", "device_type", "设备类别", "感知类型", "设备种类", "类型")),
        Field("name", "str", "设备名称", "Name", aliases=("name", "名称", "设备名")),
        Field("last_seen_at", "datetime", "最后心跳时间", "Last heartbeat",
              aliases=("last_seen", "last_seen_at", "heartbeat", "heartbeat_at", "心跳时间", "最近心跳",
                       "最后在线时间", "最后通讯时间")),
        Field("place_id", "str", "场所编号", "Place ID", aliases=("place", "place_id", "场所", "单位编号")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#0072B2", fill_color="#56B4E9", radius=3.0),
    description_zh="物联感知设备及其心跳",
    description_en="IoT sensing devices and their heartbeats",
    sort_by="last_seen_at",
    assign_to_grid=True,
    z_order=60,
)
