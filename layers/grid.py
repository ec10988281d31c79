"""Grids (网格): the smallest management polygon, each with a grid worker."""

from layers.base import COMMUNITY, NAME, TOWN, Field, LayerSpec, Style, own_id

# A grid's own id: grid registers head it 网格编号 / 网格编码 (other layers' 网格编号 is grid_id).
GRID_OWN_ID = own_id("网格编号", "网格编码", "网格号", "grid_id", "grid_code")

SPEC = LayerSpec(
    name="grid",
    zh="网格",
    en="Grids",
    geometry="polygon",
    fields=(
        GRID_OWN_ID,
        NAME,
        TOWN,
        COMMUNITY,
        Field("grid_worker", "str", "网格员", "Grid worker", aliases=("worker", "grid_worker", "网格长", "负责人"), personal=True),
        Field("phone", "str", "联系电话", "Phone", aliases=("phone", "tel", "电话", "手机"), personal=True),
        Field("population", "int", "人口", "Population", aliases=("population", "pop", "常住人口")),
        Field("built_up", "bool", "建成区", "Built-up", aliases=("built_up", "urban", "是否建成区")),
    ),
    style=Style(color="#56B4E9", fill_opacity=0.05, weight=1.0),
    description_zh="网格化管理的最小单元",
    description_en="Smallest management polygon with a grid worker",
    z_order=20,
)
