"""A data file restored or copied without its journal: new events are numbered after what the
snapshot has folded, so the fold takes them and partial updates find them."""

from __future__ import annotations

import shutil
from pathlib import Path

from geo import journal, live, store
from geo.settings import Settings

HAZARD = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.22, 31.03]},
          "properties": {"隐患编号": "R-1", "隐患类别": "其他", "隐患等级": "一般", "状态": "发现",
                         "发现时间": "2026-12-05 10:00:00"}}


def _status(db: Path, hid: str) -> str | None:
    con = store.connect(db)
    try:
        row = con.execute("SELECT status FROM hazard WHERE id = ?", [hid]).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def test_events_after_a_restore_without_the_journal_are_folded(demo_db: Path, tmp_path: Path) -> None:
    served = tmp_path / "served" / "demo.duckdb"
    served.parent.mkdir()
    shutil.copyfile(demo_db, served)
    settings = Settings()
    for n in range(3):  # the snapshot records seq 3 as folded
        body = {**HAZARD, "properties": {**HAZARD["properties"], "隐患编号": f"OLD-{n}"}}
        assert live.submit(served, "hazard", "grid-app", body, settings).accepted == 1
    assert live.fold(served) == 3
    restored = tmp_path / "restored" / "demo.duckdb"
    restored.parent.mkdir()
    shutil.copyfile(served, restored)  # the data file only, as a careless backup would
    assert not journal.exists(restored)
    outcome = live.submit(restored, "hazard", "grid-app", HAZARD, settings)
    assert outcome.accepted == 1 and min(outcome.seqs) > 3
    update = {"type": "Feature", "geometry": None, "properties": {"id": "R-1", "status": "立案"}}
    assert live.submit(restored, "hazard", "grid-app", update, settings).accepted == 1
    assert live.fold(restored) == 2  # the new hazard and its update
    assert _status(restored, "R-1") == "立案"
