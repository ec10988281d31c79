"""Masking of personal data (个人信息脱敏): names, phone numbers, ID numbers.

Layers flag the fields that hold personal data (``Field.personal``, ``LayerSpec.personal_fields``:
a key place's contact and phone, a vulnerable resident's name, phone and carer, a grid
worker). Wherever such data is shown to someone who does not need it (the wall is a kiosk,
a JSON export, a role without the right) it goes through this module. The rules, the usual
ones of Chinese public-service displays:

- phone number: the first 3 and the last 4 digits stay, the digits between become ``*``
  (``13812345678`` → ``138****5678``; ``021-12345678`` → ``021-****5678``); a number of fewer
  than 7 digits keeps only its last 2 digits (none of 2 or fewer); separators and several numbers in one cell are kept.
- name: the first character (the surname) stays, every other character becomes ``*``
  (``张三`` → ``张*``, ``欧阳娜娜`` → ``欧***``).
- ID number (身份证号, 15 or 18 characters): the first 6 (the region code) and the last 4 stay.
- free text of a personal field (``李四 13900001111``): each word is masked by what it looks
  like — digits as a phone, an ID-number shape as an ID number, anything else as a name.

Masking never fails: None, NaN and empty text come back as they are; other types are
masked as their text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd

MASK = "*"
PHONE_FIELDS: frozenset[str] = frozenset({"phone", "tel", "mobile"})
ID_NUMBER_FIELDS: frozenset[str] = frozenset({"id_number", "id_card"})
_NUMBER_RUN = re.compile(r"\d[\d\s\-()（）+]*\d|\d")
_ID_NUMBER = re.compile(r"^(\d{17}[\dXx]|\d{15})$")
_WORDS = re.compile(r"(\s+|[/,;，；、]+)")


def _blank(value: Any) -> bool:
    """None, NaN/NA and whitespace-only text: nothing to mask."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip() == ""


def _mask_digits(number: str) -> str:
    """One number: keep the first 3 and last 4 digits (fewer than 7 digits: the last 2)."""
    positions = [i for i, ch in enumerate(number) if ch.isdigit()]
    n = len(positions)
    keep = set(positions[:3] + positions[-4:]) if n >= 7 else set(positions[-2:] if n > 2 else [])
    return "".join(MASK if ch.isdigit() and i not in keep else ch for i, ch in enumerate(number))


def mask_phone(value: Any) -> Any:
    """``13812345678`` → ``138****5678``; each number of a cell masked on its own."""
    if _blank(value):
        return value
    return _NUMBER_RUN.sub(lambda m: _mask_digits(m.group(0)), str(value))


def mask_name(value: Any) -> Any:
    """``张三`` → ``张*``: the first character stays, one ``*`` per other character (spaces kept)."""
    if _blank(value):
        return value
    text = str(value).strip()
    return text[0] + "".join(ch if ch.isspace() else MASK for ch in text[1:])


def mask_id_number(value: Any) -> Any:
    """``110101199003071234`` → ``110101********1234``: the first 6 and last 4 characters stay.

    Text of 10 characters or fewer keeps only its last 4 (at most half of it).
    """
    if _blank(value):
        return value
    text = str(value).strip()
    if len(text) > 10:
        return text[:6] + MASK * (len(text) - 10) + text[-4:]
    keep = min(4, len(text) // 2)
    return MASK * (len(text) - keep) + text[len(text) - keep:]


def _mask_word(word: str) -> str:
    if _ID_NUMBER.match(word):
        return mask_id_number(word)
    if any(ch.isdigit() for ch in word):
        return mask_phone(word)
    return mask_name(word)


def mask_text(value: Any) -> Any:
    """Free text of a personal field: every word masked by its shape (ID number, number, name)."""
    if _blank(value):
        return value
    return "".join(part if _WORDS.fullmatch(part) else _mask_word(part) for part in _WORDS.split(str(value)) if part)


def mask_value(field: str, value: Any) -> Any:
    """Mask ``value`` of the personal field ``field``: phones, ID numbers, else free text."""
    if field in PHONE_FIELDS:
        return mask_phone(value)
    if field in ID_NUMBER_FIELDS:
        return mask_id_number(value)
    return mask_text(value)


def mask_record(record: dict[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """A copy of ``record`` with each of ``fields`` present masked."""
    wanted = set(fields)
    return {k: mask_value(k, v) if k in wanted else v for k, v in record.items()}


def mask_frame(frame: pd.DataFrame, fields: Iterable[str]) -> pd.DataFrame:
    """A copy of ``frame`` with each of ``fields`` present masked (vectorised per distinct value)."""
    out = frame.copy()
    for field in fields:
        if field in out and len(out):
            values = out[field].astype(object)
            distinct = {v: mask_value(field, v) for v in pd.unique(values) if not _blank(v)}
            out[field] = pd.Series([v if _blank(v) else distinct[v] for v in values], index=out.index, dtype=object)
    return out
