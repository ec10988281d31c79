"""People who need help to escape a fire (老弱病残 特殊群体, seeds 001 and 003: 敲门行动).

Grid workers keep a list of elderly people living alone, disabled and bedridden residents
and left-behind children for the "knock on the door" visits; at a call the dispatch
picture counts those near the address and lists them for the roles that may see names.
"""

from dataclasses import replace

from layers.base import ADDRESS, LOCATION, NAME, REMARK, Field, LayerSpec, Style, own_id

CATEGORIES = ("独居老人", "空巢老人", "孤寡老人", "残疾人", "卧床病人", "留守儿童", "其他")

SPEC = LayerSpec(
    name="vulnerable_person",
    zh="特殊群体",
    en="Vulnerable residents",
    geometry="point",
    fields=(
        own_id("人员编号", "关爱对象编号", "登记编号"),
        replace(NAME, zh="姓名", aliases=("name", "姓名", "名字"), personal=True),
        Field("category", "str", "类别", "Category", required=True, choices=CATEGORIES,
              aliases=("category", "type", "人员类别", "群体类别", "关爱类别"),
              value_aliases=(("独居", "独居老人"), ("空巢", "空巢老人"), ("孤寡", "孤寡老人"),
                             ("残障", "残疾人"), ("残疾", "残疾人"), ("失能", "卧床病人"), ("卧床", "卧床病人"))),
        Field("risk_level", "str", "风险等级", "Risk level", choices=("低", "中", "高"),
              aliases=("risk", "risk_level", "风险", "关爱等级"),
              value_aliases=(("低风险", "低"), ("中风险", "中"), ("高风险", "高"))),
        Field("mobility", "str", "行动能力", "Mobility", choices=("自理", "需协助", "不能行动"),
              aliases=("mobility", "行动状况", "自理能力"),
              value_aliases=(("能自理", "自理"), ("半自理", "需协助"), ("不能自理", "不能行动"))),
        Field("age", "int", "年龄", "Age", aliases=("age", "岁数")),
        Field("phone", "str", "联系电话", "Phone", aliases=("phone", "tel", "电话"), personal=True),
        Field("carer", "str", "联系人", "Carer",
              aliases=("carer", "guardian", "监护人", "紧急联系人", "帮扶人"), personal=True),
        Field("last_visit", "date", "最近走访", "Last visit",
              aliases=("last_visit", "visited", "走访日期", "最近走访日期", "上门日期")),
        # a vulnerable resident's home address is personal (where someone who cannot escape lives)
        *(replace(f, personal=True) if f is ADDRESS else f for f in LOCATION),
        REMARK,
    ),
    style=Style(color="#000000", fill_color="#009E73", radius=4.0),
    description_zh="老弱病残等特殊群体（敲门行动），警情附近逐一提示",
    description_en="Elderly living alone, disabled and bedridden residents (door-knocking visits)",
    assign_to_grid=True,
    z_order=62,
)
