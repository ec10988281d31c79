"""The measured-response panel of /review and the report's section, on the hand-made district.

Read as a user sees them: the panel's real callback (its DataTables, chart, lines) and the
report's tables and summary tiles; the expected values are the hand-worked figures of
tests/geo/test_response.py.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import pytest

from dash_pages import page, shown_text
from geo import store
from geo.settings import Settings

_spec = importlib.util.spec_from_file_location(
    "response_fixture", Path(__file__).resolve().parents[1] / "geo" / "response_fixture.py")
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.build(tmp_path_factory.mktemp("review_response"))[0]


@pytest.fixture(scope="module")
def review(db: Path) -> Any:
    from dashboard.app import create_app

    create_app(Settings(), str(db), warm=False)
    return page("review")


def _panel(review: Any, by: str, lang: str, start: str = "2025-03-01", end: str = "2025-04-30") -> tuple:
    callback = getattr(review.update_response, "__wrapped__", review.update_response)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "\nThe dash_table.DataTable will be removed", DeprecationWarning)
        return callback(None, by, start, end, lang)


def test_panel_by_unit_in_chinese(review: Any) -> None:
    summary, table, graph, worst, note = _panel(review, "unit", "zh")
    assert summary == "全区 11 起警情：到场 P50 3:20，P90 6:40；到场达标率 62.5%"
    labels = [c["name"] for c in table.columns]
    assert labels[:3] == ["出动力量", "力量类型", "警情数"] and "到场 P90" in labels
    rows = {r["unit_name"]: r for r in table.data}
    assert set(rows) == {"城东消防站", "幸福微站", "和平微站"}
    wz1 = rows["幸福微站"]
    assert (wz1["kind"], wz1["calls"], wz1["total_p50"], wz1["total_p90"]) == ("微型消防站", 4, "3:00", "4:00")
    assert (wz1["turnout_met"], wz1["on_scene_met"]) == ("75.0%", "50.0%")
    assert rows["城东消防站"]["on_scene_met"] == "66.7%"
    line = {tr.name: list(tr.y) for tr in graph.figure.data}
    assert line["到场 P90"] == [290 / 60, 420 / 60]  # March, April
    assert [r["id"] for r in worst.data][:3] == ["I08", "I11", "I09"] and worst.data[0]["total"] == "7:00"
    assert "首出力量未匹配 1 起" in note and "3:00" in note and "5:00" in note


def test_panel_by_town_in_english(review: Any) -> None:
    summary, table, _graph, worst, note = _panel(review, "town", "en")
    assert summary.startswith("District, 11 calls: on scene p50 3:20, p90 6:40")
    assert [c["name"] for c in table.columns][:2] == ["Town", "Calls"]
    rows = {r["town"]: r for r in table.data}
    assert (rows["甲镇"]["total_p50"], rows["甲镇"]["total_p90"], rows["乙镇"]["on_scene_met"]) == ("4:00", "6:40", "50.0%")
    assert [c["name"] for c in worst.columns][-1] == "To scene"
    assert "nearest-rank" in note


def test_panel_follows_the_period(review: Any) -> None:
    summary, table, *_ = _panel(review, "unit", "zh", "2025-05-01", "2025-05-31")
    assert summary.startswith("全区 1 起警情") and [r["unit_name"] for r in table.data] == ["幸福微站"]


def test_panel_refuses_an_unknown_grouping(review: Any) -> None:
    from dash.exceptions import PreventUpdate

    with pytest.raises(PreventUpdate):
        _panel(review, "{{7*7}}", "zh")


def test_layout_has_the_panel_in_both_languages(review: Any) -> None:
    assert "响应时效（实测）" in shown_text(review.layout("zh"))
    assert "Measured response" in shown_text(review.layout("en"))


def test_report_section_and_tiles(db: Path) -> None:
    from dashboard.report import collect, render_html

    con = store.connect(db)
    try:
        data = collect(con, Settings(), since="2025-03-01", until="2025-05-01")
    finally:
        con.close()
    tiles = {label: value for label, value, _ in data.summary}
    assert (tiles["到场用时P90"], tiles["到场达标率"]) == ("6:40", "62.5%")
    section = next(s for s in data.sections if s.key == "response")
    tables = dict(section.tables)
    towns = tables["各街镇"].set_index("街镇")
    assert (towns.loc["甲镇", "到场P50"], towns.loc["甲镇", "到场P90"], towns.loc["乙镇", "到场达标率"]) == ("4:00", "6:40", "50.0%")
    units = tables["各首出力量"].set_index("出动力量")
    assert (units.loc["幸福微站", "出动P50"], units.loc["幸福微站", "途中P90"]) == ("0:45", "2:35")
    assert list(tables["月度趋势（最近 12 个月）"]["到场P90"]) == ["4:50", "7:00"]
    assert list(tables["到场最慢的 10 起警情"]["编号"])[:2] == ["I08", "I11"]
    assert any("未匹配" in n for n in section.notes)
    html_text = render_html(data)
    assert "响应时效（实测）" in html_text and "6:40" in html_text
