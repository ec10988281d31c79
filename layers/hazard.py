"""Fire hazards (火灾隐患) and their closed loop (闭环处置)."""

from layers.base import LOCATION, REMARK, Field, LayerSpec, Style, own_id

STATUSES = ("发现", "立案", "派遣", "处置", "核查", "结案")
# The hazard vocabulary: every module that asks "closed?", "listed?", "major?" uses these names.
CLOSED_STATUS = STATUSES[-1]  # 结案: the last step of the closed loop
OPEN_STATUSES = STATUSES[:-1]  # a status before 结案 (a hazard is open as of T unless closed by T: geo.governance)
SEVERITIES = ("一般", "重大")
GENERAL_SEVERITY, MAJOR_SEVERITY = SEVERITIES
SUPERVISION_LEVELS = ("无", "街镇挂牌", "区级挂牌")
LISTED_LEVELS = ("区级挂牌", "街镇挂牌")  # listed for supervision (挂牌督办), district level first
HANDLED_IN_GRID = "网格"  # 一般隐患不出网格: a general hazard closed at grid level
CATEGORIES = (
    "电动自行车违规停放充电", "堵塞占用生命通道", "违规住人", "易燃可燃物堆放", "违规使用液化气",
    "消防设施损坏", "消防设施遮挡", "违规动火作业", "电气线路私拉乱接", "安全出口锁闭", "其他",
)

SPEC = LayerSpec(
    name="hazard",
    zh="火灾隐患",
    en="Hazards",
    geometry="point",
    fields=(
        own_id("隐患编号", "隐患编码", "隐患单号"),
        Field("category", "str", "隐患类别", "Category", required=True, choices=CATEGORIES,
              aliases=("category", "type", "类别", "隐患类型", "问题类型")),
        Field("severity", "str", "隐患等级", "Severity", required=True, choices=SEVERITIES,
              aliases=("severity", "level", "等级", "隐患级别")),
        Field("status", "str", "状态", "Status", required=True, choices=STATUSES,
              aliases=("status", "state", "处置状态", "办理状态", "流程状态")),
        Field("source", "str", "来源", "Source",
              choices=("网格巡查", "委员会巡查", "城运巡查", "12345热线", "物联感知", "其他"),
              aliases=("source", "发现来源", "渠道", "问题来源")),
        Field("supervision", "str", "挂牌督办", "Listed for supervision", choices=SUPERVISION_LEVELS,
              aliases=("supervision", "督办", "督办级别", "挂牌")),
        Field("handled_by", "str", "处置层级", "Handled at", choices=("网格", "社区", "街镇", "区"),
              aliases=("handled_by", "处置主体", "承办层级")),
        Field("on_spot", "bool", "当场整改", "Rectified on the spot", aliases=("on_spot", "当场整改", "立即整改")),
        Field("discovered_at", "datetime", "发现时间", "Discovered", required=True,
              aliases=("discovered", "discovered_at", "发现日期", "上报时间", "时间", "日期")),
        Field("filed_at", "datetime", "立案时间", "Filed", aliases=("filed", "filed_at", "立案日期")),
        Field("dispatched_at", "datetime", "派遣时间", "Dispatched", aliases=("dispatched", "dispatched_at", "派遣日期")),
        Field("handled_at", "datetime", "处置时间", "Handled", aliases=("handled", "handled_at", "处置日期")),
        Field("verified_at", "datetime", "核查时间", "Verified", aliases=("verified", "verified_at", "核查日期")),
        Field("closed_at", "datetime", "结案时间", "Closed", aliases=("closed", "closed_at", "结案日期", "办结时间")),
        Field("deadline", "date", "整改期限", "Deadline", aliases=("deadline", "期限", "整改时限", "限期")),
        Field("place_id", "str", "场所编号", "Place ID", aliases=("place", "place_id", "场所", "所属场所编号")),
        Field("description", "str", "隐患描述", "Description", aliases=("description", "desc", "描述", "问题描述", "内容")),
        *LOCATION,
        REMARK,
    ),
    style=Style(color="#E69F00", radius=4.0, color_by="severity",
                colors={GENERAL_SEVERITY: "#E69F00", MAJOR_SEVERITY: "#D55E00"}),
    description_zh="发现→立案→派遣→处置→核查→结案；一般隐患不出网格",
    description_en="Discovered → filed → dispatched → handling → verified → closed",
    time_order=("discovered_at", "filed_at", "dispatched_at", "handled_at", "verified_at", "closed_at"),
    sort_by="discovered_at",
    assign_to_grid=True,
    z_order=90,
)
