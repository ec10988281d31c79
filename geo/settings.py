"""Typed settings: every domain number with its default from the standards and seeds.

Each field's docstring (the ``help`` metadata) names its source. Override with a TOML
file (``onemap.toml`` in the working directory, ``ONEMAP_CONFIG`` or ``--config``) and
with CLI options. A test fails when a setting has no help text.

Sources quoted below:
- seed 000: 松江区基层消防安全综合治理 (three-class grid inspection)
- seed 002: 平阳县 (night patrol, warnings)
- seed 003: 开州区 (ancient town water, forest firebreak, yearly check)
- seed 004: 陆家嘴街道 (micro station "1-3-5", weekly class-1 inspection)
- 建标152-2017 城市消防站建设标准; GB 50974-2014 消防给水及消火栓系统技术规范;
  GB 51080-2015 城市消防规划规范; 公消〔2015〕301号 微型消防站建设标准; NFPA 1710.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from geo.errors import ConfigError
from geo.settings_check import check_value


def _s(default: Any, help: str) -> Any:
    """A setting with its default and its documented source."""
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """All configurable numbers of onemap (see module docstring for sources)."""

    # --- storage and indexing -------------------------------------------------------
    db_path: str = _s("data/onemap.duckdb", "DuckDB file; `--db` or ONEMAP_DB override it.")
    china_bounds: list = _s([73.4, 3.8, 135.1, 53.6], "lon/lat box of China used to reject points outside China for Chinese CRSs.")
    area_of_interest: list | None = _s(None, "Optional [min_lon, min_lat, max_lon, max_lat]; points outside are rejected.")
    ingest_memory_mb: float = _s(1024.0, "Peak memory (MB) `onemap ingest` aims to stay under whatever the file size: a bigger file is read, validated and written in chunks (issue 17: a 20M-row provincial export on a 24 GB server, or a district office PC with a few GB free; 1 GB leaves room for the dashboard beside it).")
    ingest_chunk_rows: int = _s(0, "Rows per chunk of a chunked ingest; 0 = derived from ingest_memory_mb and the file's bytes per row (set it only to test chunking on small files).")

    # --- response standards -----------------------------------------------------------
    micro_station_minutes: float = _s(3.0, "Micro station on scene within 3 min: the 1-3-5 rule (seed 004; 公消〔2015〕301号 '3分钟到场').")
    micro_station_turnout_s: float = _s(60.0, "Micro station turnout: respond within 1 min (1-3-5 rule, seed 004).")
    fire_station_minutes: float = _s(5.0, "Fire station reaches the edge of its area within 5 min of the dispatch order (建标152-2017).")
    fire_station_turnout_s: float = _s(60.0, "Fire station turnout inside the 5 min (建标152-2017 counts from the order; NFPA 1710 allows 60-80 s).")
    isochrone_minutes: list = _s([1.0, 3.0, 5.0], "Minutes drawn as isochrones by default (1-3-5 rule, seed 004).")
    station_area_limits_km2: dict = _s(
        {"一级": 7.0, "二级": 4.0, "小型": 2.0, "郊区": 15.0},
        "Station area limits by station class (建标152-2017: class 1 ≤ 7 km², class 2 ≤ 4 km², small ≤ 2 km², suburban ≤ 15 km²).",
    )
    station_min_distance_crowded_m: float = _s(50.0, "Siting: no candidate site within 50 m of a crowded venue (key place of a category in crowded_venue_categories): a station's exit ≥ 50 m from their evacuation exits (GB 51080-2015 §4.1.5).")
    station_min_distance_hazmat_m: float = _s(200.0, "Siting: no candidate site within 200 m of a hazmat site (key place of a category in hazmat_categories; GB 51080-2015 §4.1.5).")
    crowded_venue_categories: list = _s(["学校", "医院", "商场市场", "养老机构", "宾馆民宿"], "Key-place categories that are crowded venues (人员密集场所: 消防法 §73; GB 51080-2015 §4.1.5 names schools, hospitals, markets, theatres) for station_min_distance_crowded_m.")
    hazmat_categories: list = _s(["易燃易爆场所"], "Key-place categories that are hazmat sites (甲乙类厂房, 易燃易爆危险品场所; GB 51080-2015 §4.1.5) for station_min_distance_hazmat_m.")

    # --- roads ---------------------------------------------------------------------
    road_speeds_kmh: dict = _s(
        {
            "motorway": 80.0, "trunk": 60.0, "primary": 50.0, "secondary": 40.0,
            "tertiary": 35.0, "unclassified": 30.0, "residential": 25.0,
            "living_street": 10.0, "service": 15.0, "default": 30.0,
        },
        "Free-flow speed per OSM highway class when maxspeed is absent (GB 50220 urban road design speeds, rounded down).",
    )
    urban_slowdown_factor: float = _s(0.7, "Travel speed = speed × factor for fire appliances in urban traffic (documented assumption; set 1.0 to disable).")
    road_calibration_calls: int = _s(0, "Measured calls `onemap calibrate --write` fitted urban_slowdown_factor to (written with it; 0 = the factor is the documented assumption, not calibrated). /plan names the model it uses from this.")
    road_calibration_date: str = _s("", "Day (YYYY-MM-DD) `onemap calibrate --write` fitted urban_slowdown_factor (written with it; empty = not calibrated).")
    snap_distance_m: float = _s(300.0, "A responder or demand point farther than this from the road network is reported, not snapped.")
    radius_mode_speed_kmh: float = _s(30.0, "Straight-line mode: reach radius = speed × (minutes − turnout) (used where there is no road data).")

    # --- water ------------------------------------------------------------------------
    hydrant_protection_radius_m: float = _s(150.0, "Municipal hydrant protection radius ≤ 150 m (GB 50974-2014 §7.2.5).")
    hydrant_max_spacing_m: float = _s(120.0, "Municipal hydrant spacing ≤ 120 m (GB 50974-2014 §7.2.5).")
    hydrant_min_pressure_mpa: float = _s(0.14, "Hydrant pressure ≥ 0.14 MPa in normal operation (GB 50974-2014 §7.2.8): a hydrant with a known lower pressure_mpa does not count as working, whatever its status, and the water check lists it.")
    hydrant_working_statuses: list = _s(["正常"], "Hydrant statuses that count as working; 损坏/水压不足/停用 do not (GB 50974).")
    fire_pool_min_m3: float = _s(500.0, "Fire pool (消防水池) capacity ≥ 500 m³ (seed 003, 温泉古镇 ancient town): the water check lists pools with a known smaller capacity_m3, and nearest water flags them.")
    water_source_working_statuses: list = _s(["正常"], "Water-source statuses that count as usable (a source with no status counts as usable; 损坏/停用 do not).")

    # --- coverage, siting and dispatch (issue 3) -------------------------------------------
    responder_active_statuses: list = _s(["在用", "在役"], "Responder statuses that count in coverage (在建/建设中/规划 do not; no status counts as active).")
    coverage_cluster_res: int = _s(9, "H3 resolution at which uncovered built-up cells are grouped into ranked clusters (res 9 ≈ 0.1 km²).")
    siting_weight_cell: float = _s(1.0, "Siting demand weight of every uncovered built-up cell (documented assumption).")
    siting_weight_key_place: float = _s(5.0, "Siting demand weight added per key place in a cell (documented assumption).")
    siting_weight_hazard: float = _s(2.0, "Siting demand weight added per open hazard in a cell (documented assumption).")
    siting_weight_per_1000_people: float = _s(1.0, "Siting demand weight per 1000 residents (grid population spread evenly over its cells; assumption).")
    siting_exact_time_limit_s: float = _s(60.0, "Time limit of the exact maximal-covering solve (scipy.optimize.milp, HiGHS).")
    dispatch_place_radius_m: float = _s(50.0, "Dispatch: the key place within this distance of the incident is shown with its open hazards.")
    dispatch_water_search_m: float = _s(2000.0, "Dispatch: hydrants and water sources are searched along roads up to this distance.")
    dispatch_per_kind: int = _s(2, "Dispatch: responders listed per kind (micro stations; each fire-station kind: 消防救援站, 政府专职消防队, ...): the nearest and one back-up of each, as joint dispatch (统一调度, seeds 002/004) sends every kind; local practice, override per district.")

    # --- measured response (issue 15) -----------------------------------------------------
    response_max_interval_s: float = _s(86400.0, "Incident import: an interval (call → rolling → arrival → cleared) over this many seconds is rejected as a data error (a day; dispatch-system exports with a wrong date).")
    response_worst_calls: int = _s(10, "Response performance: the slowest calls listed for review (display choice).")
    dispatch_vulnerable_radius_m: float = _s(300.0, "Dispatch: vulnerable residents (特殊群体, seeds 001/003) within this distance of a call are counted and listed (local practice: the block around the address; override per district).")

    # --- inspection and hazards ---------------------------------------------------------
    inspection_interval_days: dict = _s(
        {"1": 31, "2": 92, "3": 183},
        "Inspection interval per class: 1 monthly, 2 quarterly, 3 half-yearly (seed 000; Lujiazui class 1 weekly, seed 004).",
    )
    recurring_window_days: int = _s(90, "Two or more hazards at one place within this many days make it a recurring place (committee practice; seed 000 asks to track recurring places).")
    hazard_deadline_days: dict = _s(
        {"一般": 15, "重大": 60},
        "Default rectification deadline by severity when a file has none (local practice; override per district).",
    )

    # --- hotspots -------------------------------------------------------------------------
    hotspot_resolution: int = _s(8, "H3 resolution of the Gi* hotspot map (res 8 ≈ 0.74 km²).")
    hotspot_k_ring: int = _s(1, "Gi* neighbours: cells within k rings (k = 1: the 6 neighbours).")
    hotspot_fdr_alpha: float = _s(0.05, "False-discovery-rate level for Gi* (Benjamini-Hochberg), as ArcGIS applies it.")
    warning_period_days: int = _s(30, "Hazard warnings monthly; weekly (7) in special periods (seed 002).")
    trend_alpha: float = _s(0.05, "Significance of the Mann-Kendall trend test for emerging hotspots.")
    hotspot_confidence_levels: list = _s([0.90, 0.95, 0.99], "Gi* bins ±1/±2/±3 at these confidence levels (ArcGIS Hot Spot Analysis Gi_Bin: 90/95/99 %).")
    trend_hot_share: float = _s(0.9, "Emerging hotspots: hot in at least this share of the months counts as persistent/intensifying/diminishing (ArcGIS Emerging Hot Spot Analysis: 90 %).")
    trend_hot_confidence: float = _s(0.90, "Emerging hotspots: a cell is hot in a month when its Gi* z is positive at this confidence (ArcGIS EHSA uses 90 %).")
    warning_baseline_days: int = _s(365, "Rate warnings compare the current period with this many days before it (documented assumption: one year of history).")
    warning_alpha: float = _s(0.05, "Rate warnings: a grid is warned when its FDR-adjusted p-value is below this (Poisson rate-ratio test).")
    wall_ticker_n: int = _s(12, "Latest hazards/alarms listed in the wall display's ticker (display choice).")
    warning_min_count: int = _s(3, "Rate warnings: at least this many hazards in the current period before a grid is warned (avoids warnings on 1-2 hazards).")
    scorecard_weights: dict = _s(
        {"rectification_rate": 30, "on_time_rate": 25, "inspection_compliance": 25, "in_grid_share": 10, "no_recurrence_rate": 10},
        "Town scorecard (考核) weights: score = 100 × Σ w·rate / Σ w over rectification rate (closed/discovered), on-time rate (closed by the deadline), inspection compliance (三级网格化排查, seed 000), in-grid share of general hazards (一般隐患不出网格) and 1 − recurring-place share; local practice, set per district.",
    )

    # --- dashboard --------------------------------------------------------------------------
    host: str = _s("127.0.0.1", "Address the dashboard listens on.")
    port: int = _s(8050, "Port the dashboard listens on.")
    server_threads: int = _s(8, "Worker threads of the dashboard's WSGI server (waitress): requests served at once (wall, planners' browsers, map tiles of GeoJSON).")
    review_default_days: int = _s(365, "Opening period of the committee review page and the committee report: the days up to and including the newest hazard's day (a year: yearly assessment, 考核).")
    wall_refresh_s: int = _s(10, "Wall display refresh period in seconds.")
    wall_rotate_towns_s: int = _s(0, "Rotate the wall map through towns every N seconds (0 = off).")
    tiles: str = _s("none", "Basemap: none (offline), osm, tianditu, amap, or a URL template of a local tile server.")
    tiles_url: str = _s("", "URL template for tiles = url (e.g. http://127.0.0.1:8080/{z}/{x}/{y}.png).")
    tianditu_key: str = _s("", "Tianditu key (tiles = tianditu).")
    province_results: str = _s("", "Directory of `onemap province run --out` results that the /province page reads with DuckDB (empty: the page says how to make them).")
    province_district_urls: dict = _s({}, "Drill-down from /province: district code (adcode) → URL of that district's own dashboard where it is served (http/https only), e.g. 310117 = \"https://songjiang.intranet/\".")
    point_cluster_zoom: int = _s(14, "From this zoom on, point layers show clustered viewport points; below it, H3 hexagons.")
    viewport_max_points: int = _s(20000, "Most points sent for one layer's viewport; above it the map shows res-10 hexagons instead (browser stays fast).")
    cluster_min_points: int = _s(500, "Point layers with more rows than this are clustered on the map and hidden by default; sparser ones (stations, water) show every point.")
    hex_min_points: int = _s(3000, "A layer with fewer points than this in the viewport is drawn as (clustered) points at any zoom; hexagons only pay off for dense layers.")
    hex_zoom_offset: int = _s(4, "Display H3 resolution = map zoom − this offset, clamped to the stored res 7-10 (hexagons ~10-40 px wide).")
    road_detail_zoom: int = _s(13, "From this zoom on every road in the viewport is drawn; below it only the classes in map_major_roads.")
    map_major_roads: list = _s(["motorway", "trunk", "primary", "secondary"], "OSM highway classes drawn at low zoom as the map's skeleton when there are no tiles.")
    map_zone_simplify_m: float = _s(30.0, "Display simplification of drawn zones (isochrones) in metres (Douglas-Peucker, topology kept): a display choice for draw speed, not a standard; figures use the exact cells.")
    cache_max_mb: float = _s(128.0, "Memory (MB) each cache of derived answers may hold (GeoJSON per URL, page figures, study areas, cell tables); least recently used entries go beyond it, and a database snapshot's entries go with the snapshot (operations choice, not a standard).")

    # --- live feed (issue 12) --------------------------------------------------------------
    live_max_body_kb: float = _s(1024.0, "Largest body (KB) `POST /api/v1/events/<layer>` accepts; larger answers 413 (operations choice: 1 MB holds about 2,000 hazards, a platform sends more as several batches).")
    live_max_features: int = _s(1000, "Most Features in one feed POST; more answers 400 (operations choice, with live_max_body_kb; a JSON list of the API holds at most 1,000 items).")
    live_fold_s: float = _s(2.0, "Seconds between folds of the live journal into the database snapshot while events wait (each fold copies the file, about 1 s per GB: a larger value for a large database).")
    live_keep_s: float = _s(3600.0, "Seconds a folded journal event stays readable by `journal.changes_since` (a wall or client polling with an older token reads the snapshot instead).")
    device_offline_after_s: float = _s(900.0, "A device (IoT layer `device`) whose last heartbeat is older than this many seconds counts offline in the online rate (GB 26875.1 has the user information transmission device report its own state to the remote monitoring centre; platforms commonly beat every 5 min, so 900 s = three missed beats; NB-IoT smoke detectors beat less often: set it to about 3x your platform's interval).")
    wall_live_poll_s: float = _s(0.5, "Seconds between the wall's light checks of the live journal head (a Dash callback that answers no_update while the head stays put: a few ms each); a moved head brings the new alarms, incidents and hazards to the ticker and map (issue 12: on the wall within 2 s of the POST; with 1 s one POST of three took 2.2 s on a loaded 2-core machine, with 0.5 s they took 0.8-1.6 s).")
    watch_settle_s: float = _s(2.0, "`onemap watch` takes a dropped file only once its size and modification time have not changed for this many seconds (a platform still writing it is left alone).")

    # --- sign-in and sessions (issue 13) ---------------------------------------------------
    password_min_length: int = _s(8, "Shortest password `onemap user add`/`passwd` accept (GB/T 22239-2019 等保2.0 §8.1.4.1 a 口令复杂度; 8 characters is the common floor).")
    login_max_failures: int = _s(5, "Failed sign-ins allowed per user name and per client address within login_lock_minutes; more answer 429 until the window passes (GB/T 22239-2019 等保2.0 §8.1.4.1 b 登录失败处理, 限制非法登录次数; 5 is common practice).")
    login_lock_minutes: float = _s(15.0, "Window (minutes) in which login_max_failures failed sign-ins lock a user name or client address (GB/T 22239-2019 §8.1.4.1 b; 15 min is common practice).")
    session_idle_minutes: float = _s(120.0, "A signed-in session ends after this many minutes without a request (GB/T 22239-2019 §8.1.4.1 b 登录连接超时自动退出; a wall polling every wall_refresh_s stays signed in).")
    session_cookie_secure: bool = _s(False, "Send the session cookie only over HTTPS (set true when a TLS reverse proxy serves the app).")
    auth_remote_user_header: str = _s("", "Header naming the signed-in user, set by the intranet's SSO reverse proxy (e.g. X-Remote-User); honoured only from auth_trusted_proxies; empty: off.")
    auth_trusted_proxies: list = _s(["127.0.0.1", "::1"], "Addresses or networks (CIDR) of the SSO reverse proxy whose auth_remote_user_header is believed (default: a proxy on this machine).")

    def __post_init__(self) -> None:
        """Check every value against its declared type and range (ConfigError names it)."""
        for f in fields(self):
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
            value = getattr(self, f.name)
            if type(value) is not type(default) or value != default:  # defaults are valid (tested)
                check_value(f, value, default)

    def with_overrides(self, **overrides: Any) -> Settings:
        """Return a copy with some settings replaced (unknown names raise ConfigError)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            msg = f"unknown setting(s) {unknown}; known settings: {sorted(known)}"
            raise ConfigError(msg)
        return dataclasses.replace(self, **overrides)

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then the TOML file (``path``, ``ONEMAP_CONFIG`` or ./onemap.toml), then overrides."""
        settings = cls()
        cfg = path or os.environ.get("ONEMAP_CONFIG")
        if cfg is None and Path("onemap.toml").exists():
            cfg = "onemap.toml"
        if cfg is not None:
            p = Path(cfg)
            if not p.exists():
                raise ConfigError(f"config file {p} not found")
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"config file {p}: {exc}") from exc
            table = data.get("onemap", data)
            if not isinstance(table, dict):
                raise ConfigError(f"config file {p}: `onemap` must be a table ([onemap]), not {table!r}")
            try:
                settings = settings.with_overrides(**table)
            except ConfigError as exc:
                raise ConfigError(f"config file {p}: {exc}") from exc
        env_db = os.environ.get("ONEMAP_DB")
        if env_db:
            settings = settings.with_overrides(db_path=env_db)
        clean = {k: v for k, v in overrides.items() if v is not None}
        return settings.with_overrides(**clean) if clean else settings


def describe() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting, for `onemap settings` and the README."""
    return [(f.name, getattr(Settings(), f.name), f.metadata.get("help", "")) for f in fields(Settings)]
