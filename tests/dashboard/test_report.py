"""The committee report: HTML and PDF on the demo database, checked against the database itself."""

from __future__ import annotations

import json
import os
import sys
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboard.cli import main
from dashboard.report import build_report, collect, html_to_pdf, render_html
from dashboard.report.data import ReportData, Section
from dashboard.report.render import cjk_font_file
from geo import store
from geo.errors import ConfigError, ValidationError
from geo.settings import Settings

HEADINGS = ("消防安全形势分析报告", "总体情况", "隐患热点分布", "响应覆盖与消火栓盲区", "月度趋势",
            "街镇考核排名", "超期隐患", "挂牌督办事项", "三级网格化排查合规")


# SQL: a hazard discovered by as_of and not closed as of then (two parameters: as_of, as_of).
OPEN_AS_OF = ("discovered_at <= ? AND NOT ((closed_at IS NOT NULL AND closed_at <= ?)"
              " OR (closed_at IS NULL AND status = '结案'))")


@pytest.fixture(scope="module")
def built(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The report gathered once, written as HTML and printed to PDF."""
    out = tmp_path_factory.mktemp("report")
    con = store.connect(demo_db)
    data = collect(con, Settings())
    con.close()
    html_text = render_html(data)
    html_path = out / "report.html"
    html_path.write_text(html_text, encoding="utf-8")
    pdf_path = html_to_pdf(html_text, out / "report.pdf")
    return {"data": data, "html": html_text, "pdf": pdf_path, "dir": out}


def _pdftotext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_pdf_pages_headings_and_figures_match_the_database(built: dict, demo_db: Path) -> None:
    pdf: Path = built["pdf"]
    info = subprocess.run(["pdfinfo", str(pdf)], check=True, capture_output=True, text=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    size = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
    assert 6 <= pages <= 24
    assert abs(float(size.group(1)) - 595.3) < 2 and abs(float(size.group(2)) - 841.9) < 2  # A4
    text = _pdftotext(pdf)
    flat = re.sub(r"\s+", "", text)
    for heading in HEADINGS:
        assert heading in flat, heading
    # Figures computed here, straight from the database, for the default period: the
    # review_default_days days up to the newest hazard's day, taken as the period ends (now
    # when that is later).
    con = store.connect(demo_db)
    last = con.execute("SELECT max(discovered_at) FROM hazard").fetchone()[0]
    end = datetime.combine(last.date() + timedelta(days=1), datetime.min.time())
    start = end - timedelta(days=Settings().review_default_days)
    as_of = min(end, datetime.now())
    period = [start, end]
    in_period = "discovered_at >= ? AND discovered_at < ?"
    open_sql = f"{in_period} AND {OPEN_AS_OF}"
    total = con.execute(f"SELECT count(*) FROM hazard WHERE {in_period}", period).fetchone()[0]
    listed = con.execute(f"SELECT count(*) FROM hazard WHERE supervision IN ('街镇挂牌', '区级挂牌') AND {open_sql}",
                         [*period, as_of, as_of]).fetchone()[0]
    days = Settings().hazard_deadline_days
    overdue = con.execute(
        f"SELECT count(*) FROM hazard WHERE {open_sql} AND COALESCE(deadline, CAST(discovered_at + "
        "to_days(CAST(CASE severity WHEN '重大' THEN ? ELSE ? END AS INTEGER)) AS DATE)) < CAST(? AS DATE)",
        [*period, as_of, as_of, days["重大"], days["一般"], as_of]).fetchone()[0]
    open_major = con.execute(f"SELECT count(*) FROM hazard WHERE severity = '重大' AND {open_sql}",
                             [*period, as_of, as_of]).fetchone()[0]
    towns = con.execute("SELECT DISTINCT town FROM hazard WHERE town IS NOT NULL").df()["town"].tolist()
    district = con.execute("SELECT name FROM admin_area WHERE level = '区县'").fetchone()[0]
    con.close()
    assert total > 1000 and listed > 0
    data = built["data"]
    assert (data.period_start, data.period_end) == (start.date(), last.date())  # printed on the cover
    assert f"{start:%Y年%m月%d日}—{last:%Y年%m月%d日}" in flat
    summary = dict((k, v) for k, v, _ in data.summary)
    assert summary["发现隐患"] == f"{total:,}"
    assert summary["挂牌督办未结案"] == f"{listed:,}"
    assert summary["超期未整改"] == f"{overdue:,}"
    assert summary["重大隐患未结案"] == f"{open_major:,}"
    # The printed text carries the same figures (KPI tiles and the sections' lead sentences).
    assert f"发现隐患{total:,}" in flat
    assert f"{total:,}条隐患" in flat  # hotspot section: hazards in the study area
    assert f"已过整改期限仍未结案的隐患共{overdue:,}条" in flat
    assert f"区级挂牌、街镇挂牌且尚未结案的隐患共{listed:,}条" in flat
    assert district in flat
    assert sum(t in flat for t in towns) == len(towns)  # every town appears in the ranking
    # Coverage shares are percentages, and the coverage targets come from the settings.
    assert re.fullmatch(r"\d{1,3}\.\d%", summary["综合覆盖"])
    assert "微站3分钟覆盖" in summary and "消防站5分钟覆盖" in summary


def test_pdf_uses_cjk_fonts_and_page_one_is_kept(built: dict, artifacts_dir: Path) -> None:
    pdf: Path = built["pdf"]
    # Chromium prints with the font fontconfig resolves for the template's first family: Noto Sans CJK.
    assert "NotoSansCJK" in cjk_font_file().replace("-", "")
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    assert fonts.count("yes") >= 3  # fonts are embedded
    assert "\ufffd" not in _pdftotext(pdf)  # no replacement characters
    (artifacts_dir / "report.pdf").write_bytes(pdf.read_bytes())
    prefix = artifacts_dir / "report_page"
    for page in (1, 2, 3):
        subprocess.run(["pdftoppm", "-f", str(page), "-l", str(page), "-r", "80", "-png", "-singlefile",
                        str(pdf), f"{prefix}{page}"], check=True)
    from PIL import Image

    with Image.open(f"{prefix}1.png") as im:
        w, h = im.size
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert abs(h / w - 297 / 210) < 0.02  # portrait A4
    assert pixels.std() > 5  # not a blank page
    with Image.open(f"{prefix}3.png") as im:
        colours = np.asarray(im.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours // 32, axis=0)) > 20  # the hotspot map is drawn in colour


def test_html_is_one_self_contained_file(built: dict) -> None:
    html_text: str = built["html"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html_text)
    images = re.findall(r'<img src="([^"]+)"', html_text)
    assert len(images) >= 4 and all(src.startswith("data:image/png;base64,") for src in images)
    for heading in HEADINGS:
        assert heading in html_text


def test_user_text_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    data = ReportData(
        district=f"{evil}区", town="<b>镇</b>", period_start=None, period_end=None,
        as_of=datetime(2025, 1, 1), generated=datetime(2025, 1, 2),
        summary=[("发现隐患", "1", evil)],
        sections=[Section("overdue", "超期隐患", lead=evil,
                          tables=[("清单", pd.DataFrame({"街镇": ["<b>镇</b>"], "描述": [evil]}))])],
        settings=Settings(),
    )
    text = render_html(data)
    assert evil not in text and "<b>镇</b>" not in text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text


def test_town_and_period_report_from_the_cli(demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    con = store.connect(demo_db)
    town = con.execute("SELECT town FROM hazard GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchone()[0]
    first, last = con.execute("SELECT min(discovered_at), max(discovered_at) FROM hazard").fetchone()
    since = (first + (last - first) / 2).date()
    until = last.date()
    n = con.execute("SELECT count(*) FROM hazard WHERE town = ? AND discovered_at >= ? AND discovered_at < ?",
                    [town, since, until]).fetchone()[0]
    con.close()
    out = tmp_path / "town.html"
    main(["report", "--db", str(demo_db), "--out", str(out), "--town", town, "--since", str(since),
          "--until", str(until), "--json"])
    result = json.loads(capsys.readouterr().out)
    summary = {row["label"]: row["value"] for row in result["summary"]}
    assert summary["发现隐患"] == f"{n:,}"
    assert result["town"] == town and result["period"] == [str(since), str(until - timedelta(days=1))]
    text = out.read_text(encoding="utf-8")
    assert f"{town}" in text and 'class="mark"' in text  # the town's row is marked in the ranking


def test_bad_requests_are_clear(demo_db: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\.html or \.pdf"):
        build_report(tmp_path / "r.docx", demo_db)
    with pytest.raises(ValidationError, match="town '不存在镇'"):
        build_report(tmp_path / "r.html", demo_db, town="不存在镇")
    with pytest.raises(ValidationError, match="is not before"):
        build_report(tmp_path / "r.html", demo_db, since="2025-02-01", until="2025-01-01")


def test_a_pdf_without_playwright_is_one_clear_line(demo_db: Path, tmp_path: Path) -> None:
    """`make demo` installs no Playwright: `onemap report --out x.pdf` then says how to get it,
    with exit code 2 and no traceback, and writes nothing."""
    blocked = tmp_path / "blocked"
    (blocked / "playwright").mkdir(parents=True)
    (blocked / "playwright" / "__init__.py").write_text('raise ImportError("No module named playwright")\n')
    exe = Path(sys.executable).with_name("onemap")
    out = tmp_path / "r.pdf"
    done = subprocess.run([str(exe), "report", "--db", str(demo_db), "--out", str(out)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(blocked)}, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and ".[report]" in done.stderr
    assert not out.exists()
