"""`onemap response` on the hand-made district (tests/geo/response_fixture.py), as a user runs it.

Expected numbers are the hand-worked ones of tests/geo/test_response.py, printed as m:ss.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dashboard.cli import cli

ONEMAP = [sys.executable, "-m", "dashboard.cli"]
_spec = importlib.util.spec_from_file_location(
    "response_fixture", Path(__file__).resolve().parents[1] / "geo" / "response_fixture.py")
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)
PERIOD = ("--from", "2025-03-01", "--to", "2025-05-01")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture.build(tmp_path_factory.mktemp("cli_response"))[0]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_DB", "ONEMAP_CONFIG")}
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=120, env=env)


def invoke_json(db: Path, *args: str) -> dict:
    result = CliRunner().invoke(cli, ["response", "--db", str(db), *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_text_output_prints_times_as_minutes_and_seconds(db: Path) -> None:
    proc = run("response", "--db", str(db), *PERIOD)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    wz1 = next(line for line in lines if " WZ1 " in line).split()
    # WZ1: 4 calls; turnout 0:45 / 1:30, travel 2:00 / 2:35, total 3:00 / 4:00; 3 of 4 and 2 of 4 met
    assert wz1[3:10] == ["4", "0:45", "1:30", "2:00", "2:35", "3:00", "4:00"]
    assert "75.0% (3/4)" in " ".join(wz1) and "50.0% (2/4)" in " ".join(wz1)
    district = next(line.split() for line in lines if line.split()[:1] == ["全区"] and line.split()[1].isdigit())
    assert district[1:8] == ["11", "0:50", "1:30", "2:30", "5:40", "3:20", "6:40"]
    assert "first unit matching no station: 1" in proc.stdout and "'不存在站'" in proc.stdout
    assert "nearest-rank" in proc.stdout and "180" not in " ".join(wz1)  # no raw seconds in the table


def test_json_by_town_and_month(db: Path) -> None:
    out = invoke_json(db, "--by", "town", *PERIOD)
    assert out["by"] == "town" and out["percentiles"] == [50, 90] and "nearest-rank" in out["definition"]
    assert out["targets"]["micro_station"] == {"turnout_s": 60.0, "on_scene_s": 180.0}
    towns = {r["town"]: r for r in out["rows"]}
    assert (towns["甲镇"]["calls"], towns["甲镇"]["total_p50_s"], towns["甲镇"]["total_p90_s"]) == (7, 240, 400)
    assert towns["乙镇"]["on_scene_met_share"] == 0.5
    assert [r["month"] for r in out["trend"]] == ["2025-03-01", "2025-04-01"]
    assert out["district"]["calls"] == 11 and out["first_unit_unmatched"] == 1 and out["calls_without_unit"] == 1
    assert out["unmatched"] == [{"unit_text": "不存在站", "reason": "unknown", "calls": 1}]
    assert [w["id"] for w in out["worst"][:3]] == ["I08", "I11", "I09"]
    months = invoke_json(db, "--by", "month")  # no period: every call, I12 in May too
    assert [(r["month"], r["calls"]) for r in months["rows"]] == [("2025-03-01", 6), ("2025-04-01", 5), ("2025-05-01", 1)]


def test_town_filter(db: Path) -> None:
    out = invoke_json(db, "--town", "乙镇", *PERIOD)
    assert out["district"]["calls"] == 4 and [r["unit_id"] for r in out["rows"]] == ["FS1", "WZ2"]


@pytest.mark.parametrize(("args", "message"), [
    (("--by", "{{7*7}}"), "Invalid value for '--by'"),
    (("--by", "<script>alert(1)</script>"), "Invalid value for '--by'"),
    (("--from", "2025-13-45"), "`--from` = '2025-13-45' is not a date"),
    (("--to", "NaN"), "`--to`"),
    (("--from", "{{7*7}}"), "is not a date"),
    (("--from", "2025-05-01", "--to", "2025-03-01"), "--to 2025-03-01 is not after --from 2025-05-01"),
    (("--town", "甲镇' OR '1'='1"), "no call is assigned to that town; towns: 乙镇, 甲镇"),
    (("--town", "x" * 5000), "no call is assigned to that town"),
])
def test_hostile_arguments_get_one_clear_line(db: Path, args: tuple[str, ...], message: str) -> None:
    proc = run("response", "--db", str(db), *args)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "49" not in proc.stderr.replace("2025", "")
    assert len(proc.stderr) < 2000


def test_sql_in_town_leaves_the_database_intact(db: Path) -> None:
    run("response", "--db", str(db), "--town", "x'); DROP TABLE incident; --")
    assert invoke_json(db, *PERIOD)["district"]["calls"] == 11
