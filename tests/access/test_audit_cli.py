"""The audit trail from the command line: CLI actions leave rows, `onemap audit` lists and filters them,
and `onemap audit verify` names a row edited, deleted, inserted or renumbered by hand in the DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from dashboard.access import audit
from dashboard.access.control import control_path

ONEMAP = [sys.executable, "-m", "dashboard.cli"]
HAZARDS = (
    "隐患编号,隐患类别,隐患等级,状态,发现时间,经度,纬度\n"
    "T-1,堵塞占用生命通道,一般,发现,2024-05-01 09:00,121.22,31.03\n"
    "T-2,违规住人,重大,立案,2024-05-02 10:00,121.23,31.04\n"
    "T-3,不是一个类别,一般,发现,2024-05-03 11:00,121.24,31.05\n"
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=300, env=dict(os.environ))


def listed(db: Path, *args: str) -> list[dict]:
    result = run("audit", "--db", str(db), "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def trail(db: Path, n: int) -> Path:
    """``n`` audit rows written by ``audit.record`` as the app writes them; returns the control file."""
    for i in range(n):
        audit.record(db, f"user{i % 2}", "editor", "status-change", f"hazard:H{i}",
                     {"status": "发现"}, {"status": "立案", "i": i})
    return control_path(db)


def verify(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run("audit", "verify", "--db", str(db), *args)


def by_hand(control: Path, *sql: str) -> None:
    con = duckdb.connect(str(control))
    try:
        for statement in sql:
            con.execute(statement)
    finally:
        con.close()


# --------------------------------------------------------------------------- CLI actions leave rows


def test_import_export_and_report_each_leave_an_audit_row(copy_demo_db: Path, tmp_path: Path) -> None:
    csv = tmp_path / "hazards.csv"
    csv.write_text(HAZARDS, encoding="utf-8")
    steps = [
        ("import", ["ingest", "hazard", str(csv), "--quiet"]),
        ("export", ["export-map", "--out", str(tmp_path / "map.html"), "--layers", "fire_station"]),
        ("export", ["export", "hazard", "--out", str(tmp_path / "h.csv"), "--town", "岳阳街道"]),
        ("report", ["report", "--out", str(tmp_path / "r.html")]),
    ]
    for action, args in steps:
        result = run(*args, "--db", str(copy_demo_db))
        assert result.returncode == 0, (args, result.stderr)
    rows = list(reversed(listed(copy_demo_db)))
    assert [r["action"] for r in rows] == [a for a, _ in steps]
    assert {r["actor"] for r in rows} == {audit.cli_actor()}
    imported = rows[0]["after"]
    assert (imported["layer"], imported["accepted"], imported["rejected"]) == ("hazard", 2, 1)
    assert imported["file"].endswith("hazards.csv")
    assert rows[1]["after"]["out"].endswith("map.html") and rows[1]["after"]["layers"] == ["fire_station"]
    assert rows[2]["after"]["towns"] == ["岳阳街道"] and rows[2]["object"].startswith("hazard:")
    assert rows[3]["object"].endswith("r.html")
    assert verify(copy_demo_db).returncode == 0


def test_a_failed_import_leaves_no_row(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    result = run("ingest", "hazard", str(tmp_path / "missing.csv"), "--db", str(db))
    assert result.returncode == 2
    assert audit.rows(db) == []


# --------------------------------------------------------------------------- listing and filters


def test_listing_filters_by_actor_action_and_time(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 5)
    audit.record(db, "admin", "admin", "user-change", "user:bob", None, {"role": "viewer"})
    assert [r["seq"] for r in listed(db)] == [6, 5, 4, 3, 2, 1]
    assert [r["seq"] for r in listed(db, "--actor", "user1")] == [4, 2]
    assert [r["seq"] for r in listed(db, "--action", "user-change")] == [6]
    assert [r["seq"] for r in listed(db, "--limit", "2")] == [6, 5]
    assert listed(db, "--since", "2999-01-01") == []
    assert len(listed(db, "--until", "2999-01-01", "--since", "2000-01-01")) == 6
    text = run("audit", "--db", str(db)).stdout
    assert "user-change" in text and "'user:bob'" in text and '{"role": "viewer"}' in text


@pytest.mark.parametrize("args", [
    ["--since", "{{7*7}}"], ["--until", "<script>alert(1)</script>"], ["--since", "2024-13-45"],
    ["--limit", "0"], ["--limit", "nan"], ["--limit", "99999999999"], ["--action", "' OR 1=1 --"],
    ["--since", "9" * 5000],
])
def test_hostile_listing_arguments_are_refused_clearly(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 2)
    result = run("audit", "--db", str(db), *args)
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr and result.stderr.strip()


@pytest.mark.parametrize("actor", ["' OR 1=1 --", "user0' --", "%", "{{7*7}}", "<b>user0</b>"])
def test_an_actor_filter_is_an_exact_name_never_sql(tmp_path: Path, actor: str) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 3)
    assert listed(db, "--actor", actor) == []


def test_control_characters_in_a_stored_name_are_shown_escaped(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    audit.record(db, "evil\x1b[2J\rname", None, "sign-in-failed", "user:evil\x1b[31m")
    out = run("audit", "--db", str(db)).stdout
    assert "\x1b" not in out and "\\x1b" in out


# --------------------------------------------------------------------------- verify


def test_an_intact_trail_verifies_and_prints_its_head(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 4)
    result = verify(db)
    assert result.returncode == 0, result.stdout
    head = audit.rows(db, limit=1)[0]
    assert f"head 4:{head['hash']}" in result.stdout
    assert verify(db, "--anchor", f"4:{head['hash']}").returncode == 0
    (tmp_path / "new.duckdb").touch()
    empty = verify(tmp_path / "new.duckdb")
    assert empty.returncode == 0 and "no rows yet" in empty.stdout
    typo = verify(tmp_path / "nonexistent" / "x.duckdb")
    assert typo.returncode == 2 and "not found" in typo.stderr
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize("column, value", [
    ("actor", "'someone else'"), ("role", "'admin'"), ("action", "'export'"), ("object", "'hazard:H9'"),
    ("before", "'{\"status\": \"结案\"}'"), ("after", "NULL"), ('"at"', "TIMESTAMP '2020-01-01 00:00:00'"),
    ("prev_hash", "repeat('a', 64)"), ("hash", "repeat('b', 64)"),
])
def test_editing_any_field_of_a_row_by_hand_fails_verify_naming_the_row(tmp_path: Path, column: str,
                                                                          value: str) -> None:
    control = trail(tmp_path / "x.duckdb", 5)
    by_hand(control, f"UPDATE audit SET {column} = {value} WHERE seq = 3")
    result = verify(tmp_path / "x.duckdb")
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and "row 3:" in result.stdout
    assert "row 1:" not in result.stdout and "row 2:" not in result.stdout


def test_an_edit_that_recomputes_the_rows_hash_is_found_at_the_next_link(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    control = trail(db, 5)
    row = audit.rows(db, limit=5)[-3]  # seq 3
    forged = audit.row_hash(3, row["at"].replace(" ", "T"), "nobody", row["role"], row["action"], row["object"],
                            audit._json(row["before"]), audit._json(row["after"]), row["prev_hash"])
    by_hand(control, f"UPDATE audit SET actor = 'nobody', hash = '{forged}' WHERE seq = 3")
    result = verify(db)
    assert result.returncode == 1
    assert "row 4: prev_hash does not match row 3's hash" in result.stdout


def test_deleting_a_row_in_the_middle_is_named(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 5), "DELETE FROM audit WHERE seq = 3")
    result = verify(db)
    assert result.returncode == 1
    assert "row 4: row 3 before it missing (deleted)" in result.stdout


def test_deleting_the_last_row_is_detected(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 5), "DELETE FROM audit WHERE seq = 5")
    result = verify(db)
    assert result.returncode == 1
    assert "row 5: row 5 missing at the end" in result.stdout


def test_deleting_the_tail_and_the_meta_head_is_still_detected_by_the_sidecar(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 5), "DELETE FROM audit WHERE seq >= 4",
            "UPDATE meta SET value = (SELECT seq || ':' || hash FROM audit WHERE seq = 3) "
            f"WHERE key = '{audit.HEAD_KEY}'")
    result = verify(db)
    assert result.returncode == 1
    assert "rows 4–5 missing at the end" in result.stdout and "sidecar" in result.stdout


def test_emptying_the_table_is_detected(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 3), "DELETE FROM audit", "DELETE FROM meta")
    result = verify(db)
    assert result.returncode == 1 and "rows 1–3 missing at the end" in result.stdout


def test_a_row_appended_by_hand_with_a_correct_hash_is_detected(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    control = trail(db, 3)
    last = audit.rows(db, limit=1)[0]
    at = "2030-01-01T00:00:00"
    digest = audit.row_hash(4, at, "ghost", "admin", "export", "x", None, None, last["hash"])
    by_hand(control, f"INSERT INTO audit VALUES (4, TIMESTAMP '{at}', 'ghost', 'admin', 'export', 'x', NULL, NULL, "
                     f"'{last['hash']}', '{digest}')")
    result = verify(db)
    assert result.returncode == 1 and "row 4: rows 4–4 came after the head recorded in meta" in result.stdout


def test_renumbered_or_swapped_rows_are_named(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 5), "UPDATE audit SET seq = 100 + seq WHERE seq IN (2, 3)",
            "UPDATE audit SET seq = 3 WHERE seq = 102", "UPDATE audit SET seq = 2 WHERE seq = 103")
    result = verify(db)
    assert result.returncode == 1
    assert "row 2:" in result.stdout and "row 3:" in result.stdout


def test_a_rewritten_chain_is_caught_by_an_anchor_noted_earlier(tmp_path: Path) -> None:
    """Whoever re-hashes the edited row, the meta head and the sidecar is not caught by the chain itself
    (the README says so); a head noted elsewhere before the edit catches it."""
    db = tmp_path / "x.duckdb"
    control = trail(db, 3)
    row = audit.rows(db, limit=1)[0]
    anchor = f"3:{row['hash']}"
    forged = audit.row_hash(3, row["at"].replace(" ", "T"), "nobody", row["role"], row["action"], row["object"],
                            audit._json(row["before"]), audit._json(row["after"]), row["prev_hash"])
    by_hand(control, f"UPDATE audit SET actor = 'nobody', hash = '{forged}' WHERE seq = 3",
            f"UPDATE meta SET value = '3:{forged}' WHERE key = '{audit.HEAD_KEY}'")
    audit.head_path(db).write_text(f"3:{forged}\n")
    assert verify(db).returncode == 0
    result = verify(db, "--anchor", anchor)
    assert result.returncode == 1 and "row 3: does not match the anchor" in result.stdout


@pytest.mark.parametrize("anchor", ["x", "3", "3:zz", "-1:" + "a" * 64, "{{7*7}}", "3:" + "A" * 64 + "'; DROP"])
def test_a_malformed_anchor_is_refused(tmp_path: Path, anchor: str) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 1)
    result = verify(db, "--anchor", anchor)
    assert result.returncode == 2 and "SEQ:HASH" in result.stderr


def test_a_missing_sidecar_warns_but_a_stale_one_fails(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    trail(db, 2)
    sidecar = audit.head_path(db)
    sidecar.unlink()
    result = verify(db)
    assert result.returncode == 0 and "warning: no sidecar" in result.stderr
    sidecar.write_text("7:" + "c" * 64 + "\n")
    result = verify(db)
    assert result.returncode == 1 and "rows 3–7 missing at the end" in result.stdout


def test_verify_json_names_each_problem(tmp_path: Path) -> None:
    db = tmp_path / "x.duckdb"
    by_hand(trail(db, 4), "UPDATE audit SET object = 'x' WHERE seq = 2")
    result = verify(db, "--json")
    assert result.returncode == 1
    out = json.loads(result.stdout)
    assert out["ok"] is False and out["rows"] == 4
    assert out["problems"][0]["seq"] == 2 and "edited" in out["problems"][0]["what"]
