"""The layer spec: fields, types, allowed values, aliases, zh/en names, geometry and style.

A spec is plain data. Import (header aliases, validation), the store schema, the map
legend, layer toggles, popups and `onemap layers` all read it; nothing else lists fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

FieldType = Literal["str", "int", "float", "bool", "date", "datetime"]
GeometryType = Literal["point", "polygon", "line"]

DUCKDB_TYPES: dict[str, str] = {
    "str": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}


@dataclass(frozen=True)
class Field:
    """One canonical column of a layer."""

    name: str
    type: FieldType
    zh: str
    en: str
    required: bool = False
    choices: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    help: str = ""
    # Other spellings of values, as (spelling, canonical value) pairs, e.g. ("一级", "1").
    # Ingestion maps them as parsing and records how many rows each mapping changed.
    value_aliases: tuple[tuple[str, str], ...] = ()
    # Personal data (a person's name, phone, ID number): masked for roles that do not need it.
    personal: bool = False

    def __post_init__(self) -> None:
        if self.choices:
            unknown = [c for _, c in self.value_aliases if c not in self.choices]
            if unknown:
                raise ValueError(f"field {self.name!r}: value aliases map to unknown values {unknown}")

    def value_map(self) -> dict[str, str]:
        """Accepted spelling → canonical value."""
        return dict(self.value_aliases)

    @property
    def sql_type(self) -> str:
        """DuckDB column type."""
        return DUCKDB_TYPES[self.type]

    def all_names(self) -> tuple[str, ...]:
        """Canonical name, Chinese name and aliases: every header that maps to this field."""
        return (self.name, self.zh, *self.aliases)


@dataclass(frozen=True)
class Style:
    """Default map style (Leaflet path options); colours are colour-blind safe (Okabe-Ito)."""

    color: str
    fill_color: str | None = None
    radius: float = 5.0
    weight: float = 1.5
    opacity: float = 0.9
    fill_opacity: float = 0.6
    dash_array: str | None = None
    # Optional colours per value of one field (e.g. status or severity).
    color_by: str | None = None
    colors: dict[str, str] = field(default_factory=dict)

    def as_leaflet(self) -> dict[str, object]:
        """Leaflet path options for this style."""
        opts: dict[str, object] = {
            "color": self.color,
            "fillColor": self.fill_color or self.color,
            "weight": self.weight,
            "opacity": self.opacity,
            "fillOpacity": self.fill_opacity,
            "radius": self.radius,
        }
        if self.dash_array:
            opts["dashArray"] = self.dash_array
        return opts


@dataclass(frozen=True)
class LayerSpec:
    """Everything onemap knows about one layer type."""

    name: str
    zh: str
    en: str
    geometry: GeometryType
    fields: tuple[Field, ...]
    style: Style
    description_zh: str = ""
    description_en: str = ""
    # Datetime fields that must be in this order when present (e.g. a hazard's status times).
    time_order: tuple[str, ...] = ()
    # Whether consecutive ``time_order`` steps more than ``Settings.response_max_interval_s``
    # apart are rejected (dispatch records: call → rolling → arrival → cleared), and the
    # duration fields (seconds) checked against the same limit and for negatives.
    limit_intervals: bool = False
    duration_fields: tuple[str, ...] = ()
    # Column the table is kept sorted by (DuckDB zone maps skip what a filter excludes).
    sort_by: str | None = None
    # Whether points get their grid/community/town assigned from the grid layer at ingest.
    assign_to_grid: bool = False
    # Rank on the map: lower draws first (polygons under points).
    z_order: int = 50
    # Field whose value is the row's id when the file has no id column (an area's division code).
    id_from: str | None = None

    @property
    def personal_fields(self) -> list[str]:
        """Names of the fields that hold personal data (masked where it is not needed)."""
        return [f.name for f in self.fields if f.personal]

    def field(self, name: str) -> Field:
        """The field called ``name`` (KeyError lists the known fields)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"layer {self.name!r} has no field {name!r}; fields: {[f.name for f in self.fields]}")

    @property
    def field_names(self) -> list[str]:
        """Canonical field names in order."""
        return [f.name for f in self.fields]

    @property
    def required(self) -> list[str]:
        """Names of the required fields."""
        return [f.name for f in self.fields if f.required]

    def alias_map(self) -> dict[str, str]:
        """Normalised header → canonical field name (see ``normalise_header``)."""
        out: dict[str, str] = {}
        for f in self.fields:
            for alias in f.all_names():
                out.setdefault(normalise_header(alias), f.name)
        return out

    def label(self, lang: str = "zh") -> str:
        """Display name in ``lang`` (zh or en)."""
        return self.zh if lang == "zh" else self.en

    def field_label(self, name: str, lang: str = "zh") -> str:
        """Display name of one field in ``lang``."""
        f = self.field(name)
        return f.zh if lang == "zh" else f.en


def normalise_header(header: object) -> str:
    """Header as compared with aliases: trimmed, lower case, no spaces, no full-width brackets."""
    text = str(header).strip().lower()
    for ch in " \t\u3000_-()（）[]【】:：":
        text = text.replace(ch, "")
    return text


# Coordinate header aliases shared by every point layer (read by ingestion, not fields).
LON_ALIASES: tuple[str, ...] = (
    "lon", "lng", "long", "longitude", "x", "经度", "东经", "x坐标", "坐标x", "gps经度", "经度坐标",
)
LAT_ALIASES: tuple[str, ...] = (
    "lat", "latitude", "y", "纬度", "北纬", "y坐标", "坐标y", "gps纬度", "纬度坐标",
)

# Fields shared by most layers, so each spec reads as what is special about it.
ID = Field("id", "str", "编号", "ID", aliases=("id", "code", "编码", "序号", "ID号", "fid", "osm_id", "objectid"),
           help="The source's own id; rows without one get a stable id from their content.")


def own_id(*headers: str) -> Field:
    """The id field with the headers a layer's registers give their own id (消火栓编号, 隐患编号).

    They come right after 编号 and before the shared aliases: when a register has several id-like
    columns, ingestion takes the one earliest in this order, so 消火栓编号 wins over 序号 (a row
    serial that changes when the register is re-sorted).
    """
    return replace(ID, aliases=(*headers, *ID.aliases))


NAME = Field("name", "str", "名称", "Name", aliases=("name", "名字", "单位名称", "场所名称"))
ADDRESS = Field("address", "str", "地址", "Address", aliases=("address", "addr", "详细地址", "位置", "所在地址"))
TOWN = Field("town", "str", "街镇", "Town/street", aliases=("town", "street", "乡镇", "街道", "镇街", "所属街镇", "所属街道"))
COMMUNITY = Field("community", "str", "社区", "Community", aliases=("community", "village", "居委", "村居", "居村委", "所属社区", "村委会", "居委会"))
GRID_ID = Field("grid_id", "str", "网格编号", "Grid", aliases=("grid", "grid_id", "网格", "所属网格", "网格号"))
DUTY_STATUS = Field(
    "duty_status", "str", "执勤状态", "Duty status", choices=("正常执勤", "暂停执勤"),
    aliases=("duty_status", "availability", "值守状态", "在岗状态", "可用状态"),
    value_aliases=(("在岗", "正常执勤"), ("执勤", "正常执勤"), ("值守", "正常执勤"), ("可用", "正常执勤"),
                   ("停用", "暂停执勤"), ("维修", "暂停执勤"), ("离岗", "暂停执勤"), ("不可用", "暂停执勤")),
    help="A responder that is out of service (暂停执勤) is not dispatched; empty means on duty. "
         "Busy (out on another call) is not stored: it follows from the open incidents naming the unit.",
)
REMARK = Field("remark", "str", "备注", "Remark", aliases=("remark", "note", "notes", "说明"))
LOCATION = (ADDRESS, TOWN, COMMUNITY, GRID_ID)
