"""Administrative areas: district / town (街镇) / community (居村委) polygons."""

from layers.base import ID, NAME, Field, LayerSpec, Style

SPEC = LayerSpec(
    name="admin_area",
    zh="行政区划",
    en="Administrative areas",
    geometry="polygon",
    fields=(
        ID,
        NAME,
        Field("level", "str", "层级", "Level", required=True, choices=("区县", "街镇", "社区"),
              aliases=("level", "级别", "类型")),
        Field("parent_id", "str", "上级编号", "Parent ID", aliases=("parent", "parent_id", "上级", "所属")),
        Field("adcode", "str", "行政区划代码", "Admin code",
              aliases=("adcode", "区划代码", "街镇代码", "区县代码", "社区代码", "代码"),
              help="Also the area's id when the file has no 编号 column."),
        Field("population", "int", "人口", "Population", aliases=("population", "pop", "常住人口")),
    ),
    style=Style(color="#444444", fill_opacity=0.0, weight=2.0, dash_array="6 4"),
    description_zh="区县、街镇、居村委边界",
    description_en="District, town and community boundaries",
    z_order=10,
    id_from="adcode",
)
