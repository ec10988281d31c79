"""Settings: every domain number is documented and overridable."""

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from geo.errors import ConfigError
from geo.settings import Settings


def test_every_setting_names_its_source_or_meaning():
    undocumented = [f.name for f in fields(Settings) if len(f.metadata.get("help", "")) < 15]
    assert undocumented == []


def test_standard_defaults():
    s = Settings()
    assert s.micro_station_minutes == 3.0  # 1-3-5 rule
    assert s.fire_station_minutes == 5.0  # 建标152-2017
    assert s.hydrant_protection_radius_m == 150.0  # GB 50974
    assert s.hydrant_max_spacing_m == 120.0


def test_toml_file_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ONEMAP_DB", raising=False)
    cfg = tmp_path / "onemap.toml"
    cfg.write_text("[onemap]\nmicro_station_minutes = 4.0\nport = 9000\n", encoding="utf-8")
    s = Settings.load(cfg, port=9100)
    assert s.micro_station_minutes == 4.0
    assert s.port == 9100


def test_unknown_setting_is_named(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("micro_minutes = 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="micro_minutes"):
        Settings.load(cfg)


BAD_VALUES = [
    ("micro_station_minutes", "'three'", "three"),
    ("micro_station_minutes", "-3.0", "-3.0"),
    ("fire_station_minutes", "nan", "nan"),
    ("hydrant_max_spacing_m", "inf", "inf"),
    ("hydrant_protection_radius_m", "[150.0]", "[150.0]"),
    ("port", "8050.5", "8050.5"),
    ("hotspot_fdr_alpha", "1.5", "1.5"),
    ("isochrone_minutes", "[1.0, 'five']", "five"),
    ("isochrone_minutes", "{ a = 1 }", "{'a': 1}"),
    ("hydrant_working_statuses", "[1, 2]", "1"),
    ("hotspot_resolution", "16", "16"),
    ("micro_station_turnout_s", "{ a = { b = { c = 1 } } }", "'c': 1"),
    ("db_path", "[1, 2]", "[1, 2]"),
]


@pytest.mark.parametrize(("name", "toml_value", "shown"), BAD_VALUES)
def test_a_value_of_the_wrong_type_or_range_in_onemap_toml_names_setting_and_value(
    tmp_path: Path, name: str, toml_value: str, shown: str
):
    cfg = tmp_path / "onemap.toml"
    cfg.write_text(f"[onemap]\n{name} = {toml_value}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Settings.load(cfg)
    message = str(info.value)
    assert name in message and shown in message and str(cfg) in message


def test_unknown_key_in_a_dict_setting_is_named_with_the_known_keys(tmp_path: Path):
    cfg = tmp_path / "onemap.toml"
    cfg.write_text('[onemap.hazard_deadline_days]\n"一般" = 15\n"特大" = 5\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hazard_deadline_days.*特大.*一般"):
        Settings.load(cfg)
    cfg.write_text('[onemap.road_speeds_kmh]\ndefault = 30\nprimary = "fast"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"road_speeds_kmh\['primary'\].*fast"):
        Settings.load(cfg)


def test_overrides_are_checked_too():
    with pytest.raises(ConfigError, match=r"warning_period_days.*-7"):
        Settings().with_overrides(warning_period_days=-7)
    with pytest.raises(ConfigError, match=r"micro_station_minutes.*True"):
        Settings(micro_station_minutes=True)
    assert Settings.load(None, micro_station_minutes=4).micro_station_minutes == 4


def test_cli_reports_a_bad_setting_in_one_line_with_exit_code_2(tmp_path: Path):
    (tmp_path / "onemap.toml").write_text(
        "[onemap]\nmicro_station_minutes = 'three'\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ONEMAP_CONFIG", "ONEMAP_DB")}
    onemap = Path(sys.executable).parent / "onemap"
    run = subprocess.run(
        [str(onemap), "hotspots", "--db", str(tmp_path / "x.duckdb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    assert "micro_station_minutes" in run.stderr and "three" in run.stderr
    # a CLI option outside its range: the same clean message
    (tmp_path / "onemap.toml").write_text("[onemap]\nmicro_station_minutes = 4\n", encoding="utf-8")
    run = subprocess.run(
        [str(onemap), "serve", "--port", "70000", "--db", str(tmp_path / "x.duckdb")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "port" in run.stderr and "70000" in run.stderr


def test_every_default_passes_its_own_check():
    # Settings() skips values equal to their default, so the defaults must be valid
    from dataclasses import MISSING

    from geo.settings_check import check_value

    for f in fields(Settings):
        default = f.default_factory() if f.default is MISSING else f.default
        check_value(f, default, default)
