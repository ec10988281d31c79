"""`onemap simulate`: post a district's live day to a running app's feed API (issue 12).

Devices and their heartbeats, IoT alarms with their acknowledgement and closing, hazards
walking the closed loop, now and then a call (``data.demo_live``), at ``--rate`` events per
second, each one POST of one Feature with the token's ``Authorization: Bearer``. Prints what
was sent, the answers by status code and the POST latencies; exit 1 when an answer was a
5xx or the server could not be reached.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import click
import numpy as np

from dashboard.commands import echo_json, json_option
from data.demo_live import LiveDistrict
from geo import store
from geo.errors import OnemapError

DEFAULT_CENTRE = (121.228, 31.032)  # the demo district (Songjiang)
RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|min|minute))?\s*$")
SETUP_DEVICES = 60


def parse_rate(text: str) -> float:
    """Events per second of ``20/s``, ``20``, ``600/min`` (0 < rate ≤ 5000)."""
    m = RATE.match(str(text))
    if not m:
        raise click.BadParameter(f"{text[:40]!r}: give events per second as 20/s, 20 or 600/min")
    rate = float(m.group(1)) / (60.0 if (m.group(2) or "s").startswith("min") else 1.0)
    if not 0 < rate <= 5000:
        raise click.BadParameter(f"{text[:40]!r}: the rate must be above 0 and at most 5000/s")
    return rate


def district_points(db: str | None, centre: tuple[float, float]) -> list[tuple[float, float]]:
    """Where things happen: the grid cells' points of ``--db``, else a 5 km square around the centre."""
    if db:
        with store.Reader(db).connection() as con:
            rows = con.execute("SELECT lon, lat FROM grid WHERE lon IS NOT NULL USING SAMPLE 500 ROWS").fetchall()
        if rows:
            return [(float(a), float(b)) for a, b in rows]
    rng = random.Random(0)
    return [(centre[0] + rng.uniform(-0.025, 0.025), centre[1] + rng.uniform(-0.02, 0.02)) for _ in range(200)]


def _finite(value: float) -> float:
    """click's FloatRange lets NaN through (every comparison is false): refuse it here."""
    if value != value:
        raise click.BadParameter("the duration must be a number of seconds (0.1 to 604800), not NaN")
    return value


@dataclass
class Tally:
    """Answers by status code and layer, latencies, refusals seen (the first few)."""

    codes: Counter = field(default_factory=Counter)
    layers: Counter = field(default_factory=Counter)
    latency_s: list[float] = field(default_factory=list)
    refusals: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, layer: str, status: int | None, seconds: float, answer: Any) -> None:
        with self.lock:
            self.codes[status or 0] += 1
            self.layers[layer] += 1
            self.latency_s.append(seconds)
            if status != 201 and len(self.refusals) < 5:
                self.refusals.append({"layer": layer, "status": status, "answer": answer})


class Poster:
    """One keep-alive HTTP connection per thread to the feed API."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OnemapError(f"--url {url[:60]!r}: give the app's address, e.g. http://127.0.0.1:8050")
        self.parts, self.token, self.local = parts, token, threading.local()

    def _con(self) -> http.client.HTTPConnection:
        con = getattr(self.local, "con", None)
        if con is None:
            cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
            con = self.local.con = cls(self.parts.hostname, self.parts.port, timeout=30)
        return con

    def post(self, layer: str, body: dict[str, Any]) -> tuple[int | None, Any]:
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        path = f"{self.parts.path.rstrip('/')}/api/v1/events/{layer}"
        for attempt in (1, 2):  # a keep-alive connection the server closed: one new one
            try:
                con = self._con()
                con.request("POST", path, body=data, headers=headers)
                r = con.getresponse()
                raw = r.read()
                return r.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw[:200].decode("utf-8", "replace")
            except (OSError, http.client.HTTPException):
                self.local.con = None
                if attempt == 2:
                    return None, "unreachable"
        return None, "unreachable"


ID_KEYS = ("id", "报警编号", "隐患编号", "设备编号", "警情编号")


def record_id(feature: dict[str, Any]) -> str:
    """The id a Feature creates or updates (a later step of it waits until this one is answered)."""
    props = feature["properties"]
    return next((str(props[k]) for k in ID_KEYS if props.get(k)), "")


def run(poster: Poster, district: LiveDistrict, rate: float, duration_s: float, workers: int) -> Tally:
    """Post events at ``rate``/s for ``duration_s`` seconds from ``workers`` threads (slots in time order)."""
    tally, lock = Tally(), threading.Lock()
    start, slot = time.monotonic(), [0]

    def worker() -> None:
        while True:
            with lock:
                k = slot[0]
                slot[0] += 1
                due = start + k / rate
                if due - start >= duration_s or time.monotonic() - start >= duration_s:
                    return
                layer, feature = district.next_event(datetime.now())
                rid = record_id(feature)
                district.busy.add(rid)
            time.sleep(max(0.0, due - time.monotonic()))
            t0 = time.monotonic()
            status, answer = poster.post(layer, feature)
            tally.add(layer, status, time.monotonic() - t0, answer)
            with lock:
                district.busy.discard(rid)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return tally


def summary(tally: Tally, seconds: float, rate: float) -> dict[str, Any]:
    lat = np.array(tally.latency_s) * 1000 if tally.latency_s else np.array([np.nan])
    sent = sum(tally.codes.values())
    return {"sent": sent, "seconds": round(seconds, 2), "asked_rate": rate, "rate": round(sent / seconds, 2) if seconds else None,
            "by_status": {str(k): v for k, v in sorted(tally.codes.items())}, "by_layer": dict(tally.layers),
            "post_ms_p50": round(float(np.percentile(lat, 50)), 1), "post_ms_p95": round(float(np.percentile(lat, 95)), 1),
            "refusals": tally.refusals}


LIVE_DEMO_RATE = 5.0  # events per second of `onemap demo --live`: a busy district, easy to follow on the wall


def start_live_demo(db_path: str, url: str, rate: float = LIVE_DEMO_RATE) -> threading.Thread:
    """`onemap demo --live`: a token for the simulator and a thread that posts once the app answers."""
    from dashboard.access import audit
    from dashboard.access import tokens as keys

    text, row = keys.create(db_path, "demo-simulator", "hazard,incident,alarm,device")
    audit.record_cli(db_path, "user-change", f"token:{row.id}", None, {"source": row.source, "layers": list(row.layers)})

    def feed() -> None:
        poster = Poster(url, text)
        district = LiveDistrict(district_points(db_path, DEFAULT_CENTRE), random.Random(), prefix="DEMO")
        while poster.post("device", district.device_batch(SETUP_DEVICES, datetime.now()))[0] != 201:
            time.sleep(1.0)  # the app is still starting
        run(poster, district, rate, 7 * 86400.0, 2)

    thread = threading.Thread(target=feed, name="demo-simulator", daemon=True)
    thread.start()
    return thread


@click.command(name="simulate")
@click.option("--url", default="http://127.0.0.1:8050", show_default=True, help="The running app (onemap serve).")
@click.option("--token", required=True, help="A feed token for hazard,incident,alarm,device (onemap token create).")
@click.option("--rate", default="20/s", show_default=True, help="Events per second: 20/s, 20 or 600/min.")
@click.option("--duration", type=click.FloatRange(0.1, 7 * 86400), default=60.0, show_default=True,
              callback=lambda _ctx, _param, v: _finite(v), help="Seconds to run.")
@click.option("--db", "db", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Place events at this database's grid cells (default: around the demo district).")
@click.option("--seed", type=int, default=None, help="Random seed (the same seed sends the same day).")
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True, help="POSTs in flight at once.")
@json_option
def simulate(url, token, rate, duration, db, seed, workers, as_json) -> None:
    """Post realistic live events to a running app: device heartbeats, IoT alarms and their
    acknowledgement/closing, hazards along the closed loop, calls (for demos and benchmarks)."""
    per_s = parse_rate(rate)
    poster = Poster(url, token)
    district = LiveDistrict(district_points(db, DEFAULT_CENTRE), random.Random(seed),
                            prefix=f"SIM{seed if seed is not None else int(time.time()) % 100000}")
    status, answer = poster.post("device", district.device_batch(SETUP_DEVICES, datetime.now()))
    if status != 201:
        raise OnemapError(f"the feed refused the simulator's devices ({status}): {str(answer)[:300]}")
    t0 = time.monotonic()
    tally = run(poster, district, per_s, duration, workers)
    out = summary(tally, time.monotonic() - t0, per_s)
    if as_json:
        echo_json(out)
    else:
        click.echo(f"onemap simulate: {out['sent']:,} events in {out['seconds']} s ({out['rate']}/s, asked {per_s:g}/s)")
        click.echo(f"  answers {out['by_status']}  by layer {out['by_layer']}")
        click.echo(f"  POST p50 {out['post_ms_p50']} ms, p95 {out['post_ms_p95']} ms")
        for r in out["refusals"]:
            click.echo(f"  refused: {json.dumps(r, ensure_ascii=False)[:300]}")
    if any(k == 0 or k >= 500 for k in tally.codes):
        raise SystemExit(1)


COMMANDS: list[click.Command] = [simulate]
