"""`onemap watch DIR`: files a platform drops are ingested once; half-written and bad ones are not.

Each test runs the real CLI (a subprocess) on a real DuckDB file (a copy of the demo)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from feedkit import onemap

HEADER = "报警编号,设备编号,设备类型,报警级别,报警时间,经度,纬度\n"


def rows(*ids: str) -> str:
    return "".join(f"{i},DEV-{i},充电桩,火警,2026-12-06 10:00:00,121.228,31.032\n" for i in ids)


@pytest.fixture
def drop(copy_demo_db: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(the watched folder, the database, a config with a 1 s settle time)."""
    folder = tmp_path / "drop"
    folder.mkdir()
    config = tmp_path / "onemap.toml"
    config.write_text("watch_settle_s = 1.0\n", encoding="utf-8")
    return folder, copy_demo_db, config


def old(path: Path) -> Path:
    """Make ``path`` look written a minute ago (a platform finished it long since)."""
    past = time.time() - 60
    os.utime(path, (past, past))
    return path


def put(path: Path, text: str) -> Path:
    """Drop a finished file (written a minute ago)."""
    path.write_text(text, encoding="utf-8")
    return old(path)


def watch_once(folder: Path, db: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = onemap("watch", str(folder), "--once", "--db", str(db), "--config", str(config), "--poll", "0.3", *extra)
    assert done.returncode == 0, done.stderr
    return done


def query(db: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def import_audits(db: Path, name: str) -> int:
    control = db.with_name(db.stem + ".control.duckdb")
    return query(control, f"SELECT count(*) FROM audit WHERE action = 'import' AND object LIKE '%{name}'")[0][0]


def test_a_dropped_file_is_ingested_once_and_moved_to_done(drop) -> None:
    folder, db, config = drop
    put(folder / "alarm_20261206.csv", HEADER + rows("WA-1", "WA-2"))
    out = watch_once(folder, db, config).stdout
    assert "alarm_20261206.csv → alarm: read 2, accepted 2" in out
    assert (folder / "done" / "alarm_20261206.csv").exists() and not (folder / "alarm_20261206.csv").exists()
    assert query(db, "SELECT id, kind FROM alarm WHERE id LIKE 'WA-%' ORDER BY id") == [
        ("WA-1", "电动自行车充电桩"), ("WA-2", "电动自行车充电桩")]
    assert import_audits(db, "alarm_20261206.csv") == 1
    watch_once(folder, db, config)  # a second look finds nothing new: no second ingest
    assert query(db, "SELECT count(*) FROM alarm WHERE id LIKE 'WA-%'")[0][0] == 2
    assert import_audits(db, "alarm_20261206.csv") == 1


def test_a_file_still_being_written_is_left_alone(drop) -> None:
    folder, db, config = drop
    growing = folder / "alarm_growing.csv"
    growing.write_text(HEADER, encoding="utf-8")
    stop = threading.Event()

    def writer() -> None:  # a platform appending a row every 0.2 s
        n = 0
        while not stop.is_set():
            with open(growing, "a", encoding="utf-8") as f:
                f.write(rows(f"WG-{n}"))
            n += 1
            time.sleep(0.2)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for name in (".alarm_hidden.csv", "alarm_upload.csv.part", "alarm_x.tmp"):
            put(folder / name, HEADER + rows("WT-1"))
        out = watch_once(folder, db, config).stdout
    finally:
        stop.set()
        thread.join()
    assert "alarm_growing" not in out and growing.exists()
    for name in (".alarm_hidden.csv", "alarm_upload.csv.part", "alarm_x.tmp"):
        assert (folder / name).exists()
    assert query(db, "SELECT count(*) FROM alarm WHERE id LIKE 'WG-%' OR id LIKE 'WT-%'")[0][0] == 0
    old(growing)  # the platform finished: the next look takes it whole
    watch_once(folder, db, config)
    written = growing.read_text(encoding="utf-8") if growing.exists() else (folder / "done" / growing.name).read_text()
    assert query(db, "SELECT count(*) FROM alarm WHERE id LIKE 'WG-%'")[0][0] == written.count("\nWG-")


@pytest.mark.parametrize(("name", "content", "reason"), [
    ("notes.csv", "a,b\n1,2\n", "no layer for 'notes.csv'"),
    ("alarm_broken.xlsx", "\x00\x01 not a workbook", "not an Excel .xlsx workbook"),
    ("alarm_hostile.csv", HEADER + "{{7*7}},<script>alert(1)</script>,' OR 1=1 --,nan,inf,1e999,NaN\n",
     "no row accepted"),
])
def test_a_bad_file_goes_to_failed_with_its_reason(drop, name: str, content: str, reason: str) -> None:
    folder, db, config = drop
    put(folder / name, content)
    out = watch_once(folder, db, config).stdout
    assert f"{name} → " in out and "failed/" in out
    assert (folder / "failed" / name).exists() and not (folder / name).exists()
    assert reason in (folder / "failed" / f"{name}.error.txt").read_text(encoding="utf-8")
    assert "Traceback" not in out


def test_layer_option_and_a_hostile_file_name(drop) -> None:
    folder, db, config = drop
    name = "{{7*7}}' OR 1=1 --;<b>.csv"
    put(folder / name, "设备编号,设备类型,心跳时间,经度,纬度\nWD-1,烟感,2026-12-06 10:00:00,121.228,31.032\n")
    watch_once(folder, db, config, "--layer", "device")
    assert (folder / "done" / name).exists()
    assert query(db, "SELECT id, kind FROM device WHERE id = 'WD-1'") == [("WD-1", "烟感")]


def test_a_missing_folder_is_one_clear_line() -> None:
    done = subprocess.run([sys.executable, "-m", "dashboard.cli", "watch", "/no/such/folder", "--once"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args, words", [(["--poll", "nan"], "NaN"), (["--poll", "-1"], "poll"),
                                          (["--layer", "{{7*7}}"], "layer")])
def test_hostile_options_are_one_clear_line(tmp_path: Path, args: list[str], words: str) -> None:
    done = onemap("watch", str(tmp_path), "--once", *args)
    assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr
