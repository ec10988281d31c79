"""`onemap simulate` against a real server: it posts at about the asked rate and its events land;
hostile arguments are one clear line."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedkit import Served, onemap, peek, serve, token, wait_folded


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("simulate")
    db = root / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    config = root / "onemap.toml"
    config.write_text("live_fold_s = 0.5\n", encoding="utf-8")
    with serve(db, config) as running:
        yield running


def test_the_simulator_posts_at_about_the_rate_and_its_events_land(served: Served) -> None:
    tok = token(served.db, "simulator", "hazard,incident,alarm,device")
    done = onemap("simulate", "--url", served.url, "--token", tok, "--rate", "10/s", "--duration", "4",
                  "--db", str(served.db), "--seed", "11", "--workers", "8", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["by_status"] == {"201": out["sent"]}, out["refusals"]  # the closed loop never skipped a step
    assert 25 <= out["sent"] <= 41, out  # 10/s for 4 s (the schedule never runs ahead)
    assert out["rate"] <= 10.5, out
    assert set(out["by_layer"]) >= {"device", "alarm"}
    wait_folded(served.db)
    prefix = "SIM11-%"
    landed = {layer: peek(served.db, f"SELECT count(*) FROM {layer} WHERE id LIKE ?", [prefix])[0][0]
              for layer in ("device", "alarm", "hazard")}
    assert landed["device"] >= 60  # the setup batch
    assert landed["alarm"] >= 1
    steps = peek(served.db, "SELECT count(*) FROM live_history WHERE id LIKE ? AND field = 'status' AND old IS NOT NULL",
                 [prefix])[0][0]
    beats = peek(served.db, "SELECT count(*) FROM live_history WHERE id LIKE ? AND field = 'last_seen_at' "
                            "AND old IS NOT NULL", [prefix])[0][0]
    assert steps + beats >= 1  # updates of what it created earlier (heartbeats, closed-loop steps) landed too


@pytest.mark.parametrize("args, words", [
    (["--rate", "fast"], "20/s"),
    (["--rate", "0/s"], "above 0"),
    (["--rate", "1e9"], "20/s"),
    (["--rate", "100000/s"], "at most"),
    (["--rate", "{{7*7}}"], "20/s"),
    (["--url", "javascript:alert(1)"], "the app's address"),
    (["--duration", "nan"], "duration"),
    (["--workers", "-1"], "workers"),
])
def test_hostile_arguments_are_one_clear_line(args: list[str], words: str) -> None:
    done = onemap("simulate", "--token", "om_x", "--duration", "1", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert words in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_app_or_a_wrong_token_is_said(served: Served) -> None:
    done = onemap("simulate", "--url", served.url, "--token", "om_not_a_token", "--duration", "1")
    assert done.returncode == 2 and "401" in done.stderr and "Traceback" not in done.stderr
