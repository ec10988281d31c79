"""Personal data is masked the way Chinese public-service displays do it (geo.personal)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from geo import personal
from layers.registry import LAYERS


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("13812345678", "138****5678"),
        ("021-12345678", "021-****5678"),
        ("+86 138 1234 5678", "+86 1** **** 5678"),
        ("13812345678/13900001111", "138****5678/139****1111"),
        ("110", "*10"),
        ("12", "**"),
    ],
)
def test_phone_keeps_the_first_three_and_last_four_digits(raw: str, masked: str) -> None:
    assert personal.mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [("张三", "张*"), ("欧阳娜娜", "欧***"), ("王", "王"), ("  李小明 ", "李**"), ("Li Lei", "L* ***")],
)
def test_name_keeps_the_surname_and_one_star_per_other_character(raw: str, masked: str) -> None:
    assert personal.mask_name(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("110101199003071234", "110101********1234"),
        ("11010119900307123X", "110101********123X"),
        ("110101900307123", "110101*****7123"),
        ("12345678", "****5678"),
        ("123", "**3"),
    ],
)
def test_id_number_keeps_the_first_six_and_last_four(raw: str, masked: str) -> None:
    assert personal.mask_id_number(raw) == masked


def test_free_text_masks_each_word_by_its_shape() -> None:
    assert personal.mask_text("李四 13900001111") == "李* 139****1111"
    assert personal.mask_text("王五、110101199003071234") == "王*、110101********1234"
    assert personal.mask_value("carer", "赵六（女儿）") == "赵*****"
    assert personal.mask_value("phone", "13812345678") == "138****5678"
    assert personal.mask_value("id_number", "110101199003071234") == "110101********1234"


@pytest.mark.parametrize("blank", [None, float("nan"), "", "   ", pd.NA])
def test_blank_values_come_back_unchanged(blank: object) -> None:
    for fn in (personal.mask_phone, personal.mask_name, personal.mask_id_number, personal.mask_text):
        out = fn(blank)
        assert out is blank or (isinstance(out, float) and math.isnan(out))


@pytest.mark.parametrize("hostile", ["{{7*7}}", "<img src=x onerror=alert(1)>", "'; DROP TABLE x;--", 12345678901, 1e308])
def test_hostile_or_odd_values_are_masked_as_text_never_raise(hostile: object) -> None:
    out = personal.mask_text(hostile)
    assert isinstance(out, str) and out != str(hostile) and len(out) == len(str(hostile))


def test_frames_and_records_mask_only_the_layers_personal_fields() -> None:
    fields = LAYERS["vulnerable_person"].personal_fields
    assert set(fields) == {"name", "phone", "carer", "address"}
    frame = pd.DataFrame(
        {"name": ["张三", None], "phone": ["13812345678", "13812345678"], "carer": ["李四", ""], "category": ["独居老人"] * 2}
    )
    out = personal.mask_frame(frame, fields)
    assert out["name"].tolist()[0] == "张*" and pd.isna(out["name"].tolist()[1])
    assert out["phone"].tolist() == ["138****5678"] * 2
    assert out["carer"].tolist() == ["李*", ""]
    assert out["category"].tolist() == ["独居老人"] * 2
    assert frame["name"].tolist()[0] == "张三"  # the input is not changed
    record = personal.mask_record({"contact": "王五", "phone": "13900001111", "storeys": 6}, LAYERS["key_place"].personal_fields)
    assert record == {"contact": "王*", "phone": "139****1111", "storeys": 6}
