"""Settings: every domain number is documented and overridable."""

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
