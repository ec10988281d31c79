"""`onemap ingest`: summary, JSON, exit codes and one-line errors, run through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dashboard.cli import main

ROWS = pd.DataFrame(
    {
        "编号": ["H1", "H2", "H3"],
        "名称": ["甲", "乙", "丙"],
        "状态": ["正常", "损坏", "良好"],
        "经度": [121.2234, 121.2301, 121.2415],
        "纬度": [31.0321, 31.0405, 31.0288],
    }
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_summary_and_exit_zero_with_rejects(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "消火栓.csv"
    ROWS.to_csv(path, index=False, encoding="gbk")
    code, out, _ = run(
        ["ingest", "hydrant", str(path), "--db", str(tmp_db), "--crs", "wgs84"], capsys
    )
    assert code == 0
    assert "接收 accepted           2" in out and "拒收 rejected           1" in out
    assert "取值不在允许范围内 (unknown_value): 1" in out
    assert "gb18030" in out and "经度→lon" in out


def test_json_output(tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.csv"
    ROWS.to_csv(path, index=False)
    code, out, _ = run(["ingest", "hydrant", str(path), "--db", str(tmp_db), "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert (data["accepted"], data["rejected"], data["rejected_by_reason"]) == (
        2,
        1,
        {"unknown_value": 1},
    )
    assert data["layer"] == "hydrant" and data["crs"] == "wgs84" and len(data["sha256"]) == 64


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hydrant", "{tmp}/nope.csv"], "nope.csv: file not found"),
        (["hydrant", "{tmp}/h.csv", "--crs", "mars"], "unknown CRS 'mars'"),
        (
            ["hydrant", "{tmp}/noxy.csv"],
            "no coordinate columns found; headers seen: 编号, 名称, 状态",
        ),
        (["hydrant", "{tmp}/h.csv", "--lon", "X", "--lat", "纬度"], "column 'X' (--lon) not found"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(
    tmp_path: Path, tmp_db: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    ROWS.to_csv(tmp_path / "h.csv", index=False)
    ROWS.drop(columns=["经度", "纬度"]).to_csv(tmp_path / "noxy.csv", index=False)
    argv = ["ingest", *[a.format(tmp=tmp_path) for a in args], "--db", str(tmp_db)]
    code, out, err = run(argv, capsys)
    assert code == 2
    assert message in err and err.startswith("onemap: ") and err.count("\n") == 1


def test_unknown_layer_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["ingest", "hydrants", str(tmp_path / "x.csv")], capsys)
    assert code == 2 and "hydrant" in err
