"""Render the report: HTML from the Jinja2 template (autoescaped), PDF through headless Chromium."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from dashboard.report.data import ReportData
from geo import staticmap
from geo.errors import ConfigError
from layers import hazard as hazard_vocabulary

TEMPLATES = Path(__file__).resolve().parent / "templates"
NUMERALS = ("一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二")
CHROMIUM = os.environ.get("ONEMAP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TITLE = "消防安全形势分析报告"


@dataclass(frozen=True)
class _Table:
    columns: list[str]
    rows: list[list[str]]
    mark: str | None = None
    mark_col: int = 0


def _table(frame: pd.DataFrame, mark: str | None) -> _Table:
    cols = [str(c) for c in frame.columns]
    rows = [["" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v) for v in row]
            for row in frame.itertuples(index=False, name=None)]
    mark_col = cols.index("街镇") if "街镇" in cols else 0
    return _Table(cols, rows, mark, mark_col)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.StrictUndefined,
    )


def render_html(data: ReportData) -> str:
    """The report as one HTML file: every image embedded as a base64 data URI, all text escaped."""
    period = "全部数据"
    if data.period_start or data.period_end:
        start = f"{data.period_start:%Y年%m月%d日}" if data.period_start else "…"
        end = f"{data.period_end:%Y年%m月%d日}" if data.period_end else "…"
        period = f"{start} — {end}"
    sections: list[dict[str, Any]] = []
    for sec in data.sections:
        sections.append({
            "key": sec.key, "title": sec.title, "lead": sec.lead, "notes": sec.notes,
            "image": staticmap.data_uri(sec.image) if sec.image else None, "image_alt": sec.image_alt,
            "tables": [(caption, _table(t, data.town)) for caption, t in sec.tables],
        })
    deadlines = data.settings.hazard_deadline_days
    return _environment().get_template("report.html.j2").render(
        title=TITLE,
        subtitle="一图作战 · 隐患热点 · 响应覆盖 · 闭环处置",
        district=data.district, town=data.town, period=period,
        as_of=f"{data.as_of:%Y-%m-%d %H:%M}", generated=f"{data.generated:%Y年%m月%d日}",
        summary=data.summary, sections=sections, numerals=NUMERALS,
        deadline_general=deadlines.get(hazard_vocabulary.GENERAL_SEVERITY, "—"),
        deadline_major=deadlines.get(hazard_vocabulary.MAJOR_SEVERITY, "—"),
        default_days=data.settings.review_default_days,
    )


def cjk_font_file(family: str = "Noto Sans CJK SC") -> str:
    """The font file fontconfig (and so Chromium) uses for ``family``; ConfigError when it is not a CJK font.

    Chromium falls back silently, and a fallback without CJK glyphs prints boxes: check first.
    """
    try:
        found = subprocess.run(["fc-match", "--format=%{file}", family], check=True, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(f"cannot ask fontconfig for {family!r} ({exc}); install fontconfig and fonts-noto-cjk") from exc
    if "NotoSansCJK" not in found.replace(" ", "").replace("-", ""):
        msg = (f"the report font {family!r} resolves to {found or 'nothing'}, not Noto Sans CJK: Chinese would print "
               "as boxes; install the Debian package fonts-noto-cjk (`make browser`)")
        raise ConfigError(msg)
    return found


def html_to_pdf(html_text: str, out: str | os.PathLike[str], *, timeout_ms: int = 60_000) -> Path:
    """Print HTML to an A4 PDF with headless Chromium (Playwright, the system Chromium; no downloads).

    Every request other than data: URIs is blocked, so the PDF shows exactly the HTML file.
    """
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        msg = ("printing a PDF needs Playwright, which `make demo` does not install: "
               "`.venv/bin/pip install -e '.[report]'` (or from the offline bundle), or write the report as .html")
        raise ConfigError(msg) from exc

    if not Path(CHROMIUM).exists():
        msg = (f"Chromium not found at {CHROMIUM}; install the Debian package chromium (`make browser`) "
               "or set ONEMAP_CHROMIUM, or write the report as .html")
        raise ConfigError(msg)
    cjk_font_file()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    footer = ('<div style="width:100%;font-size:8px;color:#777;text-align:center;'
              'font-family:\'Noto Sans CJK SC\',sans-serif">第 <span class="pageNumber"></span> 页 / 共 '
              '<span class="totalPages"></span> 页</div>')
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.route("**/*", lambda r: r.continue_() if r.request.url.startswith("data:") else r.abort())
                page.set_content(html_text, wait_until="load", timeout=timeout_ms)
                page.emulate_media(media="print")
                page.pdf(path=str(path), format="A4", print_background=True, display_header_footer=True,
                         header_template="<span></span>", footer_template=footer,
                         margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"})
            finally:
                browser.close()
    except PlaywrightError as exc:
        raise ConfigError(f"printing the report to {path} with Chromium failed: {exc}") from exc
    return path
