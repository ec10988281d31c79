"""Every figure shown in more than one place has one value: /review, the wall, `onemap figures`/`onemap response
--json` and the committee report, on one demo database, for the same period.

The screens are read as a user sees them: /review's and the wall's real callback functions
(their outputs: DataTables, the trend chart, KPI tiles), the CLI's JSON, the report's summary
tiles, lead sentences and tables. Nothing is compared with a number this test computed.

Two periods:
- the **default period**, which /review and the report open with (``review_default_days`` up
  to the newest hazard): /review = report = figures;
- **everything up to now** (the wall has no period, it shows the district now): wall =
  figures (no filter) = /review from the first hazard's day = report from that day.
"""

from __future__ import annotations

import json
import re
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dashboard.cli import cli
from dash_pages import page
from dash_pages import shown_text as _text

from geo import store
from geo.settings import Settings

PERIOD_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2})\s*[–-]\s*(\d{4}-\d{2}-\d{2})")


# --------------------------------------------------------------------------- reading the screens


def _int(text: str) -> int:
    return int(str(text).replace(",", ""))


def _pct(text: str) -> float:
    assert str(text).endswith("%"), text
    return float(str(text)[:-1])


def _call(callback: Any, *args: Any) -> Any:
    """A page's callback function itself (the one Dash runs for the browser)."""
    return getattr(callback, "__wrapped__", callback)(*args)


def _table_rows(component: Any) -> list[dict[str, Any]]:
    return list(component.data)


def _review(start: str, end: str) -> dict[str, Any]:
    """What /review shows for [start, end] (its callbacks as the browser calls them)."""
    review = page("review")

    total_text = _call(review.update_total, start, end, None, None, "zh")  # (total, period)
    with warnings.catch_warnings():  # dash's own notice that DataTable moves to dash-ag-grid one day
        warnings.filterwarnings("ignore", "\nThe dash_table.DataTable will be removed", DeprecationWarning)
        graph, loop, overdue, listed, inspection, scorecard = _call(
            review.update_tables, 1.0, "town", start, end, None, None, "zh")
    figure = graph.figure
    bars = next(tr for tr in figure.data if tr.type == "bar")
    line = next(tr for tr in figure.data if tr.type == "scatter")
    flow = {str(m)[:7]: (int(d), int(c)) for m, d, c in zip(bars.x, bars.y, line.y, strict=True)}
    return {"total_text": _text(total_text), "loop": _table_rows(loop), "overdue": _table_rows(overdue),
            "listed": _table_rows(listed), "inspection": _table_rows(inspection),
            "scorecard": _table_rows(scorecard), "flow": flow}


def _figures(db: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["figures", "--db", str(db), *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _report(db: Path, since: Any = None, until: Any = None) -> Any:
    from dashboard.report import collect

    con = store.connect(db)
    try:
        return collect(con, Settings(), since=since, until=until)
    finally:
        con.close()


def _section(data: Any, key: str) -> Any:
    return next(s for s in data.sections if s.key == key)


def _lead_count(text: str, before: str) -> int:
    match = re.search(before + r"\s*([\d,]+)\s*条", text)
    assert match, (before, text)
    return _int(match.group(1))


def _sum(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(r[key]) for r in rows)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def app(demo_db: Path) -> Any:
    from dashboard.app import create_app

    return create_app(Settings(), str(demo_db), warm=False)


@pytest.fixture(scope="module")
def default_period(app: Any, demo_db: Path) -> dict[str, Any]:
    """The period /review opens with, and every screen's figures for it."""
    review = page("review")

    start, end = review.default_period()  # what the page's date picker shows (end day inclusive)
    until = (date.fromisoformat(end) + timedelta(days=1)).isoformat()
    return {
        "start": start, "end": end,
        "review": _review(start, end),
        "figures": _figures(demo_db, "--from", start, "--to", until),
        "report": _report(demo_db),  # the report's own default period
    }


@pytest.fixture(scope="module")
def up_to_now(app: Any, demo_db: Path) -> dict[str, Any]:
    """Everything up to now, on every screen (the wall's view)."""
    wall = page("wall")

    con = store.connect(demo_db)
    first, last = con.execute("SELECT min(discovered_at), max(discovered_at) FROM hazard").fetchone()
    con.close()
    assert last < datetime.now()
    start, end = first.date().isoformat(), datetime.now().date().isoformat()
    tiles = _call(wall.refresh, 0, 1.0, "zh", {}, None, None, None)[: len(wall.KPIS)]
    return {
        "wall": dict(zip([key for key, _, _ in wall.KPIS], tiles, strict=True)),
        "review": _review(start, end),
        "figures": _figures(demo_db),
        "report": _report(demo_db, since=start, until=(datetime.now().date() + timedelta(days=1)).isoformat()),
    }


# --------------------------------------------------------------------------- the default period


def test_report_and_review_open_with_the_same_period_and_both_print_it(default_period: dict) -> None:
    data = default_period["report"]
    assert (str(data.period_start), str(data.period_end)) == (default_period["start"], default_period["end"])
    # the review prints it beside its total; the report on its cover (period_start/end)
    shown = PERIOD_TEXT.search(default_period["review"]["total_text"])
    assert shown and shown.groups() == (default_period["start"], default_period["end"])
    days = (date.fromisoformat(default_period["end"]) - date.fromisoformat(default_period["start"])).days + 1
    assert days == Settings().review_default_days


def test_hazard_counts_agree_in_the_default_period(default_period: dict) -> None:
    review, figures, data = default_period["review"], default_period["figures"], default_period["report"]
    summary = {label: value for label, value, _ in data.summary}
    loop, cli_loop = review["loop"], figures["closed_loop"]
    for key, label in (("discovered", "发现隐患"), ("closed", "已结案"), ("overdue", "超期未整改"),
                       ("open_major", "重大隐患未结案"), ("listed_open", "挂牌督办未结案")):
        assert _sum(loop, key) == _sum(cli_loop, key) == _int(summary[label]), key
    assert _int(re.search(r"[\d,]+", review["total_text"]).group()) == _int(summary["发现隐患"])
    hot_lead = re.search(r"个单元、\s*([\d,]+)\s*条隐患", _section(data, "hotspots").lead)
    assert hot_lead and _int(hot_lead.group(1)) == _int(summary["发现隐患"])  # the hotspot section's count
    overdue = _int(summary["超期未整改"])
    assert _lead_count(_section(data, "overdue").lead, "仍未结案的隐患共") == overdue
    assert len(review["overdue"]) == min(overdue, 100)
    # rectification rate of the district (report) = closed / discovered of the per-town rows
    closed, discovered = _sum(cli_loop, "closed"), _sum(cli_loop, "discovered")
    assert _pct(summary["整改率"]) == pytest.approx(100 * closed / discovered, abs=0.05)


def test_supervised_list_is_the_same_on_review_and_report(default_period: dict) -> None:
    review, figures, data = default_period["review"], default_period["figures"], default_period["report"]
    summary = {label: value for label, value, _ in data.summary}
    listed_open = _sum(figures["closed_loop"], "listed_open")
    assert 0 < listed_open < 100  # the lists below show every one of them
    assert len(review["listed"]) == listed_open  # /review's list: the period's listed hazards open as it ends
    assert _int(summary["挂牌督办未结案"]) == listed_open
    assert _lead_count(_section(data, "listed").lead, "尚未结案的隐患共") == listed_open
    report_listed = _section(data, "listed").tables[0][1]
    assert list(report_listed["编号"]) == [r["id"] for r in review["listed"]][: len(report_listed)]


def test_per_town_figures_agree_in_the_default_period(default_period: dict) -> None:
    review, figures = default_period["review"], default_period["figures"]
    by_town = {r["area"]: r for r in review["loop"]}
    assert set(by_town) == {r["town"] for r in figures["closed_loop"]}
    for row in figures["closed_loop"]:
        shown = by_town[row["town"]]
        for key in ("discovered", "closed", "open", "overdue", "open_major", "listed_open", "recurring_places"):
            assert shown[key] == row[key], (row["town"], key)
        for key in ("rectification_rate", "in_grid_share"):
            assert shown[key] == pytest.approx(100 * row[key], abs=0.051), (row["town"], key)
        assert shown["median_days_to_close"] == pytest.approx(row["median_days_to_close"], abs=0.006)


def test_monthly_flow_agrees_in_the_default_period(default_period: dict) -> None:
    review, figures, data = default_period["review"], default_period["figures"], default_period["report"]
    cli_flow = {r["month"][:7]: (r["discovered"], r["closed"]) for r in figures["flow"]}
    assert review["flow"] == cli_flow
    table = _section(data, "trend").tables[0][1]
    for month, new, closed in zip(table["月份"], table["新发现"], table["结案"], strict=True):
        assert cli_flow[month] == (_int(new), _int(closed)), month


def test_inspection_and_scorecard_agree_in_the_default_period(default_period: dict) -> None:
    review, figures, data = default_period["review"], default_period["figures"], default_period["report"]
    shown = {(r["town"], r["inspection_class"]): r for r in review["inspection"]}
    assert len(shown) == len(figures["inspection"])
    for row in figures["inspection"]:
        mine = shown[(row["town"], row["inspection_class"])]
        assert (mine["places"], mine["inspected_in_interval"]) == (row["places"], row["inspected_in_interval"])
        assert mine["compliance"] == pytest.approx(100 * row["compliance"], abs=0.051)
    places, inspected = _sum(figures["inspection"], "places"), _sum(figures["inspection"], "inspected_in_interval")
    summary = {label: value for label, value, _ in data.summary}
    assert _pct(summary["排查合规率"]) == pytest.approx(100 * inspected / places, abs=0.05)
    per_town = _section(data, "inspection").tables[0][1].set_index("街镇")  # the report's per-town, per-class table
    for row in figures["inspection"]:
        assert _pct(per_town.loc[row["town"], f"{row['inspection_class']}级合规率"]) == pytest.approx(
            100 * row["compliance"], abs=0.051), (row["town"], row["inspection_class"])
    # the town ranking: same year, ranks, scores and rates on the page, the CLI and the report
    card = {r["town"]: r for r in figures["scorecard"]}
    assert {r["town"]: r["rank"] for r in review["scorecard"]} == {t: r["rank"] for t, r in card.items()}
    for r in review["scorecard"]:
        assert r["score"] == pytest.approx(card[r["town"]]["score"], abs=0.006)
    ranking = _section(data, "towns").tables[0][1]
    assert str(figures["year"]) in _section(data, "towns").lead
    for town, rank, score, rate in zip(ranking["街镇"], ranking["排名"], ranking["得分"], ranking["整改率"], strict=True):
        assert _int(rank) == card[town]["rank"]
        assert float(score) == pytest.approx(card[town]["score"], abs=0.051)
        assert _pct(rate) == pytest.approx(100 * card[town]["rectification_rate"], abs=0.051)


# --------------------------------------------------------------------------- up to now (the wall)


def test_wall_kpis_agree_with_every_screen_up_to_now(up_to_now: dict) -> None:
    wall, review, figures, data = (up_to_now[k] for k in ("wall", "review", "figures", "report"))
    summary = {label: value for label, value, _ in data.summary}
    loop, cli_loop, cli_wall = review["loop"], figures["closed_loop"], figures["wall"]
    for tile, key, field, label in (("open", "open", "open_hazards", None),
                                    ("major", "open_major", "open_major", "重大隐患未结案"),
                                    ("overdue", "overdue", "overdue", "超期未整改"),
                                    ("listed", "listed_open", "listed_open", "挂牌督办未结案")):
        shown = _int(wall[tile])
        assert shown == cli_wall[field] == _sum(cli_loop, key) == _sum(loop, key), tile
        if label:
            assert shown == _int(summary[label]), tile
    assert _int(wall["alarms"]) == cli_wall["alarms_today"]
    assert _int(wall["listed"]) == len(review["listed"]) or len(review["listed"]) == 100


def test_wall_reach_and_blind_spots_agree_with_the_report(up_to_now: dict) -> None:
    wall, data = up_to_now["wall"], up_to_now["report"]
    summary = {label: value for label, value, _ in data.summary}
    micro = next(v for k, v in summary.items() if k.startswith("微站"))
    station = next(v for k, v in summary.items() if k.startswith("消防站"))
    for tile, value in (("micro", micro), ("station", station), ("blind", summary["消火栓盲区"])):
        assert _pct(wall[tile]) == pytest.approx(_pct(value), abs=0.5), tile  # 0 and 1 decimals


# --------------------------------------------------------------------------- labels from the settings


@pytest.mark.parametrize(("lang", "micro", "station", "fixed"), [
    ("zh", "微站4分钟覆盖", "消防站6分钟覆盖", ("3分钟", "5分钟")),
    ("en", "Micro station 4-min reach", "Fire station 6-min reach", ("3-min", "5-min")),
])
def test_wall_reach_labels_name_the_configured_minutes(app: Any, demo_db: Path, lang: str, micro: str,
                                                       station: str, fixed: tuple[str, str]) -> None:
    from dashboard.components import context
    wall = page("wall")

    context.configure(Settings(micro_station_minutes=4, fire_station_minutes=6), str(demo_db))
    try:
        shown = _text(wall.layout(lang))
    finally:
        context.configure(Settings(), str(demo_db))
    assert micro in shown and station in shown
    assert not any(f in shown for f in fixed)


# --------------------------------------------------------------------------- measured response (geo.response)


def _response_cli(db: Path, by: str, start: str, end: str) -> dict[str, Any]:
    until = (date.fromisoformat(end) + timedelta(days=1)).isoformat()
    result = CliRunner().invoke(cli, ["response", "--db", str(db), "--by", by, "--from", start, "--to", until, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture(scope="module")
def response_screens(default_period: dict, demo_db: Path) -> dict[str, Any]:
    """The measured-response figures of the default period on /review's panel, the CLI and the report."""
    review = page("review")
    start, end = default_period["start"], default_period["end"]
    panel = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "\nThe dash_table.DataTable will be removed", DeprecationWarning)
        for by in ("unit", "town"):
            summary, table, graph, worst, _note = _call(review.update_response, None, by, start, end, "zh")
            panel[by] = {"summary": summary, "rows": _table_rows(table), "worst": _table_rows(worst),
                         "trend": {str(m)[:7]: y for m, y in zip(graph.figure.data[1].x, graph.figure.data[1].y,
                                                                 strict=True)} if graph.figure.data else {}}
    return {"review": panel, "cli": {by: _response_cli(demo_db, by, start, end) for by in ("unit", "town")},
            "report": _section(default_period["report"], "response")}


def _mmss(seconds: Any) -> str:
    from geo.response import mmss

    return mmss(seconds)


def _share(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def test_response_district_figures_agree(response_screens: dict, default_period: dict) -> None:
    cli_d = response_screens["cli"]["town"]["district"]
    assert cli_d["calls"] > 0  # the demo has calls in its default period
    assert response_screens["cli"]["unit"]["district"] == cli_d
    expected = (f"全区 {cli_d['calls']:,} 起警情：到场 P50 {_mmss(cli_d['total_p50_s'])}，P90 {_mmss(cli_d['total_p90_s'])}；"
                f"到场达标率 {_share(cli_d['on_scene_met_share'])}")
    assert response_screens["review"]["unit"]["summary"] == response_screens["review"]["town"]["summary"] == expected
    summary = {label: value for label, value, _ in default_period["report"].summary}
    assert summary["到场用时P90"] == _mmss(cli_d["total_p90_s"])
    assert summary["到场达标率"] == _share(cli_d["on_scene_met_share"])
    district = dict(response_screens["report"].tables)["全区"].iloc[0]
    assert _int(district["警情数"]) == cli_d["calls"]
    for m, zh in (("turnout", "出动"), ("travel", "途中"), ("total", "到场")):
        for p in (50, 90):
            assert district[f"{zh}P{p}"] == _mmss(cli_d[f"{m}_p{p}_s"]), (m, p)


def test_response_per_town_and_unit_figures_agree(response_screens: dict) -> None:
    tables = dict(response_screens["report"].tables)
    assert response_screens["cli"]["unit"]["rows"] and response_screens["cli"]["town"]["rows"]  # the demo names units
    for by, key, report_table, report_key in (("town", "town", "各街镇", "街镇"), ("unit", "unit_name", "各首出力量", "出动力量")):
        cli_rows = response_screens["cli"][by]["rows"]
        shown = {r[key]: r for r in response_screens["review"][by]["rows"]}
        assert len(shown) == len(cli_rows), by
        report = tables[report_table].set_index(report_key) if cli_rows else None
        for row in cli_rows:
            name = row["town"] if by == "town" else (row["unit_name"] or row["unit_id"])
            mine = shown[name]
            assert mine["calls"] == row["calls"] == _int(report.loc[name, "警情数"]), (by, name)
            for m, zh in (("turnout", "出动"), ("travel", "途中"), ("total", "到场")):
                for p in (50, 90):
                    text = _mmss(row[f"{m}_p{p}_s"])
                    assert mine[f"{m}_p{p}"] == text == report.loc[name, f"{zh}P{p}"], (by, name, m, p)
            assert mine["on_scene_met"] == _share(row["on_scene_met_share"]) == report.loc[name, "到场达标率"]
            assert mine["turnout_met"] == _share(row["turnout_met_share"]) == report.loc[name, "出动达标率"]


def test_response_trend_and_worst_calls_agree(response_screens: dict) -> None:
    cli = response_screens["cli"]["town"]
    tables = dict(response_screens["report"].tables)
    trend = {r["month"][:7]: r for r in cli["trend"]}
    assert response_screens["review"]["town"]["trend"] == {m: r["total_p90_s"] / 60 for m, r in trend.items()}
    report_trend = tables["月度趋势（最近 12 个月）"]
    for month, p90 in zip(report_trend["月份"], report_trend["到场P90"], strict=True):
        assert p90 == _mmss(trend[month]["total_p90_s"]), month
    worst_ids = [w["id"] for w in cli["worst"]]
    assert [w["id"] for w in response_screens["review"]["town"]["worst"]] == worst_ids
    assert list(tables[f"到场最慢的 {len(worst_ids)} 起警情"]["编号"]) == worst_ids
