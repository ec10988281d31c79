"""`onemap hotspots` and `onemap figures` on the hand-made district, as a user runs them."""

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
    "analytics_fixture", Path(__file__).resolve().parents[1] / "geo" / "analytics_fixture.py")
fixture = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixture)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = fixture.build_fixture(tmp_path_factory.mktemp("cli") / "fx.duckdb")
    pts = fixture.ring_points(121.215, 31.005, 8, per_cell=6)
    fixture.add_hazards(path, fixture.cluster_rows("C", "G2", ["2025-06-15 10:00"] * len(pts)), pts)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_DB", "ONEMAP_CONFIG")}
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=120, env=env)


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_hotspots_json_lists_the_hot_cells(db: Path):
    proc = run("hotspots", "--db", str(db), "--res", "8", "--json", "--warnings", "--as-of", "2025-06-30")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["res"] == 8 and out["k"] == 1 and out["study_area"] == "admin_area"
    assert out["total"] == 11 + 42
    assert sum(out["summary"].values()) == out["n_cells"]
    hot = out["cells"][0]
    assert set(hot) == {"h3", "lon", "lat", "count", "n_neighbours", "z", "p", "q", "bin", "bin_fdr"}
    assert hot["bin_fdr"] == 3 and all(c["bin_fdr"] != 0 for c in out["cells"])
    # the 42 clustered hazards in G2 on 06-15 against 1 before: G2 is warned
    assert [w["area"] for w in out["warnings"]] == ["G2"] and out["warnings"][0]["current"] == 43


def test_hotspots_filters_and_trends(db: Path):
    out = json.loads(invoke("hotspots", "--db", str(db), "--severity", "重大", "--all", "--trends", "--json"))
    assert out["total"] == 3 and out["filter"]["severity"] == ["重大"]
    assert len(out["cells"]) == out["n_cells"]  # --all
    assert isinstance(out["trends"], list)
    text = invoke("hotspots", "--db", str(db), "--town", "甲镇", "--res", "9")
    assert "Gi*" in text and "热点(99%)" in text and "(grid)" in text


def test_bad_filter_value_is_one_clear_line(db: Path):
    proc = run("hotspots", "--db", str(db), "--severity", "严重")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("onemap: filter `severity`") and "一般" in proc.stderr
    proc = run("figures", "--db", str(db), "--as-of", "yesterday-ish")
    assert proc.returncode == 2 and "--as-of" in proc.stderr


def test_figures_json_has_every_section(db: Path):
    out = json.loads(invoke("figures", "--db", str(db), "--as-of", "2025-06-30", "--json"))
    assert set(out) == {"as_of", "by", "filter", "year", "closed_loop", "flow", "inspection", "scorecard", "wall"}
    loop = {r["town"]: r for r in out["closed_loop"]}
    # 甲镇: H1-H6 as in test_governance, plus the 42 open cluster hazards of 06-15
    assert loop["甲镇"]["discovered"] == 48 and loop["甲镇"]["closed"] == 4
    assert loop["乙镇"]["rectification_rate"] == 0.5
    assert out["flow"][-1] == {"month": "2025-06-01", "discovered": 45, "closed": 2}
    assert [r["rank"] for r in out["scorecard"]] == [1, 2]
    assert out["wall"]["open_hazards"] == 4 + 42 and out["wall"]["as_of"] == "2025-06-30T00:00:00"
    insp = {(r["town"], r["inspection_class"]): r["compliance"] for r in out["inspection"]}
    assert insp[("甲镇", 1)] == 0.5


def test_figures_sections_by_grid_and_month(db: Path):
    out = json.loads(invoke("figures", "closed-loop", "inspection", "--db", str(db), "--by", "grid",
                            "--monthly", "--as-of", "2025-06-30", "--town", "乙镇", "--json"))
    assert set(out) == {"as_of", "by", "filter", "closed_loop", "inspection"}
    assert out["by"] == ["grid_id", "month"]
    assert [(r["grid_id"], r["month"], r["discovered"]) for r in out["closed_loop"]] == [
        ("G4", "2024-11-01", 1), ("G4", "2025-05-01", 1), ("G4", "2025-06-01", 2)]
    assert {r["grid_id"] for r in out["inspection"]} == {"G4"}
    text = invoke("figures", "wall", "--db", str(db), "--as-of", "2025-06-25 12:00")
    assert "未结案 4" in text and "今日警情 1" in text


def test_figures_of_a_period_are_taken_as_it_ends(db: Path):
    # no --as-of: figures as of the end of --to (2025-07-01), not now. 乙镇 before July: H7 open,
    # H8 and H10 closed, H9 (区级挂牌) closed only on 07-05, so still open and listed as June ends.
    out = json.loads(invoke("figures", "closed-loop", "scorecard", "--db", str(db), "--to", "2025-07-01", "--json"))
    assert out["as_of"] == "2025-07-01T00:00:00" and out["year"] == 2025
    town = {r["town"]: r for r in out["closed_loop"]}["乙镇"]
    assert (town["discovered"], town["closed"], town["listed_open"]) == (4, 2, 1)
    # a period that has not ended is taken now
    future = json.loads(invoke("figures", "closed-loop", "--db", str(db), "--to", "2999-01-01", "--json"))
    assert future["as_of"] < "2999" and {r["town"]: r for r in future["closed_loop"]}["乙镇"]["closed"] == 3
