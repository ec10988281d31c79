"""No input can hurt the dashboard: every route and every Dash callback answers bad input with a 4xx.

The app is the real one (``create_app`` on a real demo DuckDB file) behind Flask's test client.
Routes get a table of hand-typed, truncated and hostile query strings; Dash callbacks are found
by enumerating ``app.callback_map`` (a new callback is covered without editing this file) and
each receives crafted bodies: wrong envelope, wrong ids, and hostile values in every input and
state. A 4xx must carry a JSON body ``{"error": "..."}`` that says what is wrong.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from dash._utils import split_callback_id

from geo.settings import Settings

DEEP = "[" * 10_000 + "]" * 10_000
HAZARD = "/api/layer/hazard/hex.geojson"
ISO = "/api/overlay/plan-iso.geojson?responder=micro_station"
HOT = "/api/overlay/review-hot.geojson"

# (name, URL): each must answer 4xx with a JSON error, never 5xx.
BAD_ROUTES: list[tuple[str, str]] = [
    ("compact date", f"{HAZARD}?start=20240101"),
    ("date 'now'", f"{HAZARD}?start=now"),
    ("date NaT", f"{HAZARD}?end=NaT"),
    ("full-width digits", f"{HAZARD}?start=２０２４-０１-０１"),
    ("impossible date", f"{HAZARD}?end=2026-02-30"),
    ("template in date", f"{HAZARD}?start={{{{7*7}}}}"),
    ("deeply nested filter", f"{HAZARD}?f={DEEP}"),
    ("filter list", f"{HAZARD}?f=[1,2]"),
    ("filter values nested", f'{HAZARD}?f={{"severity":[[["x"]]]}}'),
    ("filter values object", f'{HAZARD}?f={{"severity":{{"a":1}}}}'),
    ("filter NaN value", f'{HAZARD}?f={{"severity":[NaN]}}'),
    ("huge filter", f'{HAZARD}?f={{"severity":["{"x" * 200_000}"]}}'),
    ("SQL in filter field", f'{HAZARD}?f={{"severity\'; DROP TABLE hazard;--":["x"]}}'),
    ("bbox NaN", f"{HAZARD}?bbox=nan,1,2,3"),
    ("bbox inf", f"{HAZARD}?bbox=-inf,-inf,inf,inf"),
    ("bbox off the earth", f"{HAZARD}?bbox=-500,-100,500,100"),
    ("bbox five numbers", f"{HAZARD}?bbox=1,2,3,4,5"),
    ("zoom inf", f"{HAZARD}?zoom=inf"),
    ("zoom huge", f"{HAZARD}?zoom=1e308"),
    ("zoom negative", f"{HAZARD}?zoom=-3"),
    ("unknown layer", "/api/layer/nolayer/hex.geojson"),
    ("polygon layer as points", "/api/layer/grid/points.geojson"),
    ("unknown view", "/api/layer/hazard/all.geojson"),
    ("unknown polygon layer", "/api/polygons/nolayer.geojson"),
    ("point layer as polygons", "/api/polygons/hazard.geojson"),
    ("huge level", f"/api/polygons/admin_area.geojson?level={'x' * 100_000}"),
    ("roads bbox inf", "/api/roads.geojson?bbox=-inf,-inf,inf,inf"),
    ("roads zoom NaN", "/api/roads.geojson?zoom=nan"),
    ("feature ../ id", "/api/feature/hazard/../../etc/passwd"),
    ("feature unknown layer", "/api/feature/nolayer/1"),
    ("feature road table", "/api/feature/road_edges/1"),
    ("feature huge id", f"/api/feature/hazard/{'x' * 100_000}"),
    ("unknown overlay", "/api/overlay/nope.geojson"),
    ("iso minutes NaN", f"{ISO}&minutes=nan"),
    ("iso minutes inf", f"{ISO}&minutes=inf"),
    ("iso minutes negative", f"{ISO}&minutes=-1"),
    ("iso minutes not configured", f"{ISO}&minutes=2"),
    ("iso hundreds of minutes", f"{ISO}&minutes={','.join(str(i) for i in range(1, 300))}"),
    ("iso minutes text", f"{ISO}&minutes=abc"),
    ("iso unknown responder", "/api/overlay/plan-iso.geojson?responder=hazard&minutes=1"),
    ("hot deeply nested", f"{HOT}?severity={DEEP}"),
    ("hot object", f'{HOT}?severity={{"a":1}}'),
    ("hot not JSON", f"{HOT}?severity=notjson"),
    ("hot date 'now'", f"{HOT}?end=now"),
    ("hot date NaT", f"{HOT}?start=NaT"),
    ("hot compact date", f"{HOT}?start=20240101"),
    ("hot full-width digits", f"{HOT}?start=２０２４-０１-０１"),
]


@pytest.fixture(scope="module")
def app(demo_db: Path):
    from dashboard.app import create_app

    the_app = create_app(Settings(), str(demo_db), warm=False)
    the_app.server.test_client().get("/plan")  # first request: Dash merges the pages' callbacks
    return the_app


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


def _assert_clear_4xx(resp, what: str) -> dict[str, Any]:
    assert 400 <= resp.status_code < 500, (what, resp.status_code, resp.get_data(as_text=True)[:300])
    body = resp.get_json(force=True, silent=True)
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], (what, body)
    return body


@pytest.mark.parametrize(("name", "url"), BAD_ROUTES, ids=[n for n, _ in BAD_ROUTES])
def test_bad_route_input_is_a_clear_4xx(client, name: str, url: str):
    started = time.perf_counter()
    resp = client.get(url)
    _assert_clear_4xx(resp, name)
    assert time.perf_counter() - started < 5, f"{name} took {time.perf_counter() - started:.1f} s to refuse"


def test_plan_isochrones_accept_only_the_configured_minutes(client):
    """The configured minutes (in any order and subset) draw; anything else is refused before any work."""
    minutes = [f"{m:g}" for m in Settings().isochrone_minutes]
    whole = client.get(f"{ISO}&minutes={','.join(reversed(minutes))}")
    assert whole.status_code == 200 and whole.get_json(force=True)["features"]
    one = client.get(f"{ISO}&minutes={minutes[0]}").get_json(force=True)
    assert [f["properties"]["minutes"] for f in one["features"]] == [minutes[0]]
    refused = _assert_clear_4xx(client.get(f"{ISO}&minutes={minutes[0]},7"), "minute 7")
    assert "7" in refused["error"] and all(m in refused["error"] for m in minutes)


def test_error_bodies_name_the_parameter_and_the_fix(client):
    body = _assert_clear_4xx(client.get(f"{HAZARD}?start=now"), "now")
    assert "start" in body["error"] and "2026-01-31" in body["error"] and "'now'" in body["error"]
    body = _assert_clear_4xx(client.get(f"{HAZARD}?f={DEEP}"), "deep")
    assert "f" in body["error"] and "nested" in body["error"]
    body = _assert_clear_4xx(client.get(f"{HAZARD}?bbox=-inf,-inf,inf,inf"), "bbox")
    assert "bbox" in body["error"] and "inf" in body["error"]


# --------------------------------------------------------------------------- Dash callbacks

JUNK: list[tuple[str, Any]] = [
    ("object", {"a": [1, {"b": None}]}),
    ("nested list", [[["x"]]]),
    ("deep", json.loads("[" * 200 + "]" * 200)),
    ("template", "{{7*7}}"),
    ("jinja block", "{% for x in y %}"),
    ("html", "<script>alert(1)</script>"),
    ("sql", "'; DROP TABLE hazard;--"),
    ("huge text", "x" * 200_000),
    ("huge number", 1e308),
    ("negative", -1),
    ("bool", True),
    ("date now", "now"),
    ("date compact", "20240101"),
]


def _server_callbacks(app) -> dict[str, dict[str, Any]]:
    return {out: cb for out, cb in app.callback_map.items() if cb.get("callback") is not None}


def _outputs(output: str) -> Any:
    spec = split_callback_id(output)
    return spec


def _dep(dep: dict[str, Any], value: Any = None) -> Any:
    """One input or state as the renderer sends it (a pattern-matching one as an empty list)."""
    if dep["id"].startswith("{"):
        return []
    return {"id": dep["id"], "property": dep["property"], "value": value}


def _body(output: str, cb: dict[str, Any], changed: int = 0) -> dict[str, Any]:
    inputs = [_dep(d) for d in cb["inputs"]]
    first = cb["inputs"][changed] if cb["inputs"] else None
    return {
        "output": output,
        "outputs": _outputs(output),
        "inputs": inputs,
        "state": [_dep(d) for d in cb["state"]],
        "changedPropIds": [f"{first['id']}.{first['property']}"] if first and not first["id"].startswith("{") else [],
    }


def _post(client, body: Any, raw: str | None = None):
    data = raw if raw is not None else json.dumps(body, allow_nan=True)
    return client.post("/_dash-update-component", data=data, content_type="application/json")


def _assert_not_5xx(resp, what: str) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.get_data(as_text=True)[:300])
    if resp.status_code >= 400:
        _assert_clear_4xx(resp, what)


def test_every_server_callback_is_found(app):
    found = _server_callbacks(app)
    names = " ".join(found)
    for expected in ("plan-f-fields", "plan-edits", "plan-iso.url", "plan-sites", "review-total", "wall-kpi-open",
                     "wall-dispatch", "_pages_content"):
        assert expected in names
    assert len(found) >= 15


def test_malformed_callback_envelopes_are_400(app, client):
    """Bodies the renderer never sends: wrong JSON, unknown outputs, missing or misnamed inputs."""
    output, cb = next((o, c) for o, c in _server_callbacks(app).items() if "plan-f-fields" in o)
    good = _body(output, cb)
    cases: list[tuple[str, Any, str | None]] = [
        ("not JSON", None, "{output"),
        ("a list", None, "[1, 2]"),
        ("deeply nested", None, '{"output": ' + DEEP + "}"),
        ("no output", {k: v for k, v in good.items() if k != "output"}, None),
        ("unknown output", {**good, "output": "nope.children"}, None),
        ("output not text", {**good, "output": ["x"]}, None),
        ("no inputs", {k: v for k, v in good.items() if k != "inputs"}, None),
        ("inputs not a list", {**good, "inputs": "x"}, None),
        ("too few inputs", {**good, "inputs": []}, None),
        ("too many inputs", {**good, "inputs": good["inputs"] * 3}, None),
        ("input not an object", {**good, "inputs": [5]}, None),
        ("input of another component", {**good, "inputs": [{"id": "plan-k", "property": "value", "value": 3}]}, None),
        ("input without id", {**good, "inputs": [{"property": "value", "value": "hazard"}]}, None),
        ("state missing", {**good, "state": []}, None),
        ("outputs wrong", {**good, "outputs": "x"}, None),
        ("outputs too few", {**good, "outputs": good["outputs"][:1]}, None),
        ("changed ids junk", {**good, "changedPropIds": [{"a": 1}]}, None),
    ]
    for name, body, raw in cases:
        resp = _post(client, body, raw)
        assert resp.status_code == 400, (name, resp.status_code, resp.get_data(as_text=True)[:300])
        _assert_clear_4xx(resp, name)


def test_hostile_values_in_every_callback_input_are_refused_or_harmless(app, client):
    """Each input and state of each server callback gets each junk value: never a 5xx."""
    failures: list[str] = []
    for output, cb in _server_callbacks(app).items():
        deps = [("inputs", i, d) for i, d in enumerate(cb["inputs"])] + [("state", i, d) for i, d in enumerate(cb["state"])]
        for key, index, dep in deps:
            for junk_name, junk in JUNK:
                body = _body(output, cb, changed=index if key == "inputs" else 0)
                if dep["id"].startswith("{"):
                    body[key][index] = [{"id": {**json.loads(dep["id"]), **{k: "x" for k, v in json.loads(dep["id"]).items()
                                                                              if isinstance(v, list)}},
                                         "property": dep["property"], "value": junk}]
                else:
                    body[key][index]["value"] = junk
                resp = _post(client, body)
                what = f"{output[:60]} {key}[{index}] {dep['id'][:30]}.{dep['property']} = {junk_name}"
                if resp.status_code >= 500:
                    failures.append(f"{what}: {resp.status_code}")
                elif resp.status_code >= 400:
                    body_json = resp.get_json(force=True, silent=True)
                    if not (isinstance(body_json, dict) and body_json.get("error")):
                        failures.append(f"{what}: {resp.status_code} without a JSON error")
    assert failures == []


def test_every_callback_with_every_value_unset_is_not_a_5xx(app, client):
    """The renderer sends null for a property never set (a timer that has not ticked): every
    server callback, each of its inputs as the trigger, all values null, answers < 500."""
    failures: list[str] = []
    for output, cb in _server_callbacks(app).items():
        for index in range(max(1, len(cb["inputs"]))):
            resp = _post(client, _body(output, cb, changed=index))
            if resp.status_code >= 500:
                failures.append(f"{output[:80]} trigger {index}: {resp.status_code}")
    assert failures == []


def test_callback_errors_name_the_component_property_and_value(app, client):
    output, cb = next((o, c) for o, c in _server_callbacks(app).items() if "plan-f-fields" in o)
    body = _body(output, cb)
    body["inputs"][0]["value"] = "{{7*7}}"
    err = _assert_clear_4xx(_post(client, body), "layer")["error"]
    assert "plan-f-layer" in err and "value" in err and "{{7*7}}" in err and "hazard" in err
    body["inputs"][0]["value"] = {"a": 1}
    err = _assert_clear_4xx(_post(client, body), "layer object")["error"]
    assert "plan-f-layer" in err


def test_a_well_formed_callback_still_answers(app, client):
    output, cb = next((o, c) for o, c in _server_callbacks(app).items() if "plan-f-fields" in o)
    body = _body(output, cb)
    body["inputs"][0]["value"] = "hazard"
    body["state"][0]["value"] = "en"
    resp = _post(client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    assert "severity" in resp.get_data(as_text=True)


def test_made_up_url_parameters_do_not_grow_the_answer_cache(client):
    """A flood of URLs differing only in parameters no answer depends on is served from one entry."""
    from dashboard.components import routes

    url = "/api/roads.geojson?bbox=121.1,30.9,121.2,31.0&zoom=13"
    assert client.get(url).status_code == 200
    held = len(routes._URL_ANSWERS.cache)
    for i in range(40):
        assert client.get(f"{url}&v={i}&junk{i}={'x' * i}").status_code == 200
    assert len(routes._URL_ANSWERS.cache) == held


def _export_body(app, trigger: str, name: str) -> dict[str, Any]:
    output, cb = next((o, c) for o, c in _server_callbacks(app).items() if "plan-download" in o)
    changed = [d["id"] for d in cb["inputs"]].index(trigger)
    body = _body(output, cb, changed=changed)
    body["inputs"][changed]["value"] = 1
    edit = {"action": "add", "id": "new-1", "lon": 121.23, "lat": 31.03, "layer": "micro_station", "name": name}
    values = {"plan-edits": [edit], "plan-session": "0" * 32, "plan-responder": "micro_station"}
    for dep in body["state"]:
        if dep["id"] in values:
            dep["value"] = values[dep["id"]]
    return body


def test_plan_scenario_downloads_neutralise_formulas_and_stay_strict_json(app, client):
    """A station name typed as a formula leaves /plan's CSV inert; the GeoJSON is strict JSON."""
    name = '=HYPERLINK("http://x","{{7*7}}")'
    resp = _post(client, _export_body(app, "plan-export-csv", name))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    csv = json.loads(resp.get_data(as_text=True))["response"]
    content = next(v for v in csv.values())["data"]["content"]
    cells = [cell for line in content.lstrip("\ufeff").splitlines() for cell in line.split(",")]
    assert not any(cell.strip('"').startswith(("=", "+", "@")) for cell in cells), content
    assert "'=HYPERLINK" in content
    resp = _post(client, _export_body(app, "plan-export-geojson", name))
    doc = json.loads(resp.get_data(as_text=True))["response"]
    text = next(v for v in doc.values())["data"]["content"]
    parsed = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert parsed["features"][0]["properties"]["name"] == name
