"""Shape of the generated demo district: sizes, shares and rates (demo realism, not standards).

Standards and policy numbers (hydrant spacing, inspection intervals, deadlines, speeds,
turnout times) come from ``geo.settings.Settings``; this profile holds only the knobs of
the synthetic district. Each default says what it imitates.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoProfile:
    """Tunable numbers of the demo generator (counts are at scale 1)."""

    # --- space ---------------------------------------------------------------------
    town_inset_m: float = 1500.0  # a town centre outside the boundary moves this far inside
    street_radius_m: float = 3000.0  # built-up radius around a street (街道) centre
    town_radius_m: float = 1500.0  # built-up radius around a town (镇) centre
    town_centre_weight: float = 0.8  # built-up intensity at a town centre (a street's is 1)
    urban_noise: float = 0.35  # roughness of built-up edges (share of the intensity)
    noise_wavelength_m: tuple[float, float] = (3000.0, 9000.0)  # scale of that roughness
    built_up_threshold: float = 0.35  # intensity above which a place counts as built-up
    old_centre_radius_m: float = 900.0  # old-neighbourhood hotspot radius
    emerging_radius_m: float = 1200.0  # emerging hazard area radius

    # --- grids and communities (GB/T 30428 grid practice: a few hundred households) ----
    grid_km2_urban: float = 0.3  # grid size in the built-up core
    grid_km2_rural: float = 0.75  # grid size in the countryside
    grid_km2_min: float = 0.2  # smallest grid (issue 2: 0.2-1 km²)
    grid_km2_max: float = 1.0  # largest grid
    lloyd_iterations: int = 2  # relaxation steps that even out grid shapes
    grids_per_residents_committee: float = 5.0  # urban 居委 ≈ 5 grids
    grids_per_village: float = 8.0  # rural 村 ≈ 8 grids
    people_per_km2_urban: float = 18000.0  # built-up density (Shanghai suburban new town)
    people_per_km2_rural: float = 900.0  # countryside density

    # --- roads -----------------------------------------------------------------------
    block_m: float = 200.0  # street block in the built-up core (150-250 m)
    road_jitter: float = 0.2  # node jitter as a share of the block
    road_rotation_deg: float = 12.0  # largest rotation of the street lattice
    rural_drop_share: float = 0.15  # share of rural lattice edges that do not exist
    oneway_old_centre: float = 0.5  # old-centre intensity above which side streets are one-way

    # --- hydrants and water ------------------------------------------------------------
    hydrant_bad_shares: tuple[float, float, float] = (0.02, 0.012, 0.008)  # 损坏, 水压不足, 停用
    fire_pool_per_km2_rural: float = 0.04  # fire pools in villages and factories
    fire_pool_per_old_centre: int = 3  # fire pools in each old centre (seed 003: ancient town pool)
    intake_spacing_m: float = 2500.0  # natural intake points along rivers
    docks_per_river: int = 2  # intake docks (取水码头) per river
    intake_step_m: float = 50.0  # intakes sit where the river comes closest to a road (searched at this step)
    intake_reach_m: float = 100.0  # an intake is at most this far from a road node (engines must reach the bank)
    pool_setback_m: float = 30.0  # an old-centre fire pool lies this far off its street
    rivers: int = 3  # synthetic rivers crossing the district

    # --- stations ----------------------------------------------------------------------
    rescue_station_km2: float = 150.0  # one national station per this many km² (2-4 in all)
    brigade_share_rural_towns: float = 0.45  # rural towns with a government brigade
    key_unit_micro_share: float = 0.08  # class-3 places with their own micro station
    station_setback_m: float = 15.0  # a station's gate lies this far from its street junction (on the street)

    # --- key places, hazards, incidents (scale multiplies these) ----------------------
    key_places: int = 2000
    hazards: int = 50000
    hazard_years: float = 2.0
    incidents: int = 3000
    incidents_today: int = 8
    never_inspected_share: float = 0.05
    major_share: float = 0.025  # 重大 among hazards (issue 2: ~2-3%)
    on_spot_share: float = 0.35  # general hazards fixed on the spot
    stuck_share: float = 0.04  # hard cases that take ten times longer (overdue, supervised)
    place_linked_share: float = 0.45  # hazards found at a key place
    old_centre_hazard_share: float = 0.3  # street finds drawn from the old-neighbourhood field (rest: everywhere)
    emerging_hazard_share: float = 0.06  # hazards in emerging areas, growing over the last months
    emerging_months: float = 8.0  # emerging areas ramp up over these last months
    new_hotspot_days: int = 40  # the first emerging area appears only in these last days
    yearly_trend: float = 0.12  # hazards found per year grow by this share (more patrols)
    false_alarm_share: float = 0.4  # IoT alarms that turn out false (误报)
    open_today: int = 3  # calls of today still being handled at the end (their units are busy)

    # --- measured response (issue 15): drawn around the road model ---------------------
    turnout_median_s: float = 55.0  # call → rolling, lognormal median (1-min rule met most of the time)
    turnout_sigma: float = 0.2  # spread of turnout (≈ 40-75 s for the middle 90 %)
    slow_turnout_share: float = 0.05  # a tail of slow turnouts, 2-4× (crew away from the vehicle)
    travel_bias: float = 1.1  # measured over modelled road time, median (parking, gates, stairs)
    travel_noise_sigma: float = 0.25  # lognormal spread of measured / modelled travel
    rush_hour_factor: float = 1.35  # travel slower 7-9 and 17-19
    min_travel_s: float = 30.0  # shortest measured travel: out of the gate and to the door (a unit at its own site)
    fire_micro_share: float = 0.85  # fire calls to which the micro station goes too
    alarm_station_share: float = 0.15  # alarms to which a fire station goes too
    unit_id_share: float = 0.3  # units written by id in 出动力量 (the rest by name)
    unmatched_unit_share: float = 0.01  # calls also naming a unit no register holds (police, property team)
    suspended_responders: int = 2  # responders out of service (暂停执勤): a micro station and a brigade
    vulnerable_people: int = 400  # residents on the door-knocking list (特殊群体)
    vulnerable_at_home_share: float = 0.7  # of them living at a residential key place (the rest along streets)
