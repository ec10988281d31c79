"""Demo areas: the real boundaries in ``data/boundaries/`` and the real names of their towns.

Town positions are approximate (hand-placed from public maps, a few km off at worst): they
only seed which grids belong to which town, so towns sit roughly where they really are.
A position that falls outside the boundary is replaced by a seeded point inside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

from geo.crs import gcj02_to_wgs84
from geo.errors import ConfigError, ReadError

BOUNDARY_DIR = Path(__file__).resolve().parent / "boundaries"


@dataclass(frozen=True)
class Town:
    """A town or street (街镇): real name, approximate centre (lon, lat) and its hazard pattern flags."""

    name: str
    lon: float
    lat: float
    old_centre: bool = False
    emerging: bool = False
    intensifying: bool = False  # an old centre whose hazards keep growing

    @property
    def is_street(self) -> bool:
        """Whether it is an urban street (街道) rather than a town (镇)."""
        return self.name.endswith("街道")


@dataclass(frozen=True)
class Area:
    """A district or county with its towns."""

    adcode: str
    name: str
    towns: tuple[Town, ...]


def _t(name: str, lon: float, lat: float, old: bool = False, emerging: bool = False, growing: bool = False) -> Town:
    return Town(name, lon, lat, old or growing, emerging, growing)


AREAS: dict[str, Area] = {
    "310117": Area("310117", "松江区", (
        _t("岳阳街道", 121.228, 31.006, old=True), _t("永丰街道", 121.200, 31.018),
        _t("方松街道", 121.222, 31.035), _t("中山街道", 121.255, 30.998),
        _t("广富林街道", 121.205, 31.062), _t("九里亭街道", 121.330, 31.135),
        _t("泖港镇", 121.150, 30.955), _t("石湖荡镇", 121.105, 30.985),
        _t("新浜镇", 121.040, 30.935), _t("叶榭镇", 121.300, 30.935),
        _t("小昆山镇", 121.125, 31.035), _t("车墩镇", 121.300, 31.000),
        _t("新桥镇", 121.320, 31.065, emerging=True), _t("洞泾镇", 121.245, 31.090, emerging=True),
        _t("九亭镇", 121.310, 31.115, growing=True), _t("泗泾镇", 121.265, 31.120, old=True),
        _t("佘山镇", 121.190, 31.100),
    )),
    "310115": Area("310115", "浦东新区", (
        _t("陆家嘴街道", 121.505, 31.237), _t("潍坊新村街道", 121.525, 31.226, old=True),
        _t("塘桥街道", 121.515, 31.210, old=True), _t("洋泾街道", 121.545, 31.245, old=True),
        _t("花木街道", 121.555, 31.212), _t("周家渡街道", 121.495, 31.185),
        _t("上钢新村街道", 121.480, 31.170), _t("南码头路街道", 121.508, 31.198),
        _t("沪东新村街道", 121.570, 31.265), _t("金杨新村街道", 121.565, 31.255),
        _t("东明路街道", 121.515, 31.160), _t("金桥镇", 121.605, 31.255),
        _t("张江镇", 121.600, 31.200, emerging=True), _t("川沙新镇", 121.700, 31.190, growing=True),
        _t("高桥镇", 121.580, 31.345), _t("高行镇", 121.590, 31.300),
        _t("高东镇", 121.630, 31.330), _t("曹路镇", 121.665, 31.270),
        _t("合庆镇", 121.730, 31.230), _t("唐镇", 121.660, 31.215),
        _t("北蔡镇", 121.555, 31.180), _t("康桥镇", 121.580, 31.140),
        _t("三林镇", 121.505, 31.140), _t("周浦镇", 121.575, 31.110, old=True),
        _t("航头镇", 121.600, 31.040), _t("新场镇", 121.645, 31.025),
        _t("宣桥镇", 121.700, 31.060), _t("祝桥镇", 121.770, 31.150, emerging=True),
        _t("惠南镇", 121.760, 31.050), _t("老港镇", 121.840, 31.060),
        _t("大团镇", 121.730, 30.975), _t("万祥镇", 121.810, 30.960),
        _t("书院镇", 121.860, 30.960), _t("泥城镇", 121.820, 30.910),
        _t("南汇新城镇", 121.920, 30.900),
    )),
    "500154": Area("500154", "开州区", (
        _t("汉丰街道", 108.393, 31.161, old=True), _t("文峰街道", 108.420, 31.170),
        _t("云枫街道", 108.372, 31.183), _t("镇东街道", 108.445, 31.150),
        _t("丰乐街道", 108.405, 31.200), _t("白鹤街道", 108.330, 31.125, emerging=True),
        _t("赵家街道", 108.290, 31.095, emerging=True), _t("温泉镇", 108.530, 31.385, growing=True),
        _t("岳溪镇", 108.140, 31.030), _t("长沙镇", 108.540, 31.110),
        _t("郭家镇", 108.650, 31.290), _t("铁桥镇", 108.270, 31.230),
        _t("大进镇", 108.720, 31.480), _t("天和镇", 108.260, 31.000),
        _t("南雅镇", 108.260, 31.160), _t("中和镇", 108.470, 31.270),
        _t("义和镇", 108.360, 31.310), _t("临江镇", 108.300, 31.340),
        _t("竹溪镇", 108.380, 31.420), _t("和谦镇", 108.600, 31.230),
        _t("谭家镇", 108.780, 31.380), _t("敦好镇", 108.560, 31.010),
        _t("高桥镇", 108.470, 31.070), _t("巫山镇", 108.210, 31.110),
        _t("九龙山镇", 108.200, 31.190), _t("渠口镇", 108.440, 31.230),
        _t("白桥镇", 108.630, 31.560), _t("满月镇", 108.820, 31.600),
        _t("关面乡", 108.600, 31.630), _t("紫水乡", 108.500, 31.500),
    )),
    "330326": Area("330326", "平阳县", (
        _t("昆阳镇", 120.565, 27.665, old=True), _t("鳌江镇", 120.570, 27.600, old=True),
        _t("水头镇", 120.370, 27.595, emerging=True), _t("萧江镇", 120.460, 27.600, growing=True),
        _t("万全镇", 120.620, 27.640, emerging=True), _t("腾蛟镇", 120.470, 27.660),
        _t("海西镇", 120.640, 27.550), _t("麻步镇", 120.500, 27.565),
        _t("山门镇", 120.270, 27.570), _t("顺溪镇", 120.160, 27.550),
        _t("南雁镇", 120.310, 27.520), _t("怀溪镇", 120.230, 27.640),
        _t("凤卧镇", 120.390, 27.690), _t("南麂镇", 121.070, 27.465),
    )),
}


def get_area(adcode: str) -> Area:
    """The demo area ``adcode``; the error lists the known ones."""
    try:
        return AREAS[str(adcode)]
    except KeyError:
        known = ", ".join(f"{a.adcode} {a.name}" for a in AREAS.values())
        raise ConfigError(f"no demo area {adcode!r}; known areas: {known}") from None


def boundary_path(adcode: str) -> Path:
    """Path of the GCJ-02 boundary file of ``adcode``."""
    return BOUNDARY_DIR / f"{adcode}_gcj02.geojson"


def load_boundary(adcode: str) -> shapely.Geometry:
    """The district outline in WGS-84 (converted from the GCJ-02 file), valid polygon(s)."""
    path = boundary_path(adcode)
    if not path.exists():
        known = sorted(p.name.split("_")[0] for p in BOUNDARY_DIR.glob("*_gcj02.geojson"))
        raise ReadError(f"{path}: no boundary file for area {adcode!r}; boundaries available: {known}")
    try:
        features = json.loads(path.read_text(encoding="utf-8"))["features"]
        geom = shapely.union_all([shape(f["geometry"]) for f in features])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadError(f"{path}: not a GeoJSON FeatureCollection of polygons ({exc})") from exc

    def convert(coords: np.ndarray) -> np.ndarray:
        lon, lat = gcj02_to_wgs84(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.make_valid(shapely.transform(geom, convert))
