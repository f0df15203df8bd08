"""The class sets of the data sets and the mappings between them, for testing a model on another data set.

A :class:`ClassMapping` says how a model trained on one class set (the *source*, e.g. HAM10000's seven classes) is
scored on the test images of another (the *target*, e.g. ISIC 2019's eight): both sides map onto the mapping's
*evaluation classes*, and the test metrics are computed on those.

* **Probabilities** (source side): the softmax probabilities of the source classes that map to one evaluation class
  are summed (:meth:`ClassMapping.merge`). A source class with no evaluation class (e.g. a HAM10000 model's BCC on
  ISIC 2017, which has no BCC images) drops out, and each row is divided by what is left, so it sums to 1 again.
* **Labels** (target side): each test image's class becomes its evaluation class; an image whose class has none
  (e.g. ISIC 2018's BCC images for an ISIC 2017-trained model) is left out of the test set, counted per class.

The evaluation classes are named and ordered after the target's classes where one target class is one evaluation
class (binary ones keep the positive class second, as every binary metric of the suite expects). Where the target
splits what the source sees as one class, the evaluation class is the source's: ISIC 2019's AK and SCC images
are both AKIEC for a model trained on ISIC 2018 / HAM10000, and its AKIEC probability scores them.

How a pair is resolved (:func:`mapping_between`): the same class names on both sides are the identity mapping.
Otherwise ISIC 2018 (:data:`HUB`, HAM10000's classes) is the hub: a class set whose every class lies inside one
hub class (:data:`REFINES`: ISIC 2019, derm7pt) reaches every class set the hub reaches, and the sets that are
coarser or cut across the hub (ISIC 2016, the three ISIC 2017 tasks) have explicit mappings to and from the hub
(:data:`FROM_HUB`, :data:`TO_HUB`). Evaluation classes that receive no target class are dropped. A pair the
tables do not reach is refused with a :class:`~dermlab.errors.DataError` listing the class sets they know.

Sources of the tables:

* ISIC 2018 task 3 / HAM10000 classes: Tschandl et al., Sci Data 5:180161 (2018), "akiec: actinic keratoses and
  intraepithelial carcinoma / Bowen's disease", "bkl: benign keratosis-like lesions (solar lentigines / seborrheic
  keratoses and lichen-planus like keratoses)".
* ISIC 2019 classes (https://challenge.isic-archive.com/landing/2019/): MEL, NV, BCC, AK, BKL (solar lentigo /
  seborrheic keratosis / lichen planus-like keratosis), DF, VASC, SCC, and UNK (none of the others; no training
  image). 2018's AKIEC was split into AK and SCC (2018's intraepithelial carcinoma is SCC in situ; 2019's SCC
  also holds invasive SCC, which 2018 had no class for).
* ISIC 2017 Part 3 (Codella et al., arXiv:1710.05006): melanoma, seborrheic keratosis, nevus; seborrheic keratosis
  is one of the lesions of 2018's BKL.
* ISIC 2016 Part 3 (Gutman et al., arXiv:1605.01397): benign vs malignant; malignant reads as the malignant HAM
  classes MEL, BCC, AKIEC (as :data:`datamodules.datasets.pooled.BENIGN` does).
* derm7pt on the HAM classes: :data:`datamodules.datasets.derm7pt.DIAGNOSIS_TO_CLASS` (the ``patch`` paper's Table I).
* DDI (Daneshjou et al., Sci Adv 8:eabq6147, 2022, doi:10.1126/sciadv.abq6147): its ``malignant`` flag, benign vs
  malignant, the class set of ISIC 2016 (a DDI reader names itself ``ddi`` in the mapping, see
  :func:`mapping_between`).
* Fitzpatrick17k (Groh et al., CVPR Workshops 2021, doi:10.48550/arXiv.2104.09957): its
  ``three_partition_label`` benign, malignant, non-neoplastic; a HAM class set scores benign vs malignant (malignant
  read as for ISIC 2016) and the non-neoplastic images (inflammatory and other non-tumour conditions, which no
  dermoscopy class set holds) are left out, counted.
* PAD-UFES-20 (Pacheco et al., Data in Brief 32:106221, 2020, doi:10.1016/j.dib.2020.106221): ACK (actinic
  keratosis) → AKIEC, BCC, MEL, NEV → NV, SCC (with Bowen's disease) → AKIEC as ISIC 2019's SCC, SEK (seborrheic
  keratosis) → BKL; it has no DF or VASC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from dermlab.errors import DataError

#: The hub class set (HAM10000's classes), see above.
HUB = "isic2018"

#: Class set name → class names, in the order of the data modules' ``class_names``.
TAXONOMIES: dict[str, tuple[str, ...]] = {
    "isic2016": ("benign", "malignant"),
    "isic2017_melanoma": ("other", "melanoma"),  # also the shipped ISIC-archive sample
    "isic2017_seborrheic_keratosis": ("other", "seborrheic_keratosis"),
    "isic2017_three_class": ("nevus", "melanoma", "seborrheic_keratosis"),
    "isic2018": ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"),  # HAM10000 too
    "isic2019": ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"),
    "derm7pt": ("MEL", "NV", "BCC", "BKL", "DF", "VASC"),
    "fitzpatrick17k": ("benign", "malignant", "non-neoplastic"),
    "pad_ufes20": ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK"),
}

#: Class sets whose every class lies inside one hub class, each class → its hub class.
REFINES: dict[str, dict[str, str]] = {
    "isic2018": {c: c for c in TAXONOMIES["isic2018"]},
    "isic2019": {"MEL": "MEL", "NV": "NV", "BCC": "BCC", "AK": "AKIEC", "BKL": "BKL", "DF": "DF", "VASC": "VASC",
                 "SCC": "AKIEC"},
    "derm7pt": {c: c for c in TAXONOMIES["derm7pt"]},
    "pad_ufes20": {"ACK": "AKIEC", "BCC": "BCC", "MEL": "MEL", "NEV": "NV", "SCC": "AKIEC", "SEK": "BKL"},
}

_MALIGNANT = ("MEL", "BCC", "AKIEC")


@dataclass(frozen=True)
class ClassMapping:
    """How a model with the ``source`` classes is scored on test images with the ``target`` classes."""

    #: the model's class set name (a key of :data:`TAXONOMIES`, or ``"same classes"``).
    source: str
    #: the test images' class set name (a key of :data:`TAXONOMIES`, or ``"same classes"``).
    target: str
    #: the model's classes, in its output order.
    source_classes: tuple[str, ...]
    #: the test images' classes.
    target_classes: tuple[str, ...]
    #: the evaluation classes, in metric order (binary, the positive class second).
    classes: tuple[str, ...]
    #: every source class → its evaluation class, or None (its probability drops out).
    from_source: Mapping[str, str | None]
    #: every target class → its evaluation class, or None (its test images are left out).
    from_target: Mapping[str, str | None]

    def __post_init__(self) -> None:
        for side, names, table in (("source", self.source_classes, self.from_source),
                                   ("target", self.target_classes, self.from_target)):
            if set(table) != set(names):
                raise ValueError(f"{self.name}: the {side} table maps {sorted(table)}, not the {side} classes "
                                 f"{list(names)}")
            stray = {v for v in table.values() if v is not None} - set(self.classes)
            if stray:
                raise ValueError(f"{self.name}: {side} classes map to {sorted(stray)}, not evaluation classes")
            empty = [c for c in self.classes if c not in table.values()]
            if empty:
                raise ValueError(f"{self.name}: no {side} class maps to the evaluation class(es) {empty}")

    @property
    def name(self) -> str:
        """``source → target``, the two class set names, for messages and ``to_json``."""
        return f"{self.source} → {self.target}"

    @property
    def identity(self) -> bool:
        """Source, target and evaluation classes are the same list and nothing is merged or left out."""
        return (self.source_classes == self.classes == self.target_classes
                and all(k == v for k, v in self.from_source.items())
                and all(k == v for k, v in self.from_target.items()))

    def source_matrix(self) -> np.ndarray:
        """(S, E) 0/1 matrix: entry (s, e) is 1 where source class s maps to evaluation class e."""
        matrix = np.zeros((len(self.source_classes), len(self.classes)), np.float32)
        for s, name in enumerate(self.source_classes):
            if self.from_source[name] is not None:
                matrix[s, self.classes.index(self.from_source[name])] = 1.0
        return matrix

    def merge(self, probabilities: torch.Tensor) -> torch.Tensor:
        """(B, S) source-class probabilities → (B, E) evaluation-class probabilities: the sum over the source
        classes of each evaluation class; when a source class drops out, each row is divided by its new sum."""
        if probabilities.shape[-1] != len(self.source_classes):
            raise ValueError(f"{self.name}: probabilities have {probabilities.shape[-1]} columns, the source has "
                             f"{len(self.source_classes)} classes")
        matrix = torch.as_tensor(self.source_matrix(), dtype=probabilities.dtype, device=probabilities.device)
        merged = probabilities @ matrix
        if any(v is None for v in self.from_source.values()):
            merged = merged / merged.sum(-1, keepdim=True).clamp_min(torch.finfo(merged.dtype).tiny)
        return merged

    def target_labels(self, labels: np.ndarray) -> np.ndarray:
        """Target class indices → evaluation class indices; -1 where the target class has no evaluation class."""
        lookup = np.array([-1 if self.from_target[c] is None else self.classes.index(self.from_target[c])
                           for c in self.target_classes], np.int64)
        return lookup[np.asarray(labels, np.int64)]

    def rows(self) -> list[tuple[str, str]]:
        """(evaluation class, "source classes → target classes") per evaluation class, for logs and the README."""
        out = []
        for e in self.classes:
            source = " + ".join(c for c in self.source_classes if self.from_source[c] == e)
            target = " + ".join(c for c in self.target_classes if self.from_target[c] == e)
            out.append((e, f"{source} → {target}"))
        return out

    def to_json(self) -> dict:
        """The mapping as plain JSON types, for ``splits/audit.json`` and the grid's ``result.json``: its name, the
        evaluation classes, both tables, and the classes of each side that map to none."""
        return {"name": self.name, "classes": list(self.classes),
                "from_source": dict(self.from_source), "from_target": dict(self.from_target),
                "source_left_out": [c for c, v in self.from_source.items() if v is None],
                "target_left_out": [c for c, v in self.from_target.items() if v is None]}


def _hub_pair(other: str, classes: Sequence[str], hub_side: dict[str, str | None],
              other_side: dict[str, str | None], hub_is_source: bool) -> ClassMapping:
    hub = TAXONOMIES[HUB]
    if hub_is_source:
        return ClassMapping(HUB, other, hub, TAXONOMIES[other], tuple(classes), hub_side, other_side)
    return ClassMapping(other, HUB, TAXONOMIES[other], hub, tuple(classes), other_side, hub_side)


def _everything_else(positive: dict[str, str], rest: str) -> dict[str, str]:
    return {c: positive.get(c, rest) for c in TAXONOMIES[HUB]}


#: Binary class sets that map the same way in both directions: (classes, hub side, other side).
_SYMMETRIC = {
    "isic2016": (("benign", "malignant"), _everything_else({c: "malignant" for c in _MALIGNANT}, "benign"),
                 {"benign": "benign", "malignant": "malignant"}),
    "isic2017_melanoma": (("other", "melanoma"), _everything_else({"MEL": "melanoma"}, "other"),
                          {"other": "other", "melanoma": "melanoma"}),
}

#: Explicit mappings hub → class set (a hub-trained model tested on that set's images).
FROM_HUB: dict[str, ClassMapping] = {
    **{name: _hub_pair(name, *sides, hub_is_source=True) for name, sides in _SYMMETRIC.items()},
    "isic2017_seborrheic_keratosis": _hub_pair(
        "isic2017_seborrheic_keratosis", ("other", "seborrheic_keratosis"),
        _everything_else({"BKL": "seborrheic_keratosis"}, "other"),
        {"other": "other", "seborrheic_keratosis": "seborrheic_keratosis"}, hub_is_source=True),
    "isic2017_three_class": _hub_pair(
        "isic2017_three_class", ("nevus", "melanoma", "seborrheic_keratosis"),
        {"MEL": "melanoma", "NV": "nevus", "BKL": "seborrheic_keratosis", "BCC": None, "AKIEC": None, "DF": None,
         "VASC": None},
        {"nevus": "nevus", "melanoma": "melanoma", "seborrheic_keratosis": "seborrheic_keratosis"},
        hub_is_source=True),
    "fitzpatrick17k": _hub_pair(
        "fitzpatrick17k", ("benign", "malignant"), _everything_else({c: "malignant" for c in _MALIGNANT}, "benign"),
        {"benign": "benign", "malignant": "malignant", "non-neoplastic": None}, hub_is_source=True),
}

#: Explicit mappings class set → hub (a model trained on that set tested on hub-class images).
TO_HUB: dict[str, ClassMapping] = {
    **{name: _hub_pair(name, *sides, hub_is_source=False) for name, sides in _SYMMETRIC.items()},
    "isic2017_three_class": _hub_pair(
        "isic2017_three_class", ("MEL", "NV", "BKL"),
        {"MEL": "MEL", "NV": "NV", "BKL": "BKL", "BCC": None, "AKIEC": None, "DF": None, "VASC": None},
        {"melanoma": "MEL", "nevus": "NV", "seborrheic_keratosis": "BKL"}, hub_is_source=False),
}


def taxonomy_of(class_names: Sequence[str]) -> str | None:
    """The name of the class set with exactly these class names (in this order), or None."""
    names = tuple(str(c) for c in class_names)
    return next((name for name, classes in TAXONOMIES.items() if classes == names), None)


def _pruned(source: str, target: str, source_classes: Sequence[str], target_classes: Sequence[str],
            classes: Sequence[str], from_source: Mapping[str, str | None], from_target: Mapping[str, str | None]
            ) -> ClassMapping:
    """A mapping without the evaluation classes that no target (or no source) class reaches: their source
    classes drop out and their target images are left out."""
    kept = tuple(c for c in classes if c in from_target.values() and c in from_source.values())
    return ClassMapping(source, target, tuple(source_classes), tuple(target_classes), kept,
                        {k: (v if v in kept else None) for k, v in from_source.items()},
                        {k: (v if v in kept else None) for k, v in from_target.items()})


def _resolve(source: str, target: str) -> ClassMapping | None:
    if source in REFINES and target in REFINES:  # both inside the hub: evaluate on the hub classes they share
        return _pruned(source, target, TAXONOMIES[source], TAXONOMIES[target], TAXONOMIES[HUB], REFINES[source],
                       REFINES[target])
    if source in REFINES and target in FROM_HUB:  # source → hub classes → the target's explicit mapping
        m = FROM_HUB[target]
        return _pruned(source, target, TAXONOMIES[source], m.target_classes, m.classes,
                       {c: m.from_source[REFINES[source][c]] for c in TAXONOMIES[source]}, m.from_target)
    if source in TO_HUB and target in REFINES:  # the source's explicit mapping to the hub, then the target's classes
        m = TO_HUB[source]
        return _pruned(source, target, m.source_classes, TAXONOMIES[target], m.classes, m.from_source,
                       {c: m.from_target[REFINES[target][c]] for c in TAXONOMIES[target]})
    return None


def known_pairs() -> list[str]:
    """Every ``source → target`` pair of different class sets that :func:`mapping_between` resolves."""
    return [f"{s} → {t}" for s in TAXONOMIES for t in TAXONOMIES if s != t and _resolve(s, t) is not None]


def mapping_between(source_classes: Sequence[str], target_classes: Sequence[str],
                    target_name: str | None = None) -> ClassMapping:
    """The mapping that scores a model with ``source_classes`` on images labelled with ``target_classes``.

    ``target_name`` names the target side in :attr:`ClassMapping.name` where the class list alone would name another
    data set's class set (DDI's benign / malignant is ISIC 2016's list: ``isic2018 → ddi``, not ``→ isic2016``).

    Raises:
        DataError: a class list that is no known class set (unless both are the same list), or a pair of class
            sets without a mapping; the message lists the known class sets and pairs.
    """
    source_classes = tuple(str(c) for c in source_classes)
    target_classes = tuple(str(c) for c in target_classes)
    if source_classes == target_classes:
        name = taxonomy_of(source_classes) or "same classes"
        same = {c: c for c in source_classes}
        return ClassMapping(name, target_name or name, source_classes, target_classes, source_classes, same, same)
    source, target = taxonomy_of(source_classes), taxonomy_of(target_classes)
    mapping = _resolve(source, target) if source and target else None
    if mapping is None:
        described = "; ".join(f"{name}: {', '.join(classes)}" for name, classes in TAXONOMIES.items())
        raise DataError(
            f"no class mapping from {source or 'an unknown class set'} ({', '.join(source_classes)}) to "
            f"{target or 'an unknown class set'} ({', '.join(target_classes)}). Known class sets: {described}. "
            f"Known pairs: {', '.join(known_pairs())} (and any class set to itself). Add the mapping to "
            "datamodules/taxonomies.py (REFINES, FROM_HUB or TO_HUB) or test on a data set of a known class set.")
    return replace(mapping, target=target_name) if target_name and target_name != mapping.target else mapping
