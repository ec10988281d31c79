"""The committee report (消防安全委员会): one HTML file or an A4 PDF, in Chinese.

``build_report(out, db, town=None, since=None, until=None)`` gathers the figures
(``data.collect``), renders the template (``render.render_html``) and, for ``.pdf``, prints
it with headless Chromium (``render.html_to_pdf``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.report.data import ReportData, collect
from dashboard.report.render import html_to_pdf, render_html
from geo import store
from geo.errors import ConfigError
from geo.settings import Settings

__all__ = ["ReportData", "ReportFile", "build_report", "collect", "html_to_pdf", "render_html"]


@dataclass(frozen=True)
class ReportFile:
    """What ``build_report`` wrote."""

    path: Path
    format: str
    size_bytes: int
    data: ReportData


def build_report(
    out: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    *,
    town: str | None = None,
    since: Any = None,
    until: Any = None,
    settings: Settings | None = None,
) -> ReportFile:
    """Write the report to ``out`` (.html: one self-contained file; .pdf: A4 via Chromium)."""
    path = Path(out)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("html", "htm", "pdf"):
        raise ConfigError(f"report: {path.name!r} must end in .html or .pdf")
    settings = settings or Settings()
    con = store.connect(store.resolve_db_path(db, settings))
    try:
        data = collect(con, settings, town=town, since=since, until=until)
    finally:
        con.close()
    text = render_html(data)
    if fmt == "pdf":
        html_to_pdf(text, path)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return ReportFile(path=path, format="pdf" if fmt == "pdf" else "html", size_bytes=path.stat().st_size, data=data)
