"""Static maps and charts: CJK text renders (no missing-glyph warning), cells land where they belong."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geo import h3index, staticmap, store
from geo.errors import ConfigError


def _image(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"))


def test_cjk_font_is_noto() -> None:
    assert staticmap.cjk_font().startswith("Noto Sans CJK")


def test_missing_font_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staticmap, "_FONT", None)
    monkeypatch.setattr(staticmap, "CJK_FAMILIES", ("No Such Font CJK",))
    with pytest.raises(ConfigError, match="fonts-noto-cjk"):
        staticmap.cjk_font()


def test_hotspot_map_colours_hot_cells(demo_db: Path, artifacts_dir: Path) -> None:
    """A hot cell is drawn in the 99 % colour at its own position; Chinese text raises no glyph warning."""
    con = store.connect(demo_db)
    boundary = store.read_layer(con, "admin_area", where="level = ?", params=["区县"])
    cells = con.execute("SELECT h3_r8 AS cell, count(*) AS n FROM hazard GROUP BY 1 ORDER BY 2 DESC").df()
    con.close()
    table = cells.assign(bin_fdr=0)
    table.loc[0, "bin_fdr"] = 3  # the busiest cell is the hot spot
    fig = staticmap.hotspot_map(table, boundary, title="隐患热点（测试）")
    ax = fig.axes[0]
    png = staticmap.to_png(fig, dpi=100)  # filterwarnings=error: a missing glyph would fail here
    (artifacts_dir / "staticmap_hotspots.png").write_bytes(png)
    img = _image(png)
    lon, lat = h3index.cell_centres(np.array([table.loc[0, "cell"]], dtype=np.uint64))
    x, y = ax.transData.transform((lon[0], lat[0]))
    row, col = int(round(img.shape[0] - y)), int(round(x))
    hot = np.array([int(staticmap.GI_BIN_COLORS[3][i:i + 2], 16) for i in (1, 3, 5)])
    drawn = 0.9 * hot + 0.1 * 255  # cells are drawn at alpha 0.9 on white
    patch = img[row - 1:row + 2, col - 1:col + 2].reshape(-1, 3).astype(int)
    assert np.abs(patch - drawn).sum(axis=1).min() < 12
    assert ax.get_title() == "隐患热点（测试）"


def test_coverage_map_and_charts_render(demo_db: Path) -> None:
    con = store.connect(demo_db)
    boundary = store.read_layer(con, "admin_area", where="level = ?", params=["区县"])
    stations = con.execute("SELECT lon, lat, h3_r8 FROM fire_station").df()
    con.close()
    reach = h3index.cells_at(stations["lon"].to_numpy(), stations["lat"].to_numpy(), 8)
    fig = staticmap.coverage_map(
        boundary, areas=[("消防站5分钟可达", reach, staticmap.COLORS["sky"])], blind_cells=reach[:1],
        points=[("消防站", stations["lon"].to_numpy(), stations["lat"].to_numpy(), staticmap.COLORS["vermillion"], "s")],
    )
    labels = [t.get_text() for lg in fig.axes[0].artists for t in lg.get_texts()]
    assert {"消防站5分钟可达", "消火栓盲区", "消防站"} <= set(labels)
    assert _image(staticmap.to_png(fig, dpi=60)).shape[2] == 3
    line = staticmap.line_chart(["2025-01-01", "2025-02-01"], {"新发现": [3, 5], "结案": [2, 6]}, title="趋势")
    assert [ln.get_label() for ln in line.axes[0].get_lines()] == ["新发现", "结案"]
    bar = staticmap.bar_chart(["甲镇", "乙街道"], [80.5, 60.0], title="得分")
    assert [t.get_text() for t in bar.axes[0].get_yticklabels()] == ["甲镇", "乙街道"]
    assert staticmap.data_uri(staticmap.to_png(bar, dpi=50)).startswith("data:image/png;base64,iVBOR")
