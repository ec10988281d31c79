"""CLI of coverage, siting and dispatch: `onemap roads`, `coverage`, `site`, `dispatch`."""

from __future__ import annotations

import math
from typing import Any

import click
import numpy as np
import pandas as pd

from dashboard.commands import config_option, db_option, echo_json, json_option
from geo import jsonsafe
from geo.errors import ReadError
from geo.settings import Settings


def _records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict[str, Any]]:
    return jsonsafe.records(frame, columns)


def _scene(db: str | None, config: str | None, mode: str = "auto", layers: str | None = None):
    from geo import store
    from geo.coverage_inputs import RESPONDER_LAYERS, load_scene

    settings = Settings.load(config)
    chosen = tuple(x.strip() for x in layers.split(",")) if layers else RESPONDER_LAYERS
    con = store.connect(db)
    try:
        return load_scene(con, settings, mode=mode, layers=chosen)
    finally:
        con.close()


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@db_option
@config_option
@click.option(
    "--crs",
    default=None,
    help="CRS of a GIS line file without one (wgs84, cgcs2000, gcj02, bd09, EPSG:xxxx).",
)
@json_option
def roads(file, db, config, crs, as_json) -> None:
    """Load drivable roads from an OSM .pbf or GeoPackage/Shapefile lines into the database."""
    from geo.network import import_roads

    settings = Settings.load(config)
    summary = import_roads(file, db, settings, crs)
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"roads: {summary['nodes']:,} nodes, {summary['directed_edges']:,} directed edges "
        f"({summary['oneway_edges']:,} one-way), {summary['road_km']:,} km of road"
    )
    for cls, speed in sorted(summary["speed_kmh_by_class"].items()):
        click.echo(
            f"  {cls:<16} {speed:>5.0f} km/h (median free-flow; × {settings.urban_slowdown_factor} in traffic)"
        )


def _minutes(text: str | None, settings: Settings) -> list[float]:
    if not text:
        return list(settings.isochrone_minutes)
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(
            f"--minutes must be numbers separated by commas, got {text!r}"
        ) from None


@click.command(name="coverage")
@db_option
@config_option
@click.option(
    "--mode",
    type=click.Choice(["auto", "network", "radius"]),
    default="auto",
    show_default=True,
    help="network: road travel times; radius: straight lines (no road data); auto: network if roads exist.",
)
@click.option(
    "--layers",
    default=None,
    help="Responder layers, comma separated (default micro_station,fire_station).",
)
@click.option(
    "--level", type=click.Choice(["town", "community", "grid"]), default="town", show_default=True
)
@click.option(
    "--top", default=10, show_default=True, type=int, help="How many uncovered clusters to list."
)
@click.option(
    "--minutes",
    default=None,
    help="Isochrone minutes for --json, e.g. 1,3,5 (default from settings).",
)
@json_option
def coverage_cmd(db, config, mode, layers, level, top, minutes, as_json) -> None:
    """Who reaches where in time: shares per area, first-due areas, worst uncovered clusters."""
    from geo import coverage

    scene = _scene(db, config, mode, layers)
    result = coverage.compute_coverage(scene)
    summ = coverage.summary(result)
    figs = coverage.figures(result, level)
    due = coverage.first_due_areas(result, "fire_station")
    clusters = coverage.uncovered_clusters(result, top)
    if as_json:
        mins = _minutes(minutes, scene.settings)
        echo_json(
            {
                "mode": result.mode,
                "minutes": {layer: result.targets_s[layer] / 60.0 for layer in result.layers},
                "turnout_s": dict(result.turnouts_s),
                "responders": _records(
                    result.responders,
                    ["id", "name", "layer", "station_class", "lon", "lat", "snap_m"],
                ),
                "unsnapped": _records(
                    result.unsnapped, ["id", "name", "layer", "lon", "lat", "snap_m"]
                ),
                "summary": summ,
                "areas": _records(figs),
                "first_due": _records(due),
                "uncovered": _records(clusters.drop(columns=["geometry"])),
                "isochrones": {str(m): g for m, g in coverage.isochrones(result, mins).items()},
            }
        )
        return
    click.echo(
        f"mode: {result.mode}   responders: {summ['responders']}   not on the road network: {summ['unsnapped']}"
    )
    for layer in result.layers:
        click.echo(
            f"  {layer}: target {result.targets_s[layer] / 60:.0f} min incl. turnout {result.turnouts_s[layer]:.0f} s"
            f" → built-up area reached {summ[f'area_share_{layer}']:.1%}"
            if summ[f"area_share_{layer}"] is not None
            else f"  {layer}: no built-up cells"
        )
    if summ["area_share"] is not None:
        click.echo(
            f"built-up area reached: {summ['covered_km2']:.2f} of {summ['area_km2']:.2f} km² ({summ['area_share']:.1%})"
        )
    if summ["places_share"] is not None:
        click.echo(
            f"key places reached: {summ['places_covered']} of {summ['places']} ({summ['places_share']:.1%})"
        )
    for row in result.unsnapped.itertuples():
        click.echo(
            f"  not snapped: {row.layer} {row.id} is {row.snap_m:.0f} m from the nearest road"
        )
    click.echo(f"\nper {level} (worst first):")
    click.echo(
        figs[["name", "area_km2", "area_share", "places", "places_share", "weight_share"]]
        .round(3)
        .to_string(index=False)
    )
    if len(due):
        click.echo("\nfirst-due areas of fire stations (建标152 limits):")
        click.echo(
            due[["id", "name", "station_class", "area_km2", "limit_km2", "over_limit"]].to_string(
                index=False
            )
        )
    if len(clusters):
        click.echo("\nworst uncovered clusters:")
        click.echo(clusters.drop(columns=["geometry"]).round(4).to_string(index=False))


@click.command()
@click.argument("k", type=int)
@db_option
@config_option
@click.option(
    "--candidates",
    "candidates_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="CSV with lon,lat columns of candidate sites (default: road nodes in uncovered built-up cells).",
)
@click.option(
    "--layer",
    type=click.Choice(["micro_station", "fire_station"]),
    default="micro_station",
    show_default=True,
)
@click.option(
    "--exact",
    is_flag=True,
    help="Also solve the exact maximal covering (HiGHS) and show the greedy gap.",
)
@click.option(
    "--mode", type=click.Choice(["auto", "network", "radius"]), default="auto", show_default=True
)
@json_option
def site(k, db, config, candidates_file, layer, exact, mode, as_json) -> None:
    """Suggest K new responder sites (greedy maximal covering, Church & ReVelle 1974)."""
    from geo import siting

    scene = _scene(db, config, mode)
    cands = None
    if candidates_file:
        cands = pd.read_csv(candidates_file)
        cols = {c.lower(): c for c in cands.columns}
        lon = next((cols[c] for c in ("lon", "lng", "longitude", "经度", "x") if c in cols), None)
        lat = next((cols[c] for c in ("lat", "latitude", "纬度", "y") if c in cols), None)
        if lon is None or lat is None:
            raise ReadError(
                f"{candidates_file}: needs lon and lat columns; headers seen: {list(cands.columns)}"
            )
        cands = cands.rename(columns={lon: "lon", lat: "lat"})
    result = siting.suggest_sites(scene, k, cands, layer, exact=exact)
    if as_json:
        echo_json(
            {
                "mode": result.mode,
                "method": result.method,
                "layer": result.layer,
                "k": result.k,
                "objective": result.objective,
                "demand_weight": result.demand_weight,
                "demand_cells": result.demand_cells,
                "candidates": result.candidates,
                "exact_objective": result.exact_objective,
                "gap": result.gap,
                "sites": _records(result.picks),
            }
        )
        return
    click.echo(
        f"mode: {result.mode}; {result.demand_cells} uncovered built-up cells (weight {result.demand_weight:.1f}), "
        f"{result.candidates} candidate sites"
    )
    click.echo(result.picks.to_string(index=False))
    if result.exact_objective is not None:
        click.echo(
            f"exact optimum (HiGHS): {result.exact_objective:.1f}; greedy {result.objective:.1f}; gap {result.gap:.2%}"
        )


def _finite_point(lon: float, lat: float) -> None:
    """LON/LAT must be numbers a map can hold (click's float type accepts nan and inf)."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise click.BadParameter(
            f"LON and LAT must be finite numbers, got {lon!r} {lat!r} (e.g. 121.22 31.03)"
        )


def _echo_rows(title: str, frame: pd.DataFrame, empty: str, drop: list[str]) -> None:
    """A titled table, or one line saying why there is none (never "Empty DataFrame")."""
    click.echo(title)
    if frame.empty:
        click.echo(f"  ({empty})")
        return
    click.echo(frame.drop(columns=drop, errors="ignore").to_string(index=False))


def _mss(seconds: Any) -> str:
    """Seconds as m:ss (a dash when unknown)."""
    if seconds is None or not np.isfinite(float(seconds)):
        return "–"
    whole = int(round(float(seconds)))
    return f"{whole // 60}:{whole % 60:02d}"


def _availability_text(row: Any) -> str:
    """on duty / busy (call, since) / out of service."""
    if row.availability == "busy":
        since = pd.Timestamp(row.busy_since)
        return f"busy: {row.busy_incident}" + ("" if pd.isna(since) else f" since {since:%m-%d %H:%M}")
    return str(row.availability).replace("_", " ")


def _echo_responders(result: Any, reach: str) -> None:
    """Responders by ETA with their availability, times as m:ss."""
    from geo import dispatch

    r = result.responders
    table = pd.DataFrame({
        "rank": r["rank"], "kind": [dispatch.group_label(g) for g in r["group"]], "send": r["group_rank"],
        "id": r["id"], "name": r["name"], "availability": [_availability_text(x) for x in r.itertuples()],
        "eta": [_mss(v) for v in r["eta_s"]], "turnout": [_mss(v) for v in r["turnout_s"]],
        "travel": [_mss(v) for v in r["travel_s"]], "distance_m": r["distance_m"], "within_target": r["within_target"],
    })
    _echo_rows("responders by ETA (each kind; send = order among available units, 0 = not available):",
               table, f"no responder reaches this point {reach}", [])


def _echo_place(result: Any) -> None:
    """The key place with its pre-plan fields and open hazards."""
    kp = result.key_place
    if kp:
        click.echo(
            f"place: {kp.get('name')} ({kp.get('category')}, class {kp.get('inspection_class')}), "
            f"{kp.get('distance_m')} m away"
        )
        preplan = ("last_inspection", "storeys", "occupants", "hazmat", "contact", "phone")
        shown = [f"{k}: {kp[k]}" for k in preplan if kp.get(k) not in (None, "")]
        if shown:
            click.echo("  pre-plan: " + "; ".join(shown))
    for h in result.hazards.itertuples():
        click.echo(f"  open hazard: {h.category} [{h.severity}] {h.status}")


def _echo_vulnerable(result: Any) -> None:
    """Vulnerable residents within the radius: counts, then nearest first."""
    from geo import dispatch

    people = result.vulnerable
    counts = dispatch.vulnerable_counts(people)
    by_cat = ", ".join(f"{c['category'] or '?'} {c['count']}" for c in counts["by_category"])
    by_risk = ", ".join(f"{c['risk_level'] or 'unrated'} {c['count']}" for c in counts["by_risk"])
    title = f"vulnerable residents within {result.vulnerable_radius_m:.0f} m (straight line): {len(people)}"
    click.echo(title + (f"  [{by_cat}; risk: {by_risk}]" if len(people) else ""))
    if len(people):
        cols = ["distance_m", "category", "risk_level", "mobility", "address", "name", "phone", "carer"]
        click.echo(people[cols].astype(object).where(people[cols].notna(), "").to_string(index=False))


def _context(db: str | None, incident: str | None):
    """The store's duty status, busy units, pre-plan and residents; ``incident`` must exist."""
    from geo import dispatch, store

    con = store.connect(db)
    try:
        if incident is not None and con.execute("SELECT count(*) FROM incident WHERE id = ?", [incident]).fetchone()[0] == 0:
            raise click.BadParameter(f"no incident with id {incident!r} in the database", param_hint="--incident")
        return dispatch.load_context(con)
    finally:
        con.close()


@click.command(name="dispatch")
@click.argument("lon", type=float)
@click.argument("lat", type=float)
@db_option
@config_option
@click.option(
    "--crs",
    default="wgs84",
    show_default=True,
    help="CRS of LON LAT: wgs84, cgcs2000, gcj02 (AMap), bd09 (Baidu).",
)
@click.option(
    "-n",
    "--per-kind",
    "per_kind",
    default=None,
    type=click.IntRange(1, 50),
    help="Available responders listed of each kind (micro stations, each fire-station kind); default: setting dispatch_per_kind.",
)
@click.option("--incident", default=None, help="Id of the call being dispatched: its own units are not counted busy.")
@click.option("--show-personal", is_flag=True, help="Show names and phone numbers unmasked (masked by default).")
@json_option
def dispatch_cmd(lon, lat, db, config, crs, per_kind, incident, show_personal, as_json) -> None:
    """For a point: the nearest available responders of each kind by ETA (busy and out-of-service ones marked),
    working water, the place with its pre-plan and hazards, vulnerable residents nearby."""
    from geo import crs as crsmod
    from geo import dispatch

    _finite_point(lon, lat)
    x, y = crsmod.to_wgs84(np.array([lon]), np.array([lat]), crs)
    scene = _scene(db, config)
    context = _context(db, incident)
    result = dispatch.dispatch(scene, float(x[0]), float(y[0]), per_kind=per_kind, context=context,
                               incident_id=incident, show_personal=show_personal)
    if as_json:
        echo_json(dispatch.to_json(result))
        return
    click.echo(f"mode: {result.mode}" + (f"  ({result.note})" if result.note else ""))
    _echo_place(result)
    reach = "along roads" if result.mode == "network" else "in a straight line"
    _echo_responders(result, reach)
    search = f"within {scene.settings.dispatch_water_search_m:.0f} m along roads" if result.mode == "network" else "stored"
    _echo_rows("working hydrants:", result.hydrants, f"no working hydrant {search}", ["lon", "lat"])
    _echo_rows("water sources:", result.water_sources, f"no usable water source {search}", ["lon", "lat"])
    _echo_vulnerable(result)
    click.echo("personal fields: " + ("shown" if result.personal_shown else "masked (--show-personal to show)"))


COMMANDS: list[click.Command] = [roads, coverage_cmd, site, dispatch_cmd]
