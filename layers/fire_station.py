"""Fire stations: national rescue stations, government / township / enterprise brigades."""

from layers.base import DUTY_STATUS, LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

SPEC = LayerSpec(
    name="fire_station",
    zh="消防站",
    en="Fire stations",
    geometry="point",
    fields=(
        own_id("消防站编号", "队站编号", "站点编号", "消防站编码"),
        NAME,
        Field("kind", "str", "类型", "Kind",
              choices=("消防救援站", "政府专职消防队", "乡镇消防队", "企业专职消防队"),
              aliases=("kind", "type", "队站类型", "类别")),
        Field("station_class", "str", "站级", "Station class", choices=("一级", "二级", "小型", "特勤", "郊区"),
              aliases=("class", "station_class", "等级", "级别")),
        Field("staff", "int", "人员", "Staff", aliases=("staff", "人数", "编制人数")),
        Field("vehicles", "int", "车辆", "Vehicles", aliases=("vehicles", "车辆数", "消防车")),
        Field("status", "str", "状态", "Status", choices=("在役", "在建", "规划"), aliases=("status", "state")),
        DUTY_STATUS,
        Field("phone", "str", "联系电话", "Phone", aliases=("phone", "tel", "电话")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#D55E00", radius=9.0),
    description_zh="接到出动指令后5分钟到达辖区边缘 (建标152-2017)",
    description_en="Reach the edge of the area within 5 min of the order (建标152-2017)",
    assign_to_grid=True,
    z_order=80,
)
