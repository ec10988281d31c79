"""``/province`` 全省视图: what the Spark job (``onemap province run``) wrote, read with DuckDB.

Districts ranked by the scorecard (with their coverage shares and a drill-down link to the
district's own dashboard where ``province_district_urls`` names one), and the province's
hot cells (Gi*, FDR-corrected). Rendered on the server; the results directory is the
setting ``province_results``. Text from the files is shown as text, never as HTML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dash
import duckdb
import pandas as pd
from dash import html

from dashboard.components import context
from dashboard.components.chrome import navbar, note, panel
from dashboard.i18n import lang_of

PAGE = "province"
PATH = "/province"
dash.register_page(__name__, path=PATH, name="全省视图", title="一图作战 · 全省视图")

HOT_ROWS = 30
TEXT: dict[str, tuple[str, str]] = {
    "title": ("全省视图：各区县考核排名", "Province view: districts ranked by the scorecard"),
    "hot": ("热点格网（Gi*，FDR 校正后显著的高值）", "Hotspot cells (Gi*, significant after FDR, hot)"),
    "none": ("尚无全省结果：运行 onemap province run --data 目录 --out 目录，并在设置 province_results 中写入该输出目录。",
             "No province results yet: run onemap province run --data DIR --out DIR and set province_results to that output directory."),
    "broken": ("全省结果无法读取：{why}", "The province results cannot be read: {why}"),
    "as_of": ("数据时点 {as_of}，{n} 个区县", "Figures as of {as_of}, {n} districts"),
    "rank": ("排名", "Rank"), "district": ("区县", "District"), "code": ("代码", "Code"),
    "discovered": ("隐患数（本年）", "Hazards (year)"), "score": ("得分", "Score"),
    "rectification_rate": ("整改率", "Rectification"), "on_time_rate": ("按期整改率", "On time"),
    "inspection_compliance": ("检查合规率", "Inspection"), "in_grid_share": ("网格内办结率", "In grid"),
    "no_recurrence_rate": ("非复发率", "No recurrence"),
    "area_share": ("建成区覆盖率", "Built-up area covered"), "places_share": ("重点场所覆盖率", "Key places covered"),
    "open": ("打开", "Open"), "dashboard": ("区县大屏", "District dashboard"),
    "cell": ("H3 格", "H3 cell"), "count": ("隐患数", "Hazards"), "z": ("z 值", "z"),
}
RATES = ("rectification_rate", "on_time_rate", "inspection_compliance", "in_grid_share", "no_recurrence_rate",
         "area_share", "places_share")


def _t(key: str, lang: str, **values: Any) -> str:
    zh, en = TEXT[key]
    return (en if lang == "en" else zh).format(**values)


def _read(root: Path, name: str) -> pd.DataFrame:
    """One result of the job as a frame (every Parquet file under ``root/name``)."""
    glob = (root / name).as_posix().replace("'", "''") + "/**/*.parquet"
    return duckdb.connect().execute(f"SELECT * FROM read_parquet('{glob}')").df()


def _ranked(root: Path) -> pd.DataFrame:
    rank = _read(root, "district_rank")
    cov = _read(root, "coverage_district")[["district", "area_share", "places_share"]]
    return rank.merge(cov, on="district", how="left").sort_values(["rank", "district"], na_position="last")


def _url(urls: dict[str, Any], code: str) -> str | None:
    """The configured dashboard URL of a district, only when it is a plain http(s) URL."""
    url = urls.get(code)
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")) and '"' not in url:
        return url
    return None


def _pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{100 * float(value):.1f}%"


def _rank_table(frame: pd.DataFrame, lang: str, urls: dict[str, Any]) -> html.Table:
    heads = ["rank", "district", "code", "discovered", *RATES, "score", "dashboard"]
    rows = []
    for r in frame.itertuples(index=False):
        url = _url(urls, str(r.district))
        link = html.A(_t("open", lang), href=url, className="om-province-link") if url else "–"
        score = "–" if pd.isna(r.score) else f"{r.score:.1f}"
        rank = "–" if pd.isna(r.rank) else str(int(r.rank))
        cells = [rank, str(r.name), str(r.district), f"{int(r.discovered):,}",
                 *(_pct(getattr(r, c)) for c in RATES), score, link]
        rows.append(html.Tr([html.Td(c) for c in cells], **{"data-district": str(r.district)}))
    return html.Table([html.Thead(html.Tr([html.Th(_t(h, lang)) for h in heads])), html.Tbody(rows)],
                      id="province-rank", className="om-province-table")


def _hot_table(root: Path, names: dict[str, str], lang: str) -> html.Table:
    hot = _read(root, "hotspots")
    hot = hot[hot["significant"] & (hot["z"] > 0)]
    hot = hot.sort_values(["z", "district", "h3"], ascending=[False, True, True]).head(HOT_ROWS)
    heads = ["district", "cell", "count", "z"]
    rows = [html.Tr([html.Td(names.get(str(r.district), str(r.district))), html.Td(str(r.h3)),
                     html.Td(f"{int(r.count):,}"), html.Td(f"{r.z:.2f}")]) for r in hot.itertuples(index=False)]
    return html.Table([html.Thead(html.Tr([html.Th(_t(h, lang)) for h in heads])), html.Tbody(rows)],
                      id="province-hot", className="om-province-table")


def _as_of(root: Path) -> str:
    job = root / "_job.parquet"
    if not job.exists():
        return "–"
    got = duckdb.connect().execute(f"SELECT as_of FROM read_parquet('{job.as_posix().replace(chr(39), chr(39) * 2)}')").fetchone()
    return str(got[0]) if got else "–"


def layout(lang: str = "zh", **_: Any) -> html.Div:
    """The province page: the ranking and the hot cells, or a note saying how to make them."""
    lang = lang_of(lang)
    settings = context.settings()
    root = Path(settings.province_results) if settings.province_results else None
    if root is None or not (root / "district_rank").is_dir():
        return html.Div([navbar(PATH, lang), note(_t("none", lang))], className="om-page", id="province-page")
    try:
        ranked = _ranked(root)
        names = dict(zip(ranked["district"].astype(str), ranked["name"].astype(str), strict=True))
        body = [
            panel(_t("title", lang), [html.P(_t("as_of", lang, as_of=_as_of(root), n=len(ranked)), className="om-small"),
                                      _rank_table(ranked, lang, settings.province_district_urls)]),
            panel(_t("hot", lang), [_hot_table(root, names, lang)]),
        ]
    except (duckdb.Error, KeyError, ValueError, OSError) as exc:
        body = [note(_t("broken", lang, why=type(exc).__name__))]
    return html.Div([navbar(PATH, lang), html.Div(body, className="om-province")], className="om-page",
                    id="province-page")
