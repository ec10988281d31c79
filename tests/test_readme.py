"""The README is the first thing a fire office reads: its commands and settings must be true."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from geo.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    first_block = re.search(r"```bash\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_documented_in_the_readme():
    missing = [f.name for f in fields(Settings) if f"`{f.name}`" not in README]
    assert missing == []


def test_every_cli_command_is_in_the_readme():
    from dashboard.cli import cli

    missing = [name for name in cli.commands if f"onemap {name}" not in README]
    assert missing == []
