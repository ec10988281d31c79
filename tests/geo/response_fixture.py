"""A hand-made district for measured response: 1 fire station, 2 micro stations, 15 calls.

Every figure the tests expect is worked out by hand in the test files from the times below
(targets: micro station turnout ≤ 60 s, on scene ≤ 180 s; fire station turnout ≤ 60 s, on scene
≤ 300 s from the call). Files go through the real ``onemap ingest``.

| call | town | units (出动力量) | turnout | travel | total | note |
|---|---|---|---|---|---|---|
| I01 | 甲镇 | WZ1 | 30 | 120 | 150 | 2025-03 |
| I02 | 甲镇 | 幸福微站 (WZ1 by name) | 60 | 120 | 180 | on the targets: met |
| I03 | 甲镇 | WZ1 | 90 | 150 | 240 | |
| I04 | 甲镇 | WZ1；FS1 | 45 | 155 | 200 | 2025-04 |
| I05 | 乙镇 | 和平微站、城东消防站 | 20 | 80 | 100 | WZ2 first |
| I06 | 乙镇 | WZ2 | 70 | — | — | no arrival (误报) |
| I07 | 甲镇 | FS1；WZ1 | 50 | 240 | 290 | |
| I08 | 乙镇 | 城东消防站 | 80 | 340 | 420 | 2025-04 |
| I09 | 甲镇 | FS1 | — | — | 300 | only 到场用时 (legacy) |
| I10 | 乙镇 | 不存在站；WZ1 | 40 | 90 | 130 | first unit unknown |
| I11 | 甲镇 | (none) | 100 | 300 | 400 | 2025-04 |
| I12 | 甲镇 | WZ1 | 10 | 50 | 60 | 2025-05: outside March-April |
| R1 | | | | | | arrival before the call: rejected (time_order) |
| R2 | | | | | | rolling two days after the call: rejected (interval_too_long) |
| R3 | | | | | | kind {{7*7}}: rejected (unknown_value) |
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

STATIONS = """编号,名称,类型,状态,经度,纬度
FS1,城东消防站,消防救援站,在役,121.230,31.010
"""
MICRO = """编号,名称,类型,状态,经度,纬度
WZ1,幸福微站,社区,在用,121.220,31.000
WZ2,和平微站,社区,在用,121.225,31.005
"""
INCIDENTS = """警情编号,警情类型,接警时间,出动时间,到场时间,出动力量,到场用时,状态,街镇,经度,纬度
I01,火灾,2025-03-01 10:00:00,2025-03-01 10:00:30,2025-03-01 10:02:30,WZ1,,已处置,甲镇,121.221,31.001
I02,火灾,2025-03-05 10:00:00,2025-03-05 10:01:00,2025-03-05 10:03:00,幸福微站,,已处置,甲镇,121.221,31.001
I03,烟感报警,2025-03-10 10:00:00,2025-03-10 10:01:30,2025-03-10 10:04:00,WZ1,,已处置,甲镇,121.221,31.001
I04,烟感报警,2025-04-02 10:00:00,2025-04-02 10:00:45,2025-04-02 10:03:20,WZ1；FS1,,已处置,甲镇,121.221,31.001
I05,火灾,2025-03-15 10:00:00,2025-03-15 10:00:20,2025-03-15 10:01:40,和平微站、城东消防站,,已处置,乙镇,121.226,31.006
I06,其他,2025-04-20 10:00:00,2025-04-20 10:01:10,,WZ2,,误报,乙镇,121.226,31.006
I07,火灾,2025-03-20 10:00:00,2025-03-20 10:00:50,2025-03-20 10:04:50,FS1；WZ1,,已处置,甲镇,121.231,31.011
I08,火灾,2025-04-10 10:00:00,2025-04-10 10:01:20,2025-04-10 10:07:00,城东消防站,,已处置,乙镇,121.231,31.011
I09,燃气泄漏,2025-04-25 10:00:00,,,FS1,300,已处置,甲镇,121.231,31.011
I10,火灾,2025-03-25 10:00:00,2025-03-25 10:00:40,2025-03-25 10:02:10,不存在站；WZ1,,已处置,乙镇,121.226,31.006
I11,火灾,2025-04-28 10:00:00,2025-04-28 10:01:40,2025-04-28 10:06:40,,,已处置,甲镇,121.221,31.001
I12,火灾,2025-05-03 10:00:00,2025-05-03 10:00:10,2025-05-03 10:01:00,WZ1,,已处置,甲镇,121.221,31.001
R1,火灾,2025-03-02 10:00:00,2025-03-02 10:00:30,2025-03-02 09:59:00,WZ1,,已处置,甲镇,121.221,31.001
R2,火灾,2025-03-03 10:00:00,2025-03-05 10:00:30,2025-03-05 10:02:00,WZ1,,已处置,甲镇,121.221,31.001
R3,{{7*7}},2025-03-04 10:00:00,2025-03-04 10:00:30,2025-03-04 10:02:00,WZ1,,已处置,甲镇,121.221,31.001
"""


def build(directory: Path) -> tuple[Path, list[str]]:
    """Write the three files, ingest them with ``onemap ingest`` into a new database; return
    (database, the incident ingest's JSON output)."""
    from dashboard.cli import cli

    db = directory / "response.duckdb"
    outputs = []
    for layer, name, text in (("fire_station", "stations.csv", STATIONS), ("micro_station", "micro.csv", MICRO),
                              ("incident", "incidents.csv", INCIDENTS)):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        result = CliRunner().invoke(cli, ["ingest", layer, str(path), "--db", str(db), "--json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    return db, outputs
