"""Layer specs: what import, the store, the legend and popups rely on."""

from __future__ import annotations

import re

import pytest

from geo import store
from layers.base import LAT_ALIASES, LON_ALIASES, normalise_header
from layers.registry import LAYERS, get_spec

HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")


@pytest.mark.parametrize("name", list(LAYERS))
def test_spec_is_consistent(name: str):
    spec = LAYERS[name]
    assert spec.name == name
    assert spec.zh and spec.en and spec.zh != spec.en
    names = spec.field_names
    assert names[0] == "id" and len(names) == len(set(names))
    # no header maps to two fields of the same layer
    seen: dict[str, str] = {}
    for f in spec.fields:
        assert f.zh and f.en, f.name
        for alias in f.all_names():
            key = normalise_header(alias)
            assert seen.setdefault(key, f.name) == f.name, (name, alias, seen[key], f.name)
    # coordinate headers are never taken by a field
    coords = {normalise_header(a) for a in (*LON_ALIASES, *LAT_ALIASES)}
    assert not coords & set(seen), (name, coords & set(seen))
    for t in spec.time_order:
        assert spec.field(t).type == "datetime"
    if spec.sort_by:
        assert spec.sort_by in names


@pytest.mark.parametrize("name", list(LAYERS))
def test_style_colours_cover_every_value(name: str):
    style = LAYERS[name].style
    assert HEX.match(style.color)
    if style.color_by:
        choices = LAYERS[name].field(style.color_by).choices
        assert choices and set(style.colors) == set(choices)
        assert all(HEX.match(c) for c in style.colors.values())


def test_unknown_layer_lists_the_known_ones():
    with pytest.raises(KeyError, match="hydrant"):
        get_spec("hydrants")


def test_every_layer_gets_a_table(tmp_db):
    with store.writer(tmp_db) as con:
        tables = set(store.query(con, "SELECT table_name FROM information_schema.tables")["table_name"])
    assert set(LAYERS) <= tables
    for spec in LAYERS.values():
        if spec.geometry == "polygon":
            assert store.cover_table(spec.name) in tables
