"""`onemap backup` while the app serves and ingests run: every copy is a whole snapshot that opens
with the counts it claims, a running write is waited for, and hostile DEST paths are refused."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from dashboard.access.control import control_path
from dashboard.cli import main
from geo import store

ONEMAP = [sys.executable, "-m", "dashboard.cli"]


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=timeout)


def counts(path: Path) -> dict[str, int]:
    """Every table's row count, counted here (not by the backup command)."""
    con = store.connect(path, read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                           "WHERE database_name = current_database()").fetchall()]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()


def hydrant_csv(path: Path, n: int) -> Path:
    rows = "".join(f"BK-{i},备份测试{i},正常,{121.20 + i * 1e-4:.4f},31.03\n" for i in range(n))
    path.write_text("编号,名称,状态,经度,纬度\n" + rows, encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
        return r.status


@pytest.fixture
def served(copy_demo_db: Path, tmp_path: Path):
    """The real server (`onemap serve`) on a copy of the demo database."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*ONEMAP, "serve", "--db", str(copy_demo_db), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            assert get(base + "/") == 200
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(log.read_text()) from None
            time.sleep(0.3)
    try:
        yield copy_demo_db, base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_backups_taken_while_serving_and_ingesting_are_whole_snapshots(served, tmp_path: Path):
    db, base = served
    hydrants_before = counts(db)["hydrant"]
    sizes = (40, 80, 120)  # each ingest adds rows with new ids: the hydrant count tells the snapshot
    ingests: list[subprocess.CompletedProcess[str]] = []

    def ingest_all() -> None:
        for n in sizes:
            ingests.append(run("ingest", "hydrant", str(hydrant_csv(tmp_path / f"h{n}.csv", n)), "--db", str(db)))

    writer = threading.Thread(target=ingest_all)
    writer.start()
    dest = tmp_path / "backups"
    results = []
    while writer.is_alive() or len(results) < 2:
        done = run("backup", f"{dest}/", "--db", str(db), "--json")
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
        assert get(base + "/wall") == 200  # the app serves throughout
    writer.join()
    assert [r.returncode for r in ingests] == [0, 0, 0], [r.stderr for r in ingests]

    possible = {hydrants_before} | {hydrants_before + n for n in sizes}
    for result in results:
        copy = Path(result["path"])
        assert copy.parent == dest and copy.name.startswith("demo_copy-") and copy.suffix == ".duckdb"
        assert counts(copy) == result["tables"]  # opens, and holds what the command checked
        assert result["tables"]["hydrant"] in possible
        assert result["tables"]["road_edges"] > 0 and result["tables"]["hazard"] > 0
        if result["control"]:  # ingests leave audit rows: the copied trail verifies on its own
            assert Path(result["control"]) == control_path(copy)
            verified = run("audit", "verify", "--db", str(copy), "--json")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert json.loads(verified.stdout)["rows"] == result["control_tables"]["audit"]
    assert len({r["path"] for r in results}) == len(results)  # never overwritten: one file each
    assert not [p for p in dest.iterdir() if ".partial-" in p.name]
    final = run("backup", str(tmp_path / "final.duckdb"), "--db", str(db), "--json")
    assert json.loads(final.stdout)["tables"]["hydrant"] == hydrants_before + max(sizes)


def test_backup_waits_for_a_running_write_and_copies_its_result(copy_demo_db: Path, tmp_path: Path):
    db = copy_demo_db
    before = counts(db)["hydrant"]
    target = tmp_path / "after-write.duckdb"
    with store.writer(db) as con:
        con.execute("CREATE TABLE backup_probe AS SELECT 1 AS x")
        proc = subprocess.Popen([*ONEMAP, "backup", str(target), "--db", str(db), "--wait", "120", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(proc.stderr.readline()))
        reader.start()
        reader.join(timeout=90)  # the process started, reached the lock and said so
        assert first and "waiting for a running write" in first[0], first
        time.sleep(0.5)
        assert proc.poll() is None and not target.exists()  # nothing copied while the write is open
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    tables = json.loads(out)["tables"]
    assert tables["backup_probe"] == 1 and tables["hydrant"] == before
    assert counts(target) == tables


def test_backup_gives_up_on_a_write_that_does_not_end_and_leaves_nothing(copy_demo_db: Path, tmp_path: Path):
    dest = tmp_path / "out"
    dest.mkdir()
    with store.writer(copy_demo_db):
        done = run("backup", f"{dest}/", "--db", str(copy_demo_db), "--wait", "0.5")
    assert done.returncode == 2
    assert "still running after 0.5 s" in done.stderr and "Traceback" not in done.stderr
    assert list(dest.iterdir()) == []


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `onemap ARGS` through the CLI's own entry point; returns (exit code, all output)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def files(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("dest, said", [
    ("existing.duckdb", "never overwrites"),
    ("db", "is the live database"),
    ("link-to-db.duckdb", "is the live database"),
    ("control", "is the live database"),
    ("data/onemap.control.duckdb.audit-head", "ending in .duckdb"),
    ("data/onemap.duckdb.lock", "ending in .duckdb"),
    ("missing/folder/x.duckdb", "does not exist"),
    ("backup.txt", "ending in .duckdb"),
    ("../../etc/passwd", "ending in .duckdb"),
    (".duckdb", "ending in .duckdb"),
    ("<script>alert(1)</script>.duckdb", "does not exist"),
    ("x" * 300 + ".duckdb", "bytes long"),
    ("/proc/onemap.duckdb", "cannot write"),
    ("/dev/null", "ending in .duckdb"),
    ("a\x00b.duckdb", "NUL"),
    ("", "empty"),
])
def test_hostile_dest_is_refused_with_a_clear_error_and_nothing_changes(
        copy_demo_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], dest: str, said: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "onemap.duckdb"
    copy_demo_db.rename(db)
    (tmp_path / "existing.duckdb").write_bytes(b"an earlier backup")
    (tmp_path / "link-to-db.duckdb").symlink_to(db)
    (data / "onemap.duckdb.lock").touch()  # as left by the writes that made the database
    monkeypatch.chdir(tmp_path)
    named = {"db": str(db), "control": str(control_path(db))}.get(dest, dest)
    before = files(tmp_path)
    code, output = cli(capsys, "backup", named, "--db", str(db))
    assert code == 2, output
    assert said in output and "Traceback" not in output
    assert files(tmp_path) == before  # nothing written, nothing overwritten, no partial left


@pytest.mark.parametrize("name", ["{{7*7}}.duckdb", "' OR 1=1 --.duckdb", "备份 2024年.duckdb", "$(touch pwned).duckdb"])
def test_odd_but_plain_file_names_are_written_literally(
        copy_demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    code, output = cli(capsys, "backup", str(dest / name), "--db", str(copy_demo_db), "--json")
    assert code == 0, output
    assert [p.name for p in dest.iterdir()] == [name]  # no template, SQL or shell evaluated
    assert counts(dest / name) == json.loads(output)["tables"] == counts(copy_demo_db)


@pytest.mark.parametrize("wait", ["-1", "nan", "inf", "1e9", "soon", "{{7*7}}"])
def test_a_hostile_wait_is_a_usage_error(copy_demo_db: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str], wait: str) -> None:
    code, output = cli(capsys, "backup", f"{tmp_path}/", "--db", str(copy_demo_db), "--wait", wait)
    assert code == 2 and "--wait" in output and "Traceback" not in output
    assert [p for p in tmp_path.iterdir() if p.suffix == ".duckdb" and p != copy_demo_db] == []


def test_a_missing_database_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = cli(capsys, "backup", f"{tmp_path}/b/", "--db", str(tmp_path / "none.duckdb"))
    assert code == 2 and "none.duckdb" in output and "not found" in output
    assert not (tmp_path / "b").exists() and not (tmp_path / "none.duckdb").exists()


def test_a_folder_gets_dated_names_that_never_collide(copy_demo_db: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "nightly"
    paths = []
    for _ in range(3):  # within one second: -2, -3 are added
        code, output = cli(capsys, "backup", f"{dest}/", "--db", str(copy_demo_db), "--json")
        assert code == 0, output
        paths.append(Path(json.loads(output)["path"]))
    assert len(set(paths)) == 3 and all(p.exists() for p in paths)
    assert all(p.name.startswith("demo_copy-") and p.suffix == ".duckdb" for p in paths)
    assert os.path.commonpath(paths) == str(dest)


def test_feed_events_not_yet_folded_are_in_the_backup(copy_demo_db: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Acknowledged feed events wait in the journal until the next fold: the backup carries the
    journal, and the restored file folds them in."""
    from geo import journal, live
    from geo.settings import Settings

    feature = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [121.22, 31.03]},
               "properties": {"隐患编号": "FEED-1", "隐患类别": "其他", "隐患等级": "一般", "状态": "发现",
                              "发现时间": "2026-12-05 10:00:00"}}
    assert live.submit(copy_demo_db, "hazard", "grid-app", feature, Settings()).accepted == 1
    dest = tmp_path / "backup" / "copy.duckdb"
    dest.parent.mkdir()
    main(["backup", str(dest), "--db", str(copy_demo_db), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["journal"] == str(journal.journal_path(dest)) and journal.head(dest) == 1
    assert live.fold(dest) == 1
    con = store.connect(dest)
    try:
        assert con.execute("SELECT count(*) FROM hazard WHERE id = 'FEED-1'").fetchone()[0] == 1
    finally:
        con.close()
