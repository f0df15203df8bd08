"""Fitzpatrick skin type as the external data sets record it, tidied into the suite's two subgroup attributes.

The Fitzpatrick scale (Fitzpatrick 1988, *Arch Dermatol* 124:869, doi:10.1001/archderm.1988.01670060015008) rates
skin from type I (always burns, never tans) to type VI (never burns). The data sets give it three ways:

* one type per image, 1–6 (Fitzpatrick17k's ``fitzpatrick_scale``, ``-1`` where unknown; PAD-UFES-20's
  ``fitspatrick``, empty where not recorded);
* one of three pairs (DDI's ``skin_tone``: ``12``, ``34``, ``56`` for I–II, III–IV, V–VI).

Every reader turns them into the subgroup attributes :data:`TYPE` (``I`` … ``VI``, where the data set gives single
types) and :data:`GROUP` (``I-II``, ``III-IV``, ``V-VI``, for every data set: DDI's grouping, so that groups compare
across data sets); ``unknown`` where missing. The lightest group is ``I-II``, the darkest ``V-VI``
(:data:`LIGHTEST`, :data:`DARKEST`), between which :mod:`dermlab.stats.gaps` measures the gap.
"""

from __future__ import annotations

import math
from typing import Any

from dermlab.files.metadata import UNKNOWN, group_value

#: The subgroup attribute of single Fitzpatrick types, and their names, lightest first.
TYPE = "fitzpatrick"
TYPES = ("I", "II", "III", "IV", "V", "VI")
#: The subgroup attribute of the three pairs of types (DDI's grouping), and their names, lightest first.
GROUP = "fitzpatrick_group"
GROUPS = ("I-II", "III-IV", "V-VI")
#: The lightest group, the first of the gap.
LIGHTEST = GROUPS[0]
#: The darkest group, the second of the gap.
DARKEST = GROUPS[-1]
#: DDI's ``skin_tone`` codes → group.
DDI_CODES = {"12": "I-II", "34": "III-IV", "56": "V-VI"}
#: Values that mean "type not known" in the released CSVs besides the suite's missing values (Fitzpatrick17k -1).
NOT_RATED = {"-1", "0"}


def fitzpatrick_type(value: Any) -> str:
    """A released Fitzpatrick value as a type name: ``1``–``6`` (int, float ``3.0`` or text) or a Roman numeral
    (any case) → ``I`` … ``VI``; missing, ``-1`` or ``0`` → ``unknown``.

    Raises:
        ValueError: any other value (the message names it).
    """
    text = group_value(value)
    if text == UNKNOWN:
        return UNKNOWN
    if text.upper() in TYPES:
        return text.upper()
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"Fitzpatrick type {value!r} is not 1–6 or I–VI") from None
    if math.isfinite(number) and str(int(number)) in NOT_RATED and number == int(number):
        return UNKNOWN
    if not (math.isfinite(number) and number == int(number) and 1 <= number <= 6):
        raise ValueError(f"Fitzpatrick type {value!r} is not 1–6 or I–VI")
    return TYPES[int(number) - 1]


def fitzpatrick_group(value: Any) -> str:
    """The group (``I-II``, ``III-IV``, ``V-VI``) of a type (anything :func:`fitzpatrick_type` reads), of a DDI
    ``skin_tone`` code (``12``, ``34``, ``56``) or of a group name; ``unknown`` where missing.

    Raises:
        ValueError: a value that is none of these.
    """
    text = group_value(value)
    if text == UNKNOWN:
        return UNKNOWN
    if text.upper() in GROUPS:
        return text.upper()
    code = text[:-2] if text.endswith(".0") else text
    if code in DDI_CODES:
        return DDI_CODES[code]
    kind = fitzpatrick_type(value)
    return UNKNOWN if kind == UNKNOWN else GROUPS[TYPES.index(kind) // 2]
