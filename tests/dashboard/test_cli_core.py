"""The `onemap` core commands as a user runs them: real subprocesses on a real database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from dashboard.cli import cli
from layers.registry import LAYERS

ONEMAP = [sys.executable, "-m", "dashboard.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ONEMAP, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_every_command_has_help():
    top = run("--help")
    assert top.returncode == 0
    commands = [line.split()[0] for line in top.stdout.split("Commands:")[1].strip().splitlines()]
    assert {"demo", "serve", "info", "layers", "settings", "ingest"} <= set(commands)
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
        assert "Usage:" in result.output and len(result.output) > 80


def test_layers_lists_every_spec_with_aliases():
    out = json.loads(run("layers", "--json").stdout)
    assert list(out) == list(LAYERS)
    hazard_fields = {f["name"]: f for f in out["hazard"]["fields"]}
    assert hazard_fields["status"]["choices"] == ["发现", "立案", "派遣", "处置", "核查", "结案"]
    assert "纬度" not in hazard_fields  # coordinates are not fields
    hydrant_status = {f["name"]: f for f in out["hydrant"]["fields"]}["status"]
    assert hydrant_status["value_aliases"]["完好"] == "正常"
    text = run("layers").stdout
    assert "室外消火栓" in text and "隐患等级" in text


def test_info_counts_the_demo(demo_db: Path):
    result = run("info", "--json", "--db", str(demo_db))
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["counts"]["hazard"] > 1000
    min_lon, min_lat, max_lon, max_lat = info["bounds"]["hydrant"]
    assert 120.9 < min_lon < max_lon < 121.5 and 30.7 < min_lat < max_lat < 31.3  # Songjiang


def test_info_honours_onemap_db_env(demo_db: Path):
    result = run("info", "--json", env={"ONEMAP_DB": str(demo_db)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["db"] == str(demo_db.resolve())


def test_missing_database_is_one_clear_line(tmp_path: Path):
    missing = tmp_path / "nope.duckdb"
    result = run("info", "--db", str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr and "onemap demo" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_settings_lists_sources():
    out = json.loads(run("settings", "--json").stdout)
    assert "建标152" in out["fire_station_minutes"]["help"]
    assert out["hydrant_protection_radius_m"]["default"] == 150.0


def test_info_reads_a_file_made_before_the_newest_layers(copy_demo_db: Path):
    """A file from an older onemap lacks the tables of layers added since (alarm, device): info
    counts them 0 instead of failing."""
    import duckdb

    con = duckdb.connect(str(copy_demo_db))
    con.execute("DROP TABLE IF EXISTS alarm")
    con.execute("DROP TABLE IF EXISTS device")
    con.close()
    result = CliRunner().invoke(cli, ["info", "--db", str(copy_demo_db), "--json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)["counts"]
    assert counts["alarm"] == counts["device"] == 0 and counts["hazard"] > 0
