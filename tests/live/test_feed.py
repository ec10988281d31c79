"""The feed API on a real server and a real DuckDB file: status codes, partial updates, the closed
loop, idempotent retries, token scope, hostile bodies, and what lands in the database."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedkit import Served, hazard, journal_head, onemap, peek, post, serve, token, update, wait_folded


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("feed")
    db = root / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    config = root / "onemap.toml"
    config.write_text("live_fold_s = 0.3\nlive_max_body_kb = 64.0\n", encoding="utf-8")
    with serve(db, config) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(served: Served) -> dict[str, str]:
    return {"hazard": token(served.db, "hotline12345", "hazard"),
            "incident": token(served.db, "iot-platform", "incident")}


def test_a_new_hazard_answers_201_and_lands_in_the_database(served: Served, tokens: dict[str, str]) -> None:
    status, body = post(served.url, "hazard", hazard("L-new-1", description="楼道堆物"), tokens["hazard"])
    assert status == 201, body
    assert body == {"accepted": 1, "rejected": [], "ids": ["L-new-1"], "unchanged": 0}
    wait_folded(served.db)
    rows = peek(served.db, "SELECT status, category, town, source_file, description FROM hazard WHERE id = ?",
                ["L-new-1"])
    assert rows == [("发现", "其他", rows[0][2], "feed:hotline12345", "楼道堆物")]
    assert rows[0][2]  # the town was filled from the grid layer, as a file ingest fills it
    time.sleep(1.0)  # the audit rows are written within AuditQueue.FLUSH_S
    audit = peek(served.db.with_name("demo.control.duckdb"),
                 "SELECT actor, action, object FROM audit WHERE action = 'event' ORDER BY seq DESC LIMIT 1")
    assert audit[0][0] == "token:hotline12345" and audit[0][2].startswith("hazard:")


def test_nothing_accepted_answers_400_with_the_same_shape_and_keeps_the_rejections(
        served: Served, tokens: dict[str, str]) -> None:
    bad = hazard("L-bad-1", **{"隐患类别": "{{7*7}}"})
    bad2 = hazard("L-bad-2", at="<script>alert(1)</script>")
    status, body = post(served.url, "hazard", {"type": "FeatureCollection", "features": [bad, bad2]},
                        tokens["hazard"])
    assert status == 400, body
    assert body["accepted"] == 0 and body["ids"] == []
    assert {(r["index"], r["field"]) for r in body["rejected"]} >= {(0, "category")}
    assert {r["index"] for r in body["rejected"]} == {0, 1}
    assert all(set(r) >= {"index", "field", "reason", "value"} for r in body["rejected"])
    wait_folded(served.db)
    kept = peek(served.db, "SELECT field, reason, value FROM rejected WHERE file = 'feed:hotline12345' "
                           "AND raw LIKE '%L-bad-1%'")
    assert ("category", "unknown_value", "{{7*7}}") in kept


def test_without_a_valid_token_401_and_nothing_is_stored(served: Served, tokens: dict[str, str]) -> None:
    before = journal_head(served.db)
    good = tokens["hazard"]
    wrong_secret = good[:-1] + ("B" if good.endswith("A") else "A")
    for tok in (None, "", "om_000000000000.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", wrong_secret,
                "' OR 1=1 --", "{{7*7}}", "<script>", "x" * 3000):
        status, body = post(served.url, "hazard", hazard("L-nope"), tok)
        assert status == 401 and "token" in body["error"], (tok, body)
    assert journal_head(served.db) == before


def test_a_token_writes_only_its_layers_403(served: Served, tokens: dict[str, str]) -> None:
    status, body = post(served.url, "incident", hazard("L-x"), tokens["hazard"])
    assert status == 403 and "incident" in body["error"], body
    status, body = post(served.url, "hazard", hazard("L-y"), tokens["incident"])
    assert status == 403, body
    status, body = post(served.url, "grid", hazard("L-z"), tokens["hazard"])
    assert status == 404, body


def test_a_revoked_token_stops_at_once(served: Served) -> None:
    tok = token(served.db, "temporary", "hazard")
    assert post(served.url, "hazard", hazard("L-rev-1"), tok)[0] == 201
    listed = onemap("token", "list", "--json", "--db", str(served.db))
    row = next(r for r in json.loads(listed.stdout) if r["source"] == "temporary")
    assert "secret" not in listed.stdout and tok.split(".")[1] not in listed.stdout
    assert onemap("token", "revoke", row["id"], "--db", str(served.db)).returncode == 0
    time.sleep(0.6)  # tokens.CHECK_S: the server re-reads the control file at most this often
    assert post(served.url, "hazard", hazard("L-rev-2"), tok)[0] == 401


def test_over_the_size_limit_413(served: Served, tokens: dict[str, str]) -> None:
    big = hazard("L-big", description="隐" * 40_000)  # 120 KB > live_max_body_kb = 64
    status, body = post(served.url, "hazard", big, tokens["hazard"])
    assert status == 413, body


@pytest.mark.parametrize("raw, content_type, expected", [
    (b"{not json", "application/json", 400),
    (b'{"type": "Feature", "geometry": {"type": "Point", "coordinates": [NaN, 31]}, "properties": {}}',
     "application/json", 400),
    (b"[]", "application/json", 400),
    (b'{"type": "Topology"}', "application/json", 400),
    (b'{"type": "FeatureCollection", "features": {"a": 1}}', "application/json", 400),
    (b'{"type": "FeatureCollection", "features": []}', "application/json", 400),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    (b'{"type": "Feature", "crs": "EPSG:99999999", "geometry": null, "properties": {}}', "application/json", 400),
    (b'{"type": "Feature"}', "text/plain", 415),
    (b"\xff\xfe\x00", "application/json", 400),
])
def test_hostile_bodies_answer_4xx_never_500(served: Served, tokens: dict[str, str], raw: bytes,
                                             content_type: str, expected: int) -> None:
    status, body = post(served.url, "hazard", raw, tokens["hazard"], content_type=content_type)
    assert status == expected, body
    assert "error" in body or "rejected" in body


def test_hostile_values_are_judged_as_file_cells_and_stored_verbatim(served: Served, tokens: dict[str, str]) -> None:
    nasty = "<script>alert(1)</script>' OR 1=1 -- {{7*7}}"
    features = [hazard("L-nasty", description=nasty),
                hazard("L-nested", **{"隐患等级": {"$ne": 1}}),
                hazard("L-inf", lonlat=(1e308, 31.0)),
                {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": []}, "properties": {}},
                "not a feature"]
    status, body = post(served.url, "hazard", {"type": "FeatureCollection", "features": features}, tokens["hazard"])
    assert status == 201, body
    assert body["ids"] == ["L-nasty"]
    assert {r["index"] for r in body["rejected"]} == {1, 2, 3, 4}
    wait_folded(served.db)
    assert peek(served.db, "SELECT description FROM hazard WHERE id = 'L-nasty'") == [(nasty,)]


def test_a_partial_update_changes_only_its_fields_and_keeps_history(served: Served, tokens: dict[str, str]) -> None:
    tok = tokens["hazard"]
    assert post(served.url, "hazard", hazard("L-loop", description="原描述"), tok)[0] == 201
    status, body = post(served.url, "hazard", update("L-loop", 状态="立案", 挂牌督办="街镇挂牌"), tok)
    assert status == 201 and body["ids"] == ["L-loop"], body
    wait_folded(served.db)
    row = peek(served.db, "SELECT status, supervision, description, filed_at IS NOT NULL, lon, lat "
                          "FROM hazard WHERE id = 'L-loop'")
    assert row == [("立案", "街镇挂牌", "原描述", True, pytest.approx(121.228), pytest.approx(31.032))]
    history = peek(served.db, "SELECT field, old, new, source FROM live_history WHERE id = 'L-loop' ORDER BY seq")
    assert ("status", "发现", "立案", "hotline12345") in history
    assert ("supervision", None, "街镇挂牌", "hotline12345") in history
    assert ("status", None, "发现", "hotline12345") in history


def test_the_closed_loop_refuses_skips_and_closing_without_verification(
        served: Served, tokens: dict[str, str]) -> None:
    tok = tokens["hazard"]
    assert post(served.url, "hazard", hazard("L-flow"), tok)[0] == 201
    status, body = post(served.url, "hazard", update("L-flow", status="处置"), tok)  # skips 立案, 派遣
    assert status == 400 and body["rejected"][0]["reason"] == "transition_not_allowed", body
    for step in ("立案", "派遣", "处置"):
        assert post(served.url, "hazard", update("L-flow", status=step), tok)[0] == 201
    status, body = post(served.url, "hazard", update("L-flow", status="结案"), tok)  # no 核查
    assert status == 400 and "核查" in body["rejected"][0]["detail"], body
    assert post(served.url, "hazard", update("L-flow", status="核查"), tok)[0] == 201
    assert post(served.url, "hazard", update("L-flow", status="结案"), tok)[0] == 201
    status, body = post(served.url, "hazard", update("L-flow", status="派遣"), tok)  # closed: not without reopen
    assert status == 400 and "reopen" in body["rejected"][0]["detail"], body
    status, body = post(served.url, "hazard", update("L-flow", status="派遣", reopen=True), tok)
    assert status == 201, body
    wait_folded(served.db)
    assert peek(served.db, "SELECT status, closed_at, verified_at FROM hazard WHERE id = 'L-flow'") == [
        ("派遣", None, None)]
    moves = peek(served.db, "SELECT old, new FROM live_history WHERE id = 'L-flow' AND field = 'status' ORDER BY seq")
    assert moves == [(None, "发现"), ("发现", "立案"), ("立案", "派遣"), ("派遣", "处置"), ("处置", "核查"),
                     ("核查", "结案"), ("结案", "派遣")]


def test_on_the_spot_rectification_closes_without_verification(served: Served, tokens: dict[str, str]) -> None:
    tok = tokens["hazard"]
    assert post(served.url, "hazard", hazard("L-spot"), tok)[0] == 201
    status, body = post(served.url, "hazard", update("L-spot", status="结案", 当场整改="是"), tok)
    assert status == 201, body
    wait_folded(served.db)
    assert peek(served.db, "SELECT status, on_spot, closed_at IS NOT NULL FROM hazard WHERE id = 'L-spot'") == [
        ("结案", True, True)]


def test_a_retried_post_is_stored_once(served: Served, tokens: dict[str, str]) -> None:
    tok = tokens["hazard"]
    body = {"type": "FeatureCollection", "features": [hazard("L-twice"), hazard(None, at="2026-12-04 09:00:00")]}
    first = post(served.url, "hazard", body, tok)
    head = journal_head(served.db)
    again = post(served.url, "hazard", body, tok)
    assert first[0] == again[0] == 201, (first, again)
    assert again[1]["ids"] == first[1]["ids"] and again[1]["unchanged"] == 2
    assert journal_head(served.db) == head  # nothing appended
    wait_folded(served.db)
    ids = first[1]["ids"]
    assert ids[1].startswith("hazard-")  # no id sent: a stable id from the content, as a file row gets
    assert peek(served.db, f"SELECT count(*) FROM hazard WHERE id IN ('{ids[0]}', '{ids[1]}')") == [(2,)]
    assert peek(served.db, f"SELECT count(*) FROM live_history WHERE id = '{ids[0]}' AND field = 'status'") == [(1,)]


def test_the_crs_member_and_aliases_place_the_record(served: Served, tokens: dict[str, str]) -> None:
    feature = hazard("L-gcj", lonlat=(121.2325, 31.0301))
    status, body = post(served.url, "hazard", {**feature, "crs": "gcj02"}, tokens["hazard"])
    assert status == 201, body
    wait_folded(served.db)
    lon, lat = peek(served.db, "SELECT lon, lat FROM hazard WHERE id = 'L-gcj'")[0]
    assert abs(lon - 121.2325) > 1e-3 and abs(lon - 121.2325) < 0.01  # GCJ-02 offset removed (~500 m)
    assert abs(lat - 31.0301) < 0.01


def test_the_status_route_goes_through_the_workflow(served: Served, tokens: dict[str, str]) -> None:
    """The app's own status change (a local server: no users) keeps history and is folded at once."""
    from feedkit import fetch

    assert post(served.url, "hazard", hazard("L-route"), tokens["hazard"])[0] == 201
    status, raw = fetch(f"{served.url}/api/v1/hazard/L-route/status", data=json.dumps({"status": "立案"}).encode(),
                        headers={"Content-Type": "application/json"}, method="POST")
    assert status == 200, raw
    assert peek(served.db, "SELECT status FROM hazard WHERE id = 'L-route'") == [("立案",)]
    status, raw = fetch(f"{served.url}/api/v1/hazard/L-route/status", data=json.dumps({"status": "结案"}).encode(),
                        headers={"Content-Type": "application/json"}, method="POST")
    assert status == 409 and "核查" in json.loads(raw)["error"], raw
