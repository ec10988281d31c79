"""The ONE place a layer type is listed. Add a spec module, then its line here."""

from __future__ import annotations

from layers import (
    admin_area,
    alarm,
    fire_station,
    grid,
    hazard,
    hydrant,
    incident,
    key_place,
    micro_station,
    vulnerable_person,
    water_source,
)
from layers.base import LayerSpec

LAYERS: dict[str, LayerSpec] = {
    spec.name: spec
    for spec in (
        admin_area.SPEC,
        grid.SPEC,
        hydrant.SPEC,
        water_source.SPEC,
        micro_station.SPEC,
        fire_station.SPEC,
        key_place.SPEC,
        hazard.SPEC,
        incident.SPEC,
        alarm.SPEC, alarm.DEVICE_SPEC,
        vulnerable_person.SPEC,
    )
}


def get_spec(name: str) -> LayerSpec:
    """The spec of layer ``name``; the error lists the known layers."""
    try:
        return LAYERS[name]
    except KeyError:
        msg = f"unknown layer {name!r}; known layers: {', '.join(LAYERS)}"
        raise KeyError(msg) from None


def point_layers() -> list[LayerSpec]:
    """Specs whose geometry is a point."""
    return [s for s in LAYERS.values() if s.geometry == "point"]


def polygon_layers() -> list[LayerSpec]:
    """Specs whose geometry is a polygon."""
    return [s for s in LAYERS.values() if s.geometry == "polygon"]
