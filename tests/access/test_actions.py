"""The audited actions on the real server with users: a hazard's status change (editors) and a scenario's
publish (planners). Who may, who gets 401/403, what the map then shows, the audit row each leaves, and
hostile bodies answered with 4xx — never a 500."""

from __future__ import annotations

import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import PASSWORD, Served, add_user, fetch, onemap, opener, serve, sign_in

from dashboard.access import audit

TOWN = "岳阳街道"
USERS = {"admin": ("admin", ()), "viewer": ("viewer", ()), "planner": ("planner", ()), "editor": ("editor", ()),
         "wall": ("wall", ()), "towned": ("editor", (TOWN,))}
EDIT = {"action": "add", "id": "new-1", "layer": "fire_station", "name": "新站", "lon": 121.225, "lat": 31.03}


@pytest.fixture(scope="module")
def served(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    db = tmp_path_factory.mktemp("actions") / "demo.duckdb"
    shutil.copyfile(demo_db, db)
    for name, (role, towns) in USERS.items():
        done = add_user(db, name, role, PASSWORD, towns)
        assert done.returncode == 0, done.stderr
    with serve(db) as running:
        yield running


@pytest.fixture(scope="module")
def clients(served: Served) -> dict[str, Any]:
    return {name: sign_in(served.url, name) for name in USERS}


def post(client: Any, url: str, body: Any, content_type: str = "application/json") -> tuple[int | None, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    status, _, raw = fetch(client, url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw[:300]


def hazards(db: Path, where: str, n: int = 1) -> list[tuple[str, str, str]]:
    """(id, status, town) of ``n`` hazards matching ``where``, read from a copy (the server owns the file)."""
    copy = db.with_name("peek.duckdb")
    shutil.copyfile(db, copy)
    con = duckdb.connect(str(copy), read_only=True)
    try:
        return con.execute(f"SELECT id, status, town FROM hazard WHERE {where} ORDER BY id LIMIT {n}").fetchall()
    finally:
        con.close()
        copy.unlink()


def popup_status(client: Any, base: str, hazard_id: str) -> str:
    status, _, raw = fetch(client, f"{base}/api/feature/hazard/{hazard_id}")
    assert status == 200, raw[:300]
    return dict(json.loads(raw)["rows"])["状态"]


def last_rows(db: Path, n: int = 1, **filters: str) -> list[dict[str, Any]]:
    return audit.rows(db, limit=n, **filters)


# --------------------------------------------------------------------------- status change


def test_an_editor_changes_a_status_the_map_shows_it_and_the_audit_has_before_and_after(
        served: Served, clients: dict[str, Any]) -> None:
    (hid, old, _), = hazards(served.db, "status = '结案' AND verified_at IS NOT NULL")
    assert popup_status(clients["viewer"], served.url, hid) == "结案"
    status, body = post(clients["editor"], f"{served.url}/api/v1/hazard/{hid}/status",
                        {"status": "处置", "note": "复查发现未整改"})
    assert status == 200, body
    assert body["before"]["status"] == "结案" and body["after"] == {"status": "处置", "verified_at": None,
                                                                   "closed_at": None}
    assert popup_status(clients["viewer"], served.url, hid) == "处置"
    assert hazards(served.db, f"id = '{hid}' AND closed_at IS NULL AND verified_at IS NULL") == [(hid, "处置", _)]
    row = last_rows(served.db, action="status-change")[0]
    assert (row["actor"], row["role"], row["object"], row["seq"]) == ("editor", "editor", f"hazard:{hid}",
                                                                      body["audit_seq"])
    assert row["before"]["status"] == "结案" and row["after"]["status"] == "处置"
    assert row["after"]["note"] == "复查发现未整改"
    again, body = post(clients["editor"], f"{served.url}/api/v1/hazard/{hid}/status", {"status": "处置"})
    assert again == 409 and "already" in body["error"]


def test_moving_forward_sets_the_steps_time_once(served: Served, clients: dict[str, Any]) -> None:
    (hid, _, _), = hazards(served.db, "status = '派遣' AND handled_at IS NULL")
    status, body = post(clients["admin"], f"{served.url}/api/v1/hazard/{hid}/status", {"status": "处置"})
    assert status == 200, body
    assert body["before"] == {"status": "派遣", "handled_at": None}
    assert body["after"]["status"] == "处置" and body["after"]["handled_at"].startswith("20")


@pytest.mark.parametrize("who, expected", [("viewer", 403), ("planner", 403), ("wall", 403), (None, 401)])
def test_who_may_not_change_a_status_is_refused_and_nothing_changes(
        served: Served, clients: dict[str, Any], who: str | None, expected: int) -> None:
    (hid, old, _), = hazards(served.db, "status = '派遣'")
    before = len(audit.rows(served.db, limit=audit.MAX_LIST))
    status, body = post(clients[who] if who else opener(), f"{served.url}/api/v1/hazard/{hid}/status",
                        {"status": "结案"})
    assert status == expected, body
    assert "error" in body
    assert hazards(served.db, f"id = '{hid}'")[0][1] == old
    assert len(audit.rows(served.db, limit=audit.MAX_LIST)) == before


def test_a_town_editor_changes_only_hazards_of_their_town(served: Served, clients: dict[str, Any]) -> None:
    (outside, old, town), = hazards(served.db, f"status = '派遣' AND town <> '{TOWN}'")
    status, body = post(clients["towned"], f"{served.url}/api/v1/hazard/{outside}/status", {"status": "处置"})
    assert status == 404, body  # as if it were not there: no probing of other towns' ids
    assert hazards(served.db, f"id = '{outside}'")[0][1] == old
    (inside, _, _), = hazards(served.db, f"status = '派遣' AND town = '{TOWN}'")
    status, body = post(clients["towned"], f"{served.url}/api/v1/hazard/{inside}/status", {"status": "处置"})
    assert status == 200, body


HOSTILE_BODIES: list[Any] = [
    {"status": "{{7*7}}"}, {"status": "<script>alert(1)</script>"}, {"status": "结案' OR 1=1 --"},
    {"status": ["结案"]}, {"status": {"$ne": 1}}, {"status": 7}, {"status": None}, {"status": True},
    {"status": "结案" * 100_000}, {}, {"status": "结案", "extra": 1}, {"status": "结案", "note": 5},
    {"status": "结案", "note": "x" * 501}, {"status": "结案", "note": "a\x00b"}, ["结案"], "结案", 5, None,
    {"status": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": 1}}}}}}}}}}}}}},
]


@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_status_bodies_are_4xx_never_500(served: Served, clients: dict[str, Any], body: Any) -> None:
    (hid, old, _), = hazards(served.db, "status = '核查'")
    status, answer = post(clients["editor"], f"{served.url}/api/v1/hazard/{hid}/status", body)
    assert status is not None and 400 <= status < 500, (status, answer)
    assert "error" in answer and "Traceback" not in json.dumps(answer)
    assert hazards(served.db, f"id = '{hid}'")[0][1] == old


@pytest.mark.parametrize("raw, content_type", [
    (b"{bad json", "application/json"), (b"[" * 200_000, "application/json"), (b"status=%E7%BB%93%E6%A1%88",
     "application/x-www-form-urlencoded"), (b'{"status": NaN}', "application/json"),
    (b'{"status": "\xe7\xbb\x93', "application/json"), (b"x" * (9 * 1024 * 1024), "application/json"),
])
def test_malformed_status_requests_are_4xx(served: Served, clients: dict[str, Any], raw: bytes,
                                           content_type: str) -> None:
    (hid, _, _), = hazards(served.db, "status = '核查'")
    status, answer = post(clients["editor"], f"{served.url}/api/v1/hazard/{hid}/status", raw, content_type)
    assert status is not None and 400 <= status < 500, (status, answer)


@pytest.mark.parametrize("hazard_id", [
    "no-such-id", "{{7*7}}", "<script>alert(1)</script>", "' OR 1=1 --", "%00", "x" * 500, "%E2%80%AE", "..%2F..",
])
def test_hostile_hazard_ids_are_4xx(served: Served, clients: dict[str, Any], hazard_id: str) -> None:
    url = f"{served.url}/api/v1/hazard/{urllib.parse.quote(hazard_id, safe='%')}/status"
    status, answer = post(clients["editor"], url, {"status": "结案"})
    assert status is not None and 400 <= status < 500, (status, answer)


# --------------------------------------------------------------------------- scenario publish


def test_a_planner_publishes_a_scenario_with_figures_computed_on_the_server(
        served: Served, clients: dict[str, Any]) -> None:
    forged_after = {"area_share": 1.0}
    status, body = post(clients["planner"], f"{served.url}/api/v1/scenarios",
                        {"name": "九亭新站 <b>A</b>", "edits": [EDIT], "responder": "fire_station",
                         "after": forged_after})
    assert status == 400 and "unknown keys" in body["error"]  # figures are never taken from the body
    status, body = post(clients["planner"], f"{served.url}/api/v1/scenarios",
                        {"name": "九亭新站 <b>A</b>", "edits": [EDIT], "responder": "fire_station"})
    assert status == 201, body
    assert 0 < body["after"]["area_share"] < 1
    status, listed = fetch(clients["viewer"], f"{served.url}/api/v1/scenarios")[::2]
    mine = [s for s in json.loads(listed) if s["id"] == body["id"]]
    assert mine and mine[0]["name"] == "九亭新站 <b>A</b>" and mine[0]["owner"] == "planner"
    status, _, raw = fetch(clients["viewer"], f"{served.url}/api/v1/scenarios/{body['id']}")
    doc = json.loads(raw)
    assert doc["type"] == "FeatureCollection" and doc["features"][0]["properties"]["id"] == "new-1"
    assert doc["scenario"]["after"] == body["after"]
    assert doc["scenario"]["before"]["area_share"] < body["after"]["area_share"]
    row = last_rows(served.db, action="scenario-publish")[0]
    assert (row["actor"], row["role"], row["object"]) == ("planner", "planner", f"scenario:{body['id']}")
    assert row["after"]["name"] == "九亭新站 <b>A</b>" and row["after"]["edits"] == 1


def test_a_district_scenario_is_not_shown_to_a_town_user(served: Served, clients: dict[str, Any]) -> None:
    """Its figures are of the whole district: a town user's list leaves it out and its id answers
    404 as an unknown one does; a district user sees it."""
    status, body = post(clients["planner"], f"{served.url}/api/v1/scenarios",
                        {"name": "全区方案", "edits": [EDIT], "responder": "fire_station"})
    assert status == 201, body
    town_list = json.loads(fetch(clients["towned"], f"{served.url}/api/v1/scenarios")[2])
    district_list = json.loads(fetch(clients["viewer"], f"{served.url}/api/v1/scenarios")[2])
    assert body["id"] not in {s["id"] for s in town_list}
    assert body["id"] in {s["id"] for s in district_list}
    hidden = fetch(clients["towned"], f"{served.url}/api/v1/scenarios/{body['id']}")
    unknown = fetch(clients["towned"], f"{served.url}/api/v1/scenarios/{'0' * 16}")
    assert hidden[0] == unknown[0] == 404
    assert json.loads(hidden[2])["error"].replace(body["id"], "ID") == json.loads(unknown[2])["error"].replace("0" * 16, "ID")


def test_the_exported_scenario_file_can_be_published_as_it_is(served: Served, clients: dict[str, Any]) -> None:
    exported = {"type": "FeatureCollection", "features": [],
                "scenario": {"edits": [EDIT], "removed": [], "responder": "fire_station", "before": {}, "after": {}}}
    status, body = post(clients["admin"], f"{served.url}/api/v1/scenarios", {**exported, "name": "导出的方案"})
    assert status == 201, body
    assert body["after"]["area_share"] > 0


@pytest.mark.parametrize("who, expected", [("viewer", 403), ("editor", 403), ("wall", 403), (None, 401)])
def test_who_may_not_publish_is_refused(served: Served, clients: dict[str, Any], who: str | None,
                                        expected: int) -> None:
    before = len(audit.rows(served.db, limit=audit.MAX_LIST, action="scenario-publish"))
    status, body = post(clients[who] if who else opener(), f"{served.url}/api/v1/scenarios",
                        {"name": "x", "edits": [EDIT], "responder": "fire_station"})
    assert status == expected, body
    assert len(audit.rows(served.db, limit=audit.MAX_LIST, action="scenario-publish")) == before
    if who is None:
        assert fetch(None, f"{served.url}/api/v1/scenarios")[0] == 401


HOSTILE_SCENARIOS: list[Any] = [
    {"name": "", "edits": [EDIT], "responder": "fire_station"},
    {"name": "x" * 101, "edits": [EDIT], "responder": "fire_station"},
    {"name": "a\u202eb", "edits": [EDIT], "responder": "fire_station"},
    {"name": ["x"], "edits": [EDIT], "responder": "fire_station"},
    {"name": "x", "edits": [], "responder": "fire_station"},
    {"name": "x", "edits": "{{7*7}}", "responder": "fire_station"},
    {"name": "x", "edits": [EDIT], "responder": "' OR 1=1 --"},
    {"name": "x", "edits": [EDIT], "responder": "hazard"},
    {"name": "x", "edits": [{**EDIT, "lon": 1e308}], "responder": "fire_station"},
    {"name": "x", "edits": [{**EDIT, "lat": "31"}], "responder": "fire_station"},
    {"name": "x", "edits": [{**EDIT, "action": "<script>"}], "responder": "fire_station"},
    {"name": "x", "edits": [{**EDIT, "id": "x" * 201}], "responder": "fire_station"},
    {"name": "x", "edits": [EDIT] * 501, "responder": "fire_station"},
    {"name": "x", "edits": [EDIT], "responder": "fire_station", "session": "../../etc"},
    {"type": "FeatureCollection", "scenario": "{{7*7}}", "name": "x"},
    {"name": "x", "edits": [[[[[[[[[[[[[[[1]]]]]]]]]]]]]]], "responder": "fire_station"},
    [EDIT], "publish", None,
]


@pytest.mark.parametrize("body", HOSTILE_SCENARIOS, ids=range(len(HOSTILE_SCENARIOS)))
def test_hostile_scenarios_are_4xx_never_500(served: Served, clients: dict[str, Any], body: Any) -> None:
    status, answer = post(clients["planner"], f"{served.url}/api/v1/scenarios", body)
    assert status is not None and 400 <= status < 500, (status, answer)
    assert "error" in answer


@pytest.mark.parametrize("sid", ["nope", "{{7*7}}", "' OR 1=1 --", "<img src=x>", "x" * 300])
def test_unknown_scenario_ids_are_4xx(served: Served, clients: dict[str, Any], sid: str) -> None:
    status = fetch(clients["viewer"], f"{served.url}/api/v1/scenarios/{urllib.parse.quote(sid)}")[0]
    assert status is not None and 400 <= status < 500


# --------------------------------------------------------------------------- the whole list


def test_every_action_of_the_issue_leaves_an_audit_row_and_the_chain_verifies(
        served: Served, clients: dict[str, Any], tmp_path: Path) -> None:
    """sign-in, failed sign-in, import, status change, scenario publish, export, report, user change
    (``event`` comes with the live-operations feed: not in this app yet)."""
    sign_in(served.url, "viewer")
    from helpers import post_login

    post_login(opener(), served.url, "viewer", "wrong password")
    (hid, _, _), = hazards(served.db, "status = '立案'")
    assert post(clients["editor"], f"{served.url}/api/v1/hazard/{hid}/status", {"status": "派遣"})[0] == 200
    assert post(clients["planner"], f"{served.url}/api/v1/scenarios",
                {"name": "全表", "edits": [EDIT], "responder": "fire_station"})[0] == 201
    csv = tmp_path / "h.csv"
    csv.write_text("隐患编号,隐患类别,隐患等级,状态,发现时间,经度,纬度\n"
                   "Z-1,违规住人,一般,发现,2024-05-01 09:00,121.22,31.03\n", encoding="utf-8")
    env = {"ONEMAP_DB": str(served.db)}
    for args in (["ingest", "hazard", str(csv), "--quiet"], ["export", "hydrant", "--out", str(tmp_path / "x.csv")],
                 ["report", "--out", str(tmp_path / "r.html")]):
        done = onemap(*args, env=env)
        assert done.returncode == 0, done.stderr
    done = add_user(served.db, "late", "viewer")
    assert done.returncode == 0, done.stderr
    actions = {r["action"] for r in audit.rows(served.db, limit=audit.MAX_LIST)}
    wanted = {"sign-in", "sign-in-failed", "import", "status-change", "scenario-publish", "export", "report",
              "user-change"}
    assert wanted <= actions, wanted - actions
    result = onemap("audit", "verify", "--db", str(served.db))
    assert result.returncode == 0, result.stdout
    assert os.path.exists(audit.head_path(served.db))
