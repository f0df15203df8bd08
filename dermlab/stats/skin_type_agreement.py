"""How well the skin-tone proxy (ITA of the non-lesion skin, :mod:`dermlab.stats.skin_tone`) agrees with a
dermatologist's Fitzpatrick label where a data set has both (DDI, Fitzpatrick17k, PAD-UFES-20).

* **Spearman's ρ** between the ITA angle and the label's rank (type I = 1 … VI = 6, or group I–II = 1, III–IV = 2,
  V–VI = 3 where only groups are known). Lighter skin has a larger ITA and a smaller type, so agreement shows as a
  **negative** ρ; 0 is none.
* **Cohen's κ, quadratic weights** (Cohen 1968, Psychol Bull 70:213, doi:10.1037/h0026256; scikit-learn's
  ``cohen_kappa_score``) between the label's group and the group of the ITA category under the one-to-one reading of
  the six ITA categories as the six types (very light = I, light = II, intermediate = III, tan = IV, brown = V,
  dark = VI), paired into the three groups.
  That reading is a convention, not a calibration: published ITA–Fitzpatrick agreement is modest (Groh et al. 2022,
  arXiv:2207.02942).
* The share of images whose two groups agree, and the cross-table of ITA category × label group.

Images where either is unknown (ITA NaN: too few skin pixels; label ``unknown``) are left out and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from dermlab.files.skin_type import GROUPS, TYPES, fitzpatrick_group
from dermlab.stats.skin_tone import ITA_CATEGORIES, ita_category

#: Each ITA category's Fitzpatrick group under the one-to-one reading (module docstring).
ITA_GROUP = {category: GROUPS[i // 2] for i, category in enumerate(ITA_CATEGORIES)}


def _rank(label: str) -> float:
    """Type I … VI → 1 … 6, group I-II … V-VI → 1 … 3 (NaN: unknown)."""
    if label in TYPES:
        return TYPES.index(label) + 1.0
    if label in GROUPS:
        return GROUPS.index(label) + 1.0
    return np.nan


def ita_agreement(ita: ArrayLike, labels: Sequence[str]) -> dict:
    """The agreement of ITA angles with Fitzpatrick labels (module docstring).

    Args:
        ita: (N,) ITA in degrees, NaN where the proxy has none.
        labels: (N,) the label of each image: types (``I`` … ``VI``) or groups (``I-II`` …), ``unknown`` where
            missing; one kind throughout (types are also read as their groups for κ).

    Returns:
        ``{"images", "compared", "left_out", "spearman_rho", "spearman_p", "kappa_quadratic", "same_group",
        "labels" ("type" or "group"), "crosstab": {label group: {ITA category: count}}}``; NaN statistics when fewer
        than 3 images have both (or every compared image has one value).

    Raises:
        ValueError: lengths differ.
    """
    ita = np.asarray(ita, float)
    labels = [str(label) for label in labels]
    if len(ita) != len(labels):
        raise ValueError(f"{len(ita)} ITA values for {len(labels)} labels")
    ranks = np.array([_rank(label) for label in labels])
    both = ~np.isnan(ita) & ~np.isnan(ranks)
    kind = "type" if any(label in TYPES for label in labels) else "group"
    label_groups = [fitzpatrick_group(label) for label, keep in zip(labels, both, strict=True) if keep]
    ita_groups = [ITA_GROUP[ita_category(angle)] for angle in ita[both]]
    result = {"images": len(labels), "compared": int(both.sum()), "left_out": int((~both).sum()), "labels": kind,
              "spearman_rho": np.nan, "spearman_p": np.nan, "kappa_quadratic": np.nan, "same_group": np.nan}
    if both.sum() >= 3 and np.ptp(ranks[both]) > 0 and np.ptp(ita[both]) > 0:
        rho, p = stats.spearmanr(ita[both], ranks[both])
        result.update(spearman_rho=float(rho), spearman_p=float(p))
    if both.sum() >= 3 and len(set(label_groups) | set(ita_groups)) > 1:
        result["kappa_quadratic"] = float(cohen_kappa_score(label_groups, ita_groups, labels=list(GROUPS),
                                                            weights="quadratic"))
    if both.any():
        result["same_group"] = float(np.mean([a == b for a, b in zip(label_groups, ita_groups, strict=True)]))
    table = pd.crosstab(pd.Categorical(label_groups, categories=GROUPS),
                        pd.Categorical([ita_category(a) for a in ita[both]], categories=ITA_CATEGORIES),
                        dropna=False)
    result["crosstab"] = {str(g): {str(c): int(table.loc[g, c]) for c in table.columns} for g in table.index}
    return result
