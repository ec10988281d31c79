"""Plausible Chinese names for the demo: people, phones, communities, villages and roads.

Everything is drawn from a numpy ``Generator`` so that the same seed gives the same names.
"""

from __future__ import annotations

import numpy as np

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
GIVEN = list("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力斌峰宇浩凯鹏晨欣怡佳琪婷雪梅兰春燕俊波志国海东林新荣庆家晓慧琳")
# Two-syllable place-name words as used for 居委 / 村 / 路 names.
PLACE_A = list("新永东西南北中荣乐华春秋松泗泖佘叶洞九石昆广民兴德泰安和平长盛福祥瑞康富嘉锦云龙凤桂梅兰竹茶枫桥塘浜泾湾港")
PLACE_B = list("丰阳松江林亭山湖泾浜桥港塘园苑城庄里坊河溪村田花景宁安华盛兴隆源泉湾岭岗坡")
ROAD_SUFFIX_EW = ("路", "路", "路", "街")
ROAD_SUFFIX_NS = ("路", "公路", "路", "弄")


def person_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` Chinese personal names (surname + one or two characters)."""
    s = np.asarray(SURNAMES)[rng.integers(0, len(SURNAMES), n)]
    g1 = np.asarray(GIVEN)[rng.integers(0, len(GIVEN), n)]
    g2 = np.asarray(GIVEN)[rng.integers(0, len(GIVEN), n)]
    two = rng.random(n) < 0.7
    return np.where(two, np.char.add(np.char.add(s, g1), g2), np.char.add(s, g1)).astype(object)


def phones(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` mobile numbers of the usual 11-digit form (1[3-9]x xxxx xxxx)."""
    second = rng.choice(np.array(["13", "15", "17", "18", "19"]), n)
    rest = np.strings.zfill(rng.integers(0, 10**9, n).astype(np.str_), 9)
    return np.strings.add(second, rest).astype(object)


def ids(prefix: str, n: int, width: int, start: int = 1) -> np.ndarray:
    """``prefix`` followed by zero-padded numbers ``start``..``start+n-1`` (vectorised)."""
    return np.strings.add(prefix, np.strings.zfill(np.arange(start, start + n).astype(np.str_), width)).astype(object)


def words(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` two-character place words (repeats allowed; vectorised)."""
    a = np.asarray(PLACE_A)
    b = np.asarray(PLACE_B)
    return np.strings.add(a[rng.integers(0, len(a), n)], b[rng.integers(0, len(b), n)]).astype(object)


def unique_words(rng: np.random.Generator, n: int, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct two-character place words not in ``taken`` (which is updated)."""
    taken = taken if taken is not None else set()
    a = np.asarray(PLACE_A)
    b = np.asarray(PLACE_B)
    out: list[str] = []
    three = False
    while len(out) < n:
        before = len(out)
        batch = np.char.add(a[rng.integers(0, len(a), 2 * n)], b[rng.integers(0, len(b), 2 * n)])
        if three:  # two-character words are used up: add a third character
            batch = np.char.add(batch, b[rng.integers(0, len(b), 2 * n)])
        for w in batch.tolist():
            if w not in taken and w[0] != w[1]:
                taken.add(w)
                out.append(w)
                if len(out) == n:
                    break
        three = three or len(out) - before < max(1, (n - before) // 4)
    return out
