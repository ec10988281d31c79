"""Benchmark: road-model calibration over 100k calls against one full coverage pass, same scene.

Run: .venv/bin/python bench/calibrate.py [--side 520] [--calls 100000] [--stations 60] [--micro 240]

The scene is bench/coverage.py's synthetic city, by default its ≥ 1M-edge one (a jittered street grid with arterials and
one-ways). Every call goes to a random road node; its first-due unit is the nearest station or
micro station by road, and its measured travel is the free-flow time / 0.6 with ±10 % noise.
Timed, best of ``--repeat`` runs each:

1. ``geo.calibrate.calibrate`` on the 100k calls: unit matching of 出动力量, snapping, the route
   times (one multi-source search per layer for calls whose unit is the nearest, a bounded
   Dijkstra per unit for the rest), the fit and the tables by class, town and hour;
2. ``geo.coverage.compute_coverage`` of the same scene (micro + fire stations to every node,
   carried to the H3 cells).

Target: calibration ≤ 2 × the coverage pass. ``main()`` returns the figures (bench/response.py
calls it).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo import calibrate, coverage  # noqa: E402
from geo.coverage_inputs import make_scene  # noqa: E402
from geo.network import graph_from_tables  # noqa: E402
from geo.settings import Settings  # noqa: E402

def _bench_coverage() -> Any:
    """bench/coverage.py as a module of its own name (``coverage`` is also a PyPI package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_coverage", Path(__file__).with_name("coverage.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TRUE_FACTOR = 0.6
TARGET_RATIO = 2.0


def _responders(nodes: pd.DataFrame, stations: int, micro: int, rng: np.random.Generator) -> pd.DataFrame:
    at = rng.choice(len(nodes), stations + micro, replace=False)
    layer = np.array(["fire_station"] * stations + ["micro_station"] * micro, dtype=object)
    ids = [f"F{i:03d}" for i in range(stations)] + [f"M{i:04d}" for i in range(micro)]
    return pd.DataFrame({"layer": layer, "id": ids, "name": [f"{i}站" for i in ids],
                         "lon": nodes["lon"].to_numpy()[at], "lat": nodes["lat"].to_numpy()[at]})


def _calls(graph: Any, responders: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Calls at random nodes; first-due = nearest unit by road; travel = free-flow / 0.6 × noise."""
    node = graph.snap(responders["lon"].to_numpy(), responders["lat"].to_numpy(), 1e6).node
    eta, which = coverage.multi_source_times(graph.seconds, node, np.zeros(len(node)))
    reached = np.flatnonzero(np.isfinite(eta) & (eta > 10) & (which >= 0))
    at = rng.choice(reached, n)
    free = eta[at] * graph_factor(graph)
    measured = np.round(free / TRUE_FACTOR * np.exp(rng.uniform(-0.1, 0.1, n)))
    rolled = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    return pd.DataFrame({
        "id": [f"J{i:06d}" for i in range(n)], "dispatched_at": rolled,
        "arrived_at": rolled + pd.to_timedelta(measured, unit="s"),
        "units": responders["id"].to_numpy()[which[at]], "lon": graph.lon[at], "lat": graph.lat[at],
        "town": np.where(graph.lon[at] < np.median(graph.lon), "西区", "东区"),
    })


def graph_factor(_graph: Any) -> float:
    """The factor the bench graph was built with (the settings default)."""
    return Settings().urban_slowdown_factor


def _best(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print it and return its figures (``argv`` None: the defaults, not sys.argv,
    so bench/response.py can call ``main()``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", type=int, default=520)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--stations", type=int, default=60)
    ap.add_argument("--micro", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args([] if argv is None else argv)
    rng = np.random.default_rng(15)
    settings = Settings()
    nodes, edges = _bench_coverage().synthetic_city(args.side)
    speed_class = {v: k for k, v in settings.road_speeds_kmh.items() if k != "default"}
    edges["highway"] = edges["speed_kmh"].map(speed_class)
    graph = graph_from_tables(nodes, edges, settings)
    classes = calibrate.edge_classes(graph, edges)
    responders = _responders(nodes, args.stations, args.micro, rng)
    scene = make_scene(responders.drop(columns="name"), graph, settings=settings)
    calls = _calls(graph, responders, args.calls, rng)
    t_cov, _ = _best(lambda: coverage.compute_coverage(scene), args.repeat)
    t_cal, fit = _best(lambda: calibrate.calibrate(calls, responders, graph, classes, settings), args.repeat)
    ratio = t_cal / t_cov
    figures = {
        "nodes": graph.n_nodes, "directed_edges": graph.n_edges, "responders": len(responders),
        "calls": len(calls), "calls_used": fit.used, "factor": round(fit.factor, 4),
        "coverage_s": round(t_cov, 3), "calibrate_s": round(t_cal, 3), "ratio": round(ratio, 2),
        "target": TARGET_RATIO, "pass": bool(ratio <= TARGET_RATIO),
    }
    print(f"scene: {graph.n_nodes:,} nodes, {graph.n_edges:,} directed edges, {len(responders)} responders "
          f"({args.stations} stations, {args.micro} micro stations)")
    print(f"coverage pass (compute_coverage):        {t_cov:7.3f} s  (best of {args.repeat})")
    print(f"calibration of {len(calls):,} calls:           {t_cal:7.3f} s  → {fit.used:,} used, "
          f"factor {fit.factor:.4f} (true {TRUE_FACTOR})")
    print(f"calibration / coverage: {ratio:.2f}  (target ≤ {TARGET_RATIO:g}) {'PASS' if figures['pass'] else 'FAIL'}")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:])
