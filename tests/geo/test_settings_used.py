"""Every setting that `onemap settings` lists is read by the code it claims to govern."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from geo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
# the settings module and its checker name every setting without applying any
NOT_READERS = {ROOT / "geo" / "settings.py", ROOT / "geo" / "settings_check.py"}


def _source() -> str:
    files = sorted((ROOT / "geo").rglob("*.py")) + sorted((ROOT / "dashboard").rglob("*.py"))
    return "\n".join(p.read_text(encoding="utf-8") for p in files if p not in NOT_READERS)


def test_every_declared_setting_is_read_in_geo_or_dashboard() -> None:
    source = _source()
    unread = [f.name for f in fields(Settings) if not re.search(rf"\.{f.name}\b", source)]
    assert unread == [], (
        f"settings declared but never read (attribute `.name`) in geo/ or dashboard/: {unread}; "
        "wire each into what it governs or remove it"
    )
