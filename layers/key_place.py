"""Key places (重点场所) with their inspection class (三级网格化排查, seed 000)."""

from layers.base import LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

CATEGORIES = (
    "住宅小区", "自建出租房", "沿街商铺", "九小场所", "三合一场所", "高层建筑", "厂房仓库",
    "建筑工地", "地下空间", "文物古建筑", "养老机构", "学校", "医院", "商场市场", "宾馆民宿",
    "易燃易爆场所", "规模租赁公寓", "其他",
)

SPEC = LayerSpec(
    name="key_place",
    zh="重点场所",
    en="Key places",
    geometry="point",
    fields=(
        own_id("场所编号", "单位编号", "场所编码"),
        NAME,
        Field("category", "str", "场所类别", "Category", required=True, choices=CATEGORIES,
              aliases=("category", "type", "类别", "场所类型", "行业类别")),
        Field("inspection_class", "int", "排查等级", "Inspection class", required=True, choices=("1", "2", "3"),
              aliases=("inspection_class", "class", "等级", "网格等级", "排查级别", "级别"),
              help="1: committee staff monthly; 2: town patrol quarterly; 3: fire office half-yearly (seed 000).",
              value_aliases=tuple(
                  (f"{word}{unit}", str(level))
                  for level, words in ((1, ("一", "1", "Ⅰ", "I")), (2, ("二", "2", "Ⅱ", "II")), (3, ("三", "3", "Ⅲ", "III")))
                  for word in words
                  for unit in ("级", "类", "级网格", "类场所")
              )),
        Field("last_inspection", "date", "最近检查", "Last inspection",
              aliases=("last_inspection", "inspected", "检查日期", "最近检查日期", "最近排查日期")),
        Field("risk_level", "str", "风险等级", "Risk level", choices=("低", "中", "高"), aliases=("risk", "risk_level", "风险"),
              value_aliases=(("低风险", "低"), ("中风险", "中"), ("高风险", "高"))),
        # Pre-plan (预案) fields the dispatch picture shows for the place at a call.
        Field("storeys", "int", "层数", "Storeys", aliases=("storeys", "floors", "楼层数", "地上层数", "建筑层数")),
        Field("occupants", "int", "人员数量", "Occupants",
              aliases=("occupants", "容纳人数", "常住人数", "在场人数", "人员规模")),
        Field("hazmat", "str", "危险化学品", "Hazardous materials",
              aliases=("hazmat", "危化品", "危险品", "储存危险品", "危险物品")),
        Field("contact", "str", "负责人", "Contact", aliases=("contact", "联系人", "消防安全责任人"), personal=True),
        Field("phone", "str", "联系电话", "Phone", aliases=("phone", "tel", "电话"), personal=True),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#CC79A7", radius=5.0, color_by="inspection_class",
                colors={"1": "#56B4E9", "2": "#CC79A7", "3": "#D55E00"}),
    description_zh="一级：居村委每月；二级：街镇巡查每季度；三级：消防办每半年",
    description_en="Class 1 monthly by committees, 2 quarterly by town patrol, 3 half-yearly by the fire office",
    assign_to_grid=True,
    z_order=65,
)
