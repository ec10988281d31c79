"""The IoT alarm and device layers through the feed API on a real server and a real DuckDB file,
and the device online rate (a device silent longer than ``device_offline_after_s`` is offline)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from feedkit import CENTRE, Served, peek, post, serve, token, update, wait_folded
from geo import devices, journal, live
from geo.settings import Settings

NOW = datetime.now().replace(microsecond=0)


def at(seconds_ago: float) -> str:
    """A time ``seconds_ago`` before now — now when called, not when the module was collected (the
    whole suite runs for many minutes before this file's tests)."""
    return (datetime.now() - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%d %H:%M:%S")


def alarm(aid: str, **props) -> dict:
    base = {"告警编号": aid, "设备编码": f"D-{aid}", "设备类型": "独立式烟感", "告警级别": "火警", "告警时间": at(60),
            "状态": "待确认"}
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(CENTRE)}, "properties": {**base, **props}}


def device(did: str, kind: str, seen: str | None) -> dict:
    props = {"设备编号": did, "设备类型": kind}
    if seen is not None:
        props["心跳时间"] = seen
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(CENTRE)}, "properties": props}


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("alarm")
    db = root / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    config = root / "onemap.toml"
    config.write_text("live_fold_s = 0.3\n", encoding="utf-8")
    with serve(db, config) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    return {"iot": token(served.db, "iot-platform", "alarm,device"), "hazard": token(served.db, "grid", "hazard")}


def test_an_alarm_with_platform_headers_lands_with_canonical_values(served: Served, tokens: dict[str, str]) -> None:
    status, body = post(served.url, "alarm", alarm("AL-1"), tokens["iot"])
    assert status == 201 and body["ids"] == ["AL-1"], body
    wait_folded(served.db)
    rows = peek(served.db, "SELECT device_id, kind, level, status, town FROM alarm WHERE id = 'AL-1'")
    assert rows[0][:4] == ("D-AL-1", "烟感", "火警", "未确认") and rows[0][4]


def test_acknowledge_and_close_are_partial_updates_with_history(served: Served, tokens: dict[str, str]) -> None:
    assert post(served.url, "alarm", alarm("AL-2"), tokens["iot"])[0] == 201
    assert post(served.url, "alarm", update("AL-2", status="已确认", acknowledged_at=at(30)), tokens["iot"])[0] == 201
    assert post(served.url, "alarm", update("AL-2", **{"处理状态": "关闭", "closed_at": at(10)}), tokens["iot"])[0] == 201
    wait_folded(served.db)
    assert peek(served.db, "SELECT status, acknowledged_at IS NOT NULL, closed_at IS NOT NULL, device_id "
                           "FROM alarm WHERE id = 'AL-2'") == [("已关闭", True, True, "D-AL-2")]
    changes = peek(served.db, "SELECT field, old, new FROM live_history WHERE id = 'AL-2' AND field = 'status' "
                              "ORDER BY seq")
    assert [(o, n) for _, o, n in changes] == [(None, "未确认"), ("未确认", "已确认"), ("已确认", "已关闭")]


def test_a_hazard_token_is_refused_on_alarm(served: Served, tokens: dict[str, str]) -> None:
    status, body = post(served.url, "alarm", alarm("AL-403"), tokens["hazard"])
    assert status == 403, body


@pytest.mark.parametrize("props, field", [
    ({"设备类型": "{{7*7}}"}, "kind"),
    ({"告警级别": "<script>alert(1)</script>"}, "level"),
    ({"告警时间": "' OR 1=1 --"}, "alarm_at"),
    ({"告警时间": "NaN"}, "alarm_at"),
    ({"设备编码": None}, "device_id"),
    ({"设备类型": {"$ne": 1}}, "kind"),
    ({"告警级别": ["火警"] * 10000}, "level"),
    ({"告警时间": at(10), "确认时间": at(600)}, "acknowledged_at"),  # acknowledged before it was raised
])
def test_hostile_alarm_values_answer_400_with_the_field(served: Served, tokens: dict[str, str], props: dict,
                                                         field: str) -> None:
    status, body = post(served.url, "alarm", alarm("AL-bad", **props), tokens["iot"])
    assert status == 400, body
    if "error" in body:  # refused whole (a list longer than the API takes): a sentence, not a field
        assert field == "level" and "1000" in body["error"].replace(",", ""), body
        return
    assert body["accepted"] == 0 and any(field in str(r["field"]) for r in body["rejected"]), body


@pytest.mark.parametrize("raw", [
    b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [Infinity, 31]}, "properties": {}}',
    json.dumps({"type": "Feature", "geometry": None, "properties": ["not", "an", "object"]}).encode(),
    json.dumps({"type": "Feature", "geometry": None, "properties": {"id": "no-such-alarm", "status": "已关闭"}}).encode(),
    b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": "121,31"}, "properties": {"a": {"b": {"c": []}}}}',
])
def test_hostile_alarm_bodies_answer_4xx_never_500(served: Served, tokens: dict[str, str], raw: bytes) -> None:
    status, body = post(served.url, "alarm", raw, tokens["iot"])
    assert status is not None and 400 <= status < 500, (status, body)


def test_online_rate_counts_a_device_silent_past_the_setting_offline(served: Served, tokens: dict[str, str]) -> None:
    limit = Settings().device_offline_after_s
    batch = {"type": "FeatureCollection", "features": [
        device("DV-fresh", "烟感", at(60)),
        device("DV-silent", "烟感", at(limit + 120)),        # silent longer than the setting
        device("DV-never", "烟感", None),                   # never beat
        device("DV-pile", "电动自行车充电桩", at(limit + 600)),
    ]}
    assert post(served.url, "device", batch, tokens["iot"])[0] == 201
    wait_folded(served.db)

    def rates() -> dict[str, tuple[int, int]]:
        copy = served.db.with_name("rate-copy.duckdb")
        shutil.copyfile(served.db, copy)
        con = duckdb.connect(str(copy), read_only=True)
        try:
            upto, _ = live.folded_seq(con)
            frame = devices.online_rate(con, journal.current_rows(served.db, "device", after=upto), datetime.now(),
                                        limit)
        finally:
            con.close()
            copy.unlink()
        return {r.kind: (r.devices, r.online) for r in frame.itertuples() if r.devices}

    before = rates()
    assert before["烟感"] == (3, 1) and before["电动自行车充电桩"] == (1, 0)
    # a heartbeat (a partial update) brings the pile back online at once, before any fold reads it
    assert post(served.url, "device", update("DV-pile", last_seen_at=at(5)), tokens["iot"])[0] == 201
    assert rates()["电动自行车充电桩"] == (1, 1)
    wait_folded(served.db)
    assert rates()["电动自行车充电桩"] == (1, 1)


def test_online_rate_follows_the_setting_and_the_town_scope(copy_demo_db: Path) -> None:
    from geo import store
    import geopandas as gpd

    town = peek(copy_demo_db, "SELECT town FROM grid WHERE town IS NOT NULL LIMIT 1")[0][0]
    frame = gpd.GeoDataFrame({"id": ["S1", "S2"], "kind": ["消防水压", "消防水压"],
                              "last_seen_at": [NOW - timedelta(seconds=100), NOW - timedelta(seconds=10)],
                              "town": [town, "别的镇"]},
                             geometry=gpd.points_from_xy([CENTRE[0]] * 2, [CENTRE[1]] * 2), crs=4326)
    with store.writer(copy_demo_db) as con:
        store.write_layer(con, "device", frame)
    con = duckdb.connect(str(copy_demo_db), read_only=True)
    try:
        strict = devices.online_rate(con, {}, NOW, 60).set_index("kind").loc["消防水压"]
        loose = devices.online_rate(con, {}, NOW, 900).set_index("kind").loc["消防水压"]
        mine = devices.online_rate(con, {}, NOW, 60, towns=[town]).set_index("kind").loc["消防水压"]
    finally:
        con.close()
    assert (strict.devices, strict.online, strict.rate) == (2, 1, 0.5)
    assert (loose.devices, loose.online) == (2, 2)
    assert (mine.devices, mine.online) == (1, 0)


def test_a_database_made_before_the_iot_layers_is_served_with_them(demo_db: Path, tmp_path: Path) -> None:
    """An older file (no alarm/device tables) gets them when served, instead of a 500 on every page."""
    from feedkit import fetch

    db = tmp_path / "old.duckdb"
    shutil.copyfile(demo_db, db)
    with duckdb.connect(str(db)) as con:
        con.execute("DROP TABLE alarm")
        con.execute("DROP TABLE device")
    with serve(db) as running:
        for path in ("/wall", "/api/layer/alarm/points.geojson", "/api/layer/device/points.geojson"):
            assert fetch(running.url + path)[0] == 200, path
        assert "adding the tables of the new layers alarm, device" in running.log.read_text()
    assert peek(db, "SELECT count(*) FROM alarm") == [(0,)]
