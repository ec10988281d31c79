"""Town scope and masking on the real server (issue 13): a town user gets their towns only.

``onemap serve`` on a copy of the demo district with users made by ``onemap user add``: town
viewers and a town editor, whole-district viewer, editor and wall account. Every figure is
compared with an independent SQL count on the same DuckDB file; the client's filters, URL
parameters and callback payloads try to widen the scope and must not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest
from helpers import PASSWORD, Served, fetch, sign_in, signin_app

from layers.hazard import CLOSED_STATUS



def _towns_by_hazards(db: Path) -> list[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("SELECT town FROM hazard WHERE town IS NOT NULL GROUP BY town ORDER BY count(*) DESC, town").fetchall()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def towns(demo_db: Path) -> dict[str, str]:
    """ONE: the town of most hazards (the town users' town); TWO: the next (a two-town viewer's
    second); OTHER: a town neither has."""
    found = _towns_by_hazards(demo_db)
    return {"ONE": found[0], "TWO": found[1], "OTHER": found[2]}


@pytest.fixture(scope="module")
def server(demo_db: Path, towns: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    users = {
        "admin": ("admin", ()),
        "tv": ("viewer", (towns["ONE"],)),
        "tv2": ("viewer", (towns["ONE"], towns["TWO"])),
        "te": ("editor", (towns["ONE"],)),
        "dv": ("viewer", ()),
        "de": ("editor", ()),
        "kiosk": ("wall", ()),
    }
    with signin_app(demo_db, tmp_path_factory.mktemp("scope"), users) as served:
        yield served


@pytest.fixture(scope="module")
def clients(server: Served) -> dict[str, Any]:
    return {name: sign_in(server.url, name, PASSWORD) for name in server.users if name != "admin"}


def sql(db: Path, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(query, params or []).fetchall()


def get_json(client: Any, url: str) -> tuple[int | None, Any]:
    status, _, body = fetch(client, url)
    return status, json.loads(body) if body else None


def point_ids(client: Any, base: str, layer: str, query: str = "") -> set[str]:
    """Ids of a point layer's features in the points view (zoom 18, no box: every point)."""
    status, fc = get_json(client, f"{base}/api/layer/{layer}/points.geojson?zoom=18{query}")
    assert status == 200, fc
    return {f["properties"]["id"] for f in fc["features"]}


def ids_in(db: Path, layer: str, towns: tuple[str, ...] | None) -> set[str]:
    if towns is None:
        return {r[0] for r in sql(db, f"SELECT id FROM {layer}")}
    return {r[0] for r in sql(db, f"SELECT id FROM {layer} WHERE town IN (SELECT unnest(?::VARCHAR[]))", [list(towns)])}


# --------------------------------------------------------------------------- map features


def test_town_viewer_hazard_features_equal_an_sql_count_of_their_towns(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    one, two = (towns["ONE"],), (towns["ONE"], towns["TWO"])
    got = point_ids(clients["tv"], base, "hazard")
    assert got == ids_in(db, "hazard", one) and len(got) > 100
    assert point_ids(clients["tv2"], base, "hazard") == ids_in(db, "hazard", two)
    district = point_ids(clients["dv"], base, "hazard")
    assert district == ids_in(db, "hazard", None) and len(district) > len(got)
    # the hexagon view (a layer of hex_min_points or more in view) counts the same rows: the
    # per-hexagon counts add up to the SQL count
    for user, expected in (("tv2", len(ids_in(db, "hazard", two))), ("dv", len(district))):
        status, fc = get_json(clients[user], f"{base}/api/layer/hazard/hex.geojson?zoom=9")
        assert status == 200 and fc["features"], (user, fc)
        assert sum(sum(f["properties"]["counts"]) for f in fc["features"]) == expected, user


@pytest.mark.parametrize("layer", ["key_place", "incident", "hydrant", "vulnerable_person"])
def test_every_point_layer_is_cut_to_the_towns(server: Served, clients, towns, layer: str) -> None:
    got = point_ids(clients["tv"], server.url, layer)
    assert got == ids_in(server.db, layer, (towns["ONE"],))
    assert len(point_ids(clients["dv"], server.url, layer)) >= len(got)


def test_grid_and_area_polygons_of_the_towns_only(server: Served, clients, towns) -> None:
    base, db, one = server.url, server.db, towns["ONE"]
    for view in ("all", "map"):
        status, fc = get_json(clients["tv"], f"{base}/api/polygons/grid.geojson?fields={view}")
        assert status == 200
        assert {f["properties"]["id"] for f in fc["features"]} == ids_in(db, "grid", (one,))
    status, fc = get_json(clients["tv"], f"{base}/api/polygons/grid.geojson?fields=outlines")
    outlined = {i for f in fc["features"] for i in f["properties"]["id"]}
    assert outlined == ids_in(db, "grid", (one,))
    # admin areas: the town and its communities, not the district nor another town
    status, fc = get_json(clients["tv"], f"{base}/api/polygons/admin_area.geojson?fields=map")
    town_id = sql(db, "SELECT id FROM admin_area WHERE name = ?", [one])[0][0]
    expected = {r[0] for r in sql(db, "SELECT id FROM admin_area WHERE id = ? OR parent_id = ?", [town_id, town_id])}
    assert {f["properties"]["id"] for f in fc["features"]} == expected and len(expected) > 1
    status, fc = get_json(clients["dv"], f"{base}/api/polygons/admin_area.geojson?fields=map")
    assert len(fc["features"]) == sql(db, "SELECT count(*) FROM admin_area")[0][0]


def test_one_url_answered_for_the_district_first_then_a_town_user(server: Served, clients, towns) -> None:
    """The answers are cached per URL: the town user asking second still gets their towns only,
    and the district user asking after a town user gets the whole district."""
    base, db = server.url, server.db
    one = ids_in(db, "hazard", (towns["ONE"],))
    for n, (first, second) in enumerate((("dv", "tv"), ("tv", "dv"), ("de", "te"))):
        query = f"&bbox=100,20,{130 + n},40"  # a URL nobody asked before
        first_ids = point_ids(clients[first], base, "hazard", query)
        second_ids = point_ids(clients[second], base, "hazard", query)
        town_ids, district_ids = (second_ids, first_ids) if second.startswith("t") else (first_ids, second_ids)
        assert town_ids == one
        assert district_ids == ids_in(db, "hazard", None)
    # the same for an unmasked answer asked first by an editor, then by a viewer of the same town
    url = f"{base}/api/polygons/grid.geojson?fields=all&level="
    editor = get_json(clients["te"], url)[1]["features"]
    viewer = get_json(clients["tv"], url)[1]["features"]
    assert [f["properties"]["id"] for f in editor] == [f["properties"]["id"] for f in viewer]
    assert {f["properties"]["phone"] for f in editor}.isdisjoint({f["properties"]["phone"] for f in viewer})


# --------------------------------------------------------------------------- the client cannot widen it


def test_filters_and_url_parameters_naming_other_towns_only_narrow(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    one, other = towns["ONE"], towns["OTHER"]
    tv = clients["tv"]

    def f(value: Any) -> str:
        return "&f=" + quote(json.dumps(value, ensure_ascii=False))

    assert point_ids(tv, base, "hazard", f({"town": [other]})) == set()
    assert point_ids(tv, base, "hazard", f({"town": [other, one]})) == ids_in(db, "hazard", (one,))
    assert point_ids(tv, base, "hazard", f({"town": ["' OR 1=1 --"]})) == set()
    extra = "&".join(f"{k}={quote(other)}" for k in ("town", "towns", "scope", "user", "role"))
    assert point_ids(tv, base, "hazard", "&" + extra) == ids_in(db, "hazard", (one,))
    for hostile in ({"town": other}, {"town": [[other]]}, {"town": [{"$ne": 1}]}, "{{7*7}}"):
        text = hostile if isinstance(hostile, str) else json.dumps(hostile, ensure_ascii=False)
        status, _, body = fetch(tv, f"{base}/api/layer/hazard/points.geojson?zoom=18&f={quote(text)}")
        assert status == 400 and b"Traceback" not in body, (hostile, status, body[:200])
    # the district viewer's town filter does narrow to that town
    assert point_ids(clients["dv"], base, "hazard", f({"town": [other]})) == ids_in(db, "hazard", (other,))


def dependencies(client: Any, base: str) -> list[dict[str, Any]]:
    status, deps = get_json(client, base + "/_dash-dependencies")
    assert status == 200
    return deps


def callback(client: Any, base: str, output_part: str, values: dict[str, Any]) -> tuple[int | None, Any]:
    """POST the server callback whose output names ``output_part``, as the renderer would, with
    ``values`` ("id.property" → value) for its inputs and states (None for the rest)."""
    dep = next(d for d in dependencies(client, base) if output_part in d["output"] and d.get("clientside_function") is None)
    outputs = [{"id": o.split(".")[0], "property": o.split(".", 1)[1]} for o in dep["output"].strip(".").split("...")]
    fill = lambda items: [{**i, "value": values.get(f"{i['id']}.{i['property']}")} for i in items]  # noqa: E731
    inputs = fill(dep["inputs"])
    body = {"output": dep["output"], "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
            "state": fill(dep["state"]), "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}
    status, _, answer = fetch(client, base + "/_dash-update-component", json.dumps(body, ensure_ascii=False).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(answer) if answer else None


def test_a_callback_payload_naming_other_towns_cannot_widen_the_count(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    one, other = towns["ONE"], towns["OTHER"]

    def count(user: str, f: dict[str, Any]) -> int:
        status, answer = callback(clients[user], base, "plan-f-count", {
            "plan-filters.data": {"hazard": {"f": f}}, "plan-f-layer.value": "hazard", "plan-lang.data": "en"})
        assert status == 200, answer
        return int(answer["response"]["plan-f-count"]["children"].split(":")[1].replace(",", ""))

    n_one, n_other = len(ids_in(db, "hazard", (one,))), len(ids_in(db, "hazard", (other,)))
    assert count("tv", {}) == n_one
    assert count("tv", {"town": [other]}) == 0
    assert count("tv", {"town": [one, other]}) == n_one
    assert count("dv", {"town": [other]}) == n_other
    assert count("dv", {}) == len(ids_in(db, "hazard", None))


def _review_total(client: Any, base: str, start: str, end: str) -> int:
    status, answer = callback(client, base, "review-total", {
        "review-dates.start_date": start, "review-dates.end_date": end, "review-lang.data": "en"})
    assert status == 200, answer
    return int(answer["response"]["review-total"]["children"].split(":")[1].replace(",", ""))


def test_review_count_per_scope_whoever_asks_first(server: Served, clients, towns) -> None:
    """The review's discovered count (cached per snapshot and filter): the district user first,
    the town user next, each gets an SQL count of their own."""
    base, db, one = server.url, server.db, towns["ONE"]
    start, end = sql(db, "SELECT CAST(min(discovered_at) AS DATE) + 3, CAST(max(discovered_at) AS DATE) - 3 FROM hazard")[0]
    start, end = str(start), str(end)
    where = "discovered_at >= CAST(? AS DATE) AND discovered_at < CAST(? AS DATE) + 1 AND discovered_at <= now()"
    district = sql(db, f"SELECT count(*) FROM hazard WHERE {where}", [start, end])[0][0]
    town = sql(db, f"SELECT count(*) FROM hazard WHERE {where} AND town = ?", [start, end, one])[0][0]
    assert _review_total(clients["dv"], base, start, end) == district
    assert _review_total(clients["tv"], base, start, end) == town
    assert _review_total(clients["te"], base, start, end) == town
    assert 0 < town < district


# --------------------------------------------------------------------------- feature details


def test_feature_details_out_of_scope_are_404_like_a_missing_id(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    inside = sql(db, "SELECT id FROM hazard WHERE town = ? ORDER BY id LIMIT 1", [towns["ONE"]])[0][0]
    outside = sql(db, "SELECT id FROM hazard WHERE town = ? ORDER BY id LIMIT 1", [towns["OTHER"]])[0][0]
    tv = clients["tv"]
    assert get_json(tv, f"{base}/api/feature/hazard/{inside}")[0] == 200
    status, body = get_json(tv, f"{base}/api/feature/hazard/{outside}")
    missing_status, missing = get_json(tv, f"{base}/api/feature/hazard/{outside}X")
    assert status == missing_status == 404
    assert body["error"].replace(outside, "ID") == missing["error"].replace(outside + "X", "ID")
    assert get_json(clients["dv"], f"{base}/api/feature/hazard/{outside}")[0] == 200
    # an admin area or grid of another town, and hostile ids: 404, never a 500
    other_grid = sql(db, "SELECT id FROM grid WHERE town = ? LIMIT 1", [towns["OTHER"]])[0][0]
    other_area = sql(db, "SELECT id FROM admin_area WHERE name = ?", [towns["OTHER"]])[0][0]
    for layer, fid in (("grid", other_grid), ("admin_area", other_area), ("hazard", quote("' OR 1=1 --")),
                       ("hazard", quote("{{7*7}}")), ("key_place", quote("<script>alert(1)</script>"))):
        status, _, answer = fetch(tv, f"{base}/api/feature/{layer}/{fid}")
        assert status == 404 and b"Traceback" not in answer, (layer, fid, status)


# --------------------------------------------------------------------------- masking


def _details(client: Any, base: str, layer: str, fid: str) -> dict[str, str]:
    status, body = get_json(client, f"{base}/api/feature/{layer}/{fid}?lang=en")
    assert status == 200, body
    return dict(body["rows"])


def masked_phone(phone: str) -> str:
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def test_key_place_phone_masked_for_a_viewer_shown_for_an_editor(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    fid, contact, phone = sql(db, "SELECT id, contact, phone FROM key_place WHERE town = ? AND phone IS NOT NULL "
                                  "AND contact IS NOT NULL ORDER BY id LIMIT 1", [towns["ONE"]])[0]
    for user in ("tv", "dv"):
        shown = " ".join(_details(clients[user], base, "key_place", fid).values())
        assert masked_phone(phone) in shown and phone not in shown and contact not in shown, user
    for user in ("te", "de"):
        shown = " ".join(_details(clients[user], base, "key_place", fid).values())
        assert phone in shown and contact in shown, user


def test_grid_workers_and_residents_masked_for_viewers_and_the_wall(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    workers = dict(sql(db, "SELECT id, phone FROM grid WHERE town = ? AND phone IS NOT NULL", [towns["ONE"]]))
    names = dict(sql(db, "SELECT id, name FROM vulnerable_person WHERE town = ? AND name IS NOT NULL", [towns["ONE"]]))
    assert workers and names
    for user, unmasked in (("tv", False), ("kiosk", False), ("te", True), ("de", True)):
        status, fc = get_json(clients[user], f"{base}/api/polygons/grid.geojson")
        if user == "kiosk":  # the wall account reads the map's data, never a worker's phone in clear
            assert status == 200
        phones = {f["properties"]["id"]: f["properties"]["phone"] for f in fc["features"] if f["properties"]["id"] in workers}
        assert phones and all((phones[i] == workers[i]) is unmasked for i in phones), user
        if not unmasked:
            assert all(phones[i] == masked_phone(workers[i]) for i in phones), user
        status, fc = get_json(clients[user], f"{base}/api/layer/vulnerable_person/points.geojson?zoom=18")
        seen = {f["properties"]["id"]: f["properties"]["name"] for f in fc["features"] if f["properties"]["id"] in names}
        assert seen and all((seen[i] == names[i]) is unmasked for i in seen), user
    rid, address = sql(db, "SELECT id, address FROM vulnerable_person WHERE town = ? AND length(address) > 4 "
                           "ORDER BY id LIMIT 1", [towns["ONE"]])[0]
    for user, unmasked in (("tv", False), ("te", True), ("de", True)):
        shown = " ".join(_details(clients[user], base, "vulnerable_person", rid).values())
        assert (address in shown) is unmasked, user  # a resident's home address is personal too


def _dispatch_panel(client: Any, base: str, incident: str) -> str:
    status, answer = callback(client, base, "wall-dispatch.children", {
        "wall-incident.value": incident, "wall-lang.data": "zh", "wall-fly.data": False})
    assert status == 200, answer
    return json.dumps(answer["response"]["wall-dispatch"], ensure_ascii=False)


def test_dispatch_panel_masks_for_the_wall_and_viewers_shows_for_editors(server: Served, clients, towns) -> None:
    base, db = server.url, server.db
    incident, phone = sql(db, "SELECT i.id, k.phone FROM incident i JOIN key_place k ON k.id = i.place_id "
                              "WHERE k.phone IS NOT NULL AND i.town = ? ORDER BY i.id LIMIT 1", [towns["ONE"]])[0]
    for user in ("kiosk", "tv", "dv"):
        panel = _dispatch_panel(clients[user], base, incident)
        assert masked_phone(phone) in panel and phone not in panel, user
    for user in ("te", "de"):
        assert phone in _dispatch_panel(clients[user], base, incident), user
    # an incident of another town: as if it did not exist, whatever the payload says
    other = sql(db, "SELECT id FROM incident WHERE town = ? ORDER BY id LIMIT 1", [towns["OTHER"]])[0][0]
    assert "暂无警情" in _dispatch_panel(clients["tv"], base, other)
    assert "暂无警情" not in _dispatch_panel(clients["dv"], base, other)


def test_wall_tiles_and_incident_list_of_a_town_viewer(server: Served, clients, towns) -> None:
    """The wall's open-hazard tile equals an SQL count of the town's open hazards, the district
    viewer's the district's; the incidents offered for a dispatch picture are the town's."""
    base, db, one = server.url, server.db, towns["ONE"]
    open_sql = ("SELECT count(*) FROM hazard WHERE discovered_at <= now() "
                f"AND NOT coalesce(closed_at <= now(), status = '{CLOSED_STATUS}')")

    def refresh(user: str) -> dict[str, Any]:
        status, answer = callback(clients[user], base, "wall-kpi-open", {
            "wall-interval.n_intervals": 1, "wall-painted.data": 1, "wall-lang.data": "zh"})
        assert status == 200, answer
        return answer["response"]

    town, district = refresh("tv"), refresh("dv")
    assert int(town["wall-kpi-open"]["children"].replace(",", "")) == sql(db, open_sql + " AND town = ?", [one])[0][0]
    assert int(district["wall-kpi-open"]["children"].replace(",", "")) == sql(db, open_sql)[0][0]
    offered = {o["value"] for o in town["wall-incident"]["options"]}
    assert offered and offered <= ids_in(db, "incident", (one,))
    assert {o["value"] for o in district["wall-incident"]["options"]} - ids_in(db, "incident", (one,))
