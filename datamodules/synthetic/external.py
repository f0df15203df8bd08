"""Synthetic DDI and Fitzpatrick17k in their released layouts (see :mod:`datamodules.datasets.ddi` and
:mod:`datamodules.datasets.fitzpatrick17k`), lesions drawn on skin of each image's Fitzpatrick type.

DDI: ``ddi_metadata.csv`` with the release's leading unnamed index column (``,DDI_ID,DDI_file,skin_tone,malignant,
disease``; ``True`` / ``False``, LF) and the PNG images ``000001.png`` ... beside it, as the download unpacks.
``skin_tone`` is drawn from 12, 34, 56 with the release's shares (208 / 241 / 207), every group present from
``n >= 3``; each image's skin is drawn for one type of its pair. Malignant (171 of 656) diagnoses look like ``mel``,
``bcc`` or ``scc``, benign ones like ``nv``, ``bkl``, ``df`` or ``vasc`` (:data:`DDI_DISEASES`; the names are the
release's kind, the shares illustrative). ``DDI_MIN_N`` = 2 gives both classes, which the default ``split:
external`` tests.

Fitzpatrick17k: ``fitzpatrick17k.csv`` (all nine columns, LF) and ``images/<md5hash>.jpg``; ``md5hash`` is the MD5
of the written JPEG's bytes (32 hex digits), ``url`` a fake ``https://example.invalid/<md5hash>.jpg``. Types 1–6 and
``-1`` (not rated) follow the release's counts (2,947 / 4,808 / 3,308 / 2,781 / 1,533 / 635 / 565), each present
from ``n >= 7``; ``fitzpatrick_centaur`` agrees with it or is one type off; the three partitions are drawn about as
the release mixes them (mostly non-neoplastic), each at least five times from ``FITZPATRICK17K_MIN_N`` = 15, so that
the default 5 stratified folds test every class; one row in twelve carries a ``qc`` note. Every image is written
(the tests remove some themselves to mimic dead links).
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import numpy as np

from datamodules.synthetic.common import draw_classes, item_rng, wh, write_csv
from datamodules.synthetic.render import render_lesion

DDI_MIN_N = 2
FITZPATRICK17K_MIN_N = 15

DDI_COLUMNS = ",DDI_ID,DDI_file,skin_tone,malignant,disease"
DDI_CLASSES = {"False": 485, "True": 171}  # malignant flag → images in the release
DDI_TONES = {"12": 208, "34": 241, "56": 207}
#: DDI disease names → (malignant, synthetic look, weight within its class).
DDI_DISEASES = {
    "melanoma-in-situ": (True, "mel", 3), "melanoma-acral-lentiginous": (True, "mel", 1),
    "basal-cell-carcinoma": (True, "bcc", 4), "basal-cell-carcinoma-nodular": (True, "bcc", 1),
    "squamous-cell-carcinoma-in-situ": (True, "scc", 3), "squamous-cell-carcinoma": (True, "scc", 2),
    "mycosis-fungoides": (True, "akiec", 1),
    "melanocytic-nevi": (False, "nv", 5), "dysplastic-nevus": (False, "nv", 1),
    "seborrheic-keratosis": (False, "bkl", 4), "seborrheic-keratosis-irritated": (False, "bkl", 1),
    "verruca-vulgaris": (False, "bkl", 3),
    "dermatofibroma": (False, "df", 1), "pyogenic-granuloma": (False, "vasc", 1), "epidermal-cyst": (False, "nv", 2),
}

FITZPATRICK17K_COLUMNS = ("md5hash,fitzpatrick_scale,fitzpatrick_centaur,label,nine_partition_label,"
                          "three_partition_label,qc,url,url_alphanum")
FITZPATRICK17K_TYPES = {"1": 2947, "2": 4808, "3": 3308, "4": 2781, "5": 1533, "6": 635, "-1": 565}
FITZPATRICK17K_CLASSES = {"non-neoplastic": 12080, "benign": 2234, "malignant": 2263}
#: Fitzpatrick17k conditions → (three partition, nine partition, synthetic look).
FITZPATRICK17K_LABELS = {
    "melanoma": ("malignant", "malignant melanoma", "mel"),
    "basal cell carcinoma": ("malignant", "malignant epidermal", "bcc"),
    "squamous cell carcinoma": ("malignant", "malignant epidermal", "scc"),
    "mycosis fungoides": ("malignant", "malignant cutaneous lymphoma", "akiec"),
    "kaposi sarcoma": ("malignant", "malignant dermal", "vasc"),
    "congenital nevus": ("benign", "benign melanocyte", "nv"),
    "seborrheic keratosis": ("benign", "benign epidermal", "bkl"),
    "dermatofibroma": ("benign", "benign dermal", "df"),
    "pyogenic granuloma": ("benign", "benign dermal", "vasc"),
    "psoriasis": ("non-neoplastic", "inflammatory", "akiec"),
    "lichen planus": ("non-neoplastic", "inflammatory", "akiec"),
    "allergic contact dermatitis": ("non-neoplastic", "inflammatory", "scc"),
    "neurofibromatosis": ("non-neoplastic", "genodermatoses", "nv"),
}
QC_NOTES = ("1 Diagnostic", "2 Characteristic", "3 Wrongly labelled")


def _pick(rng: np.random.Generator, names: list[str], weights: list[float]) -> str:
    return str(rng.choice(names, p=[w / sum(weights) for w in weights]))


def write_ddi(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` images (all of them test images under the default ``split: external``) and ``ddi_metadata.csv`` in
    ``out``; returns ``{"test": n}``. From ``DDI_MIN_N`` on both classes are present."""
    out.mkdir(parents=True, exist_ok=True)
    flags = draw_classes(item_rng(seed, 90), n, DDI_CLASSES)
    tones = draw_classes(item_rng(seed, 91), n, DDI_TONES)
    rows = []
    for i, (flag, tone) in enumerate(zip(flags, tones, strict=True)):
        rng = item_rng(seed, 90, i)
        diseases = [d for d, (malignant, _, _) in DDI_DISEASES.items() if str(malignant) == flag]
        disease = _pick(rng, diseases, [DDI_DISEASES[d][2] for d in diseases])
        skin_type = int(tone[int(rng.integers(2))])  # one type of the pair: 12 → I or II
        name = f"{i + 1:06d}.png"
        render_lesion(DDI_DISEASES[disease][1], wh(size), rng, skin_type=skin_type).image.save(out / name)
        rows.append(f"{i},{i + 1},{name},{tone},{flag},{disease}")
    write_csv(out / "ddi_metadata.csv", DDI_COLUMNS, rows, crlf=False)
    return {"test": n}


def write_fitzpatrick17k(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` rows of ``fitzpatrick17k.csv`` and their images in ``out/images/``, the pool the default folds are drawn
    from; returns ``{"train": n}``. From ``FITZPATRICK17K_MIN_N`` on every class has five images."""
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    classes = draw_classes(item_rng(seed, 95), n, FITZPATRICK17K_CLASSES, minimum=5)
    types = draw_classes(item_rng(seed, 96), n, FITZPATRICK17K_TYPES)
    rows = []
    for i, (partition, kind) in enumerate(zip(classes, types, strict=True)):
        rng = item_rng(seed, 95, i)
        labels = [name for name, (three, _, _) in FITZPATRICK17K_LABELS.items() if three == partition]
        label = labels[int(rng.integers(len(labels)))]
        _, nine, look = FITZPATRICK17K_LABELS[label]
        skin_type = int(kind) if kind != "-1" else int(rng.integers(1, 7))  # not rated: some skin all the same
        buffer = io.BytesIO()
        render_lesion(look, wh(size), rng, skin_type=skin_type).image.save(buffer, format="JPEG", quality=92)
        md5 = hashlib.md5(buffer.getvalue()).hexdigest()  # noqa: S324 (a file name, as the release's)
        (images / f"{md5}.jpg").write_bytes(buffer.getvalue())
        shift = int(rng.choice([-1, 0, 0, 0, 1]))
        centaur = kind if kind == "-1" else str(min(6, max(1, int(kind) + shift)))
        qc = QC_NOTES[int(rng.integers(len(QC_NOTES)))] if rng.random() < 1 / 12 else ""
        url = f"https://example.invalid/{md5}.jpg"
        rows.append(f"{md5},{kind},{centaur},{label},{nine},{partition},{qc},{url},{re.sub(r'[^A-Za-z0-9]', '', url)}")
    write_csv(out / "fitzpatrick17k.csv", FITZPATRICK17K_COLUMNS, rows, crlf=False)
    return {"train": n}
