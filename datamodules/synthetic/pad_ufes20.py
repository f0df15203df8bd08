"""Synthetic PAD-UFES-20 in the release's layout (see ``datamodules/datasets/pad_ufes20.py``).

``metadata.csv`` with the release's 26 columns in order (LF; ``img_id`` with its ``.png``, booleans as
``True``/``False``, ``fitspatrick`` as ``2.0``, sites upper-case) and the PNG images split over
``images/imgs_part_1/``, ``imgs_part_2/`` and ``imgs_part_3/`` (a third of them each, in the order drawn; the rows are
shuffled), so that the reader's search of the folders is exercised. Patients have one to three lesions (the first
patient two), lesions one or two images (the first lesion two: the second shot is a flip or half turn of the first,
as :mod:`datamodules.synthetic.ham` repeats a lesion), and one lesion's images share its diagnosis, site and
diameters. About a third of the patients lack the extended data, as in the release: their ``smoke`` …
``has_sewage_system``, ``gender``, ``fitspatrick`` and diameters are empty; their skin is still drawn with a type (the
CSV does not say which). The skin is rendered by Fitzpatrick type (:func:`~datamodules.synthetic.render.render_lesion`
with ``skin_type``), in shares that give the darker types a few images in a small twin (the release has very few);
classes follow the release's counts, each class at least once.

``MIN_N`` is the smallest ``n`` whose twin the datamodule's default split (5 patient-grouped stratified folds) sets up
for any seed: a patient holds at most ``n // 5`` images, so there are at least five patients, and from 25 images on
one of the six classes has five (``StratifiedGroupKFold`` needs a class with as many images as folds).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from datamodules.synthetic.common import draw_classes, item_rng, wh, write_csv
from datamodules.synthetic.ham import _view
from datamodules.synthetic.render import render_lesion

#: The release's images per diagnosis and the synthetic look of each (``render.STYLES``).
PRIORS = {"ACK": 730, "BCC": 845, "MEL": 52, "NEV": 244, "SCC": 192, "SEK": 235}
LOOKS = {"ACK": "akiec", "BCC": "bcc", "MEL": "mel", "NEV": "nv", "SCC": "scc", "SEK": "sk"}
CANCERS = ("BCC", "MEL", "SCC")  # always biopsied in the release; the others now and then
COLUMNS = ("patient_id,lesion_id,smoke,drink,background_father,background_mother,age,pesticide,gender,"
           "skin_cancer_history,cancer_history,has_piped_water,has_sewage_system,fitspatrick,region,diameter_1,"
           "diameter_2,diagnostic,itch,grew,hurt,changed,bleed,elevation,img_id,biopsed")
REGIONS = ("FACE", "FOREARM", "CHEST", "BACK", "NOSE", "ARM", "HAND", "NECK", "SCALP", "EAR", "LIP", "THIGH",
           "ABDOMEN", "FOOT")
BACKGROUNDS = ("POMERANIA", "GERMANY", "ITALY", "BRAZIL", "PORTUGAL", "NETHERLANDS", "POLAND", "UNK")
TYPE_SHARES = (0.10, 0.40, 0.30, 0.10, 0.06, 0.04)  # Fitzpatrick I … VI (not the release's: see the module)
NO_EXTENDED_P = 0.35  # patients without the extended data (smoke … diameters empty)
LESIONS_P = (0.8, 0.15, 0.05)  # one, two or three lesions per patient
SECOND_IMAGE_P = 0.4  # a lesion's second image (the release: 2,298 images of 1,641 lesions)
BIOPSY_P = 0.2  # a biopsy of an ACK, NEV or SEK
PARTS = 3
FOLDS = 5  # the datamodule's default n_folds: a patient holds at most n // FOLDS images
MIN_N = 25


def _flag(rng: np.random.Generator, unknown_p: float = 0.0) -> str:
    """``True`` or ``False`` (``UNK`` with probability ``unknown_p``), as the release writes its booleans."""
    return "UNK" if rng.random() < unknown_p else str(bool(rng.random() < 0.5))


def _patient_fields(rng: np.random.Generator, extended: bool, skin_type: int) -> dict[str, str]:
    """One patient's columns of the release (empty where the extended data were not collected)."""
    fields = {"age": str(int(np.clip(rng.normal(60, 15), 6, 94)))}
    names = ("smoke", "drink", "pesticide", "skin_cancer_history", "cancer_history", "has_piped_water",
             "has_sewage_system")
    fields.update({name: _flag(rng) if extended else "" for name in names})
    fields["background_father"] = str(rng.choice(BACKGROUNDS)) if extended else ""
    fields["background_mother"] = str(rng.choice(BACKGROUNDS)) if extended else ""
    fields["gender"] = str(rng.choice(["FEMALE", "MALE"])) if extended else ""
    fields["fitspatrick"] = f"{skin_type}.0" if extended else ""
    return fields


def _lesion_fields(rng: np.random.Generator, extended: bool, diagnosis: str) -> dict[str, str]:
    """One lesion's columns: site, diameters (mm, extended data only), symptoms and whether it was biopsied."""
    fields = {"region": str(rng.choice(REGIONS)), "diagnostic": diagnosis,
              "biopsed": str(diagnosis in CANCERS or bool(rng.random() < BIOPSY_P))}
    for name in ("diameter_1", "diameter_2"):
        fields[name] = f"{float(rng.integers(2, 30))}" if extended else ""
    fields.update({name: _flag(rng, 0.05) for name in ("itch", "grew", "hurt", "changed", "bleed", "elevation")})
    return fields


def write_pad_ufes20(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` images in all (the pool the datamodule's folds are drawn from), ``size`` px wide; returns
    ``{"train": n}``. Any ``n >= 1`` is written; below ``MIN_N`` the default 5-fold split may not set up."""
    rng = item_rng(seed, 120)
    remaining = Counter(draw_classes(rng, n, PRIORS, minimum=1))
    most_per_patient = max(1, n // FOLDS)
    first_patient, first_lesion, first_image = (int(x) for x in rng.integers(1, 2000, 3))
    rows: list[str] = []
    written, patient_index, lesion_index = 0, 0, 0
    while written < n:
        patient = f"PAT_{first_patient + patient_index}"
        lesions = 2 if patient_index == 0 else int(rng.choice([1, 2, 3], p=LESIONS_P))
        extended = patient_index == 0 or bool(rng.random() >= NO_EXTENDED_P)
        skin_type = int(rng.choice(np.arange(1, 7), p=TYPE_SHARES))
        person = _patient_fields(rng, extended, skin_type)
        held = 0
        for lesion in range(lesions):
            if written >= n or held >= most_per_patient:
                break
            names = sorted(c for c, left in remaining.items() if left > 0)
            weights = np.array([remaining[c] for c in names], float)
            diagnosis = str(rng.choice(names, p=weights / weights.sum()))
            shots = 2 if (patient_index == 0 and lesion == 0) or rng.random() < SECOND_IMAGE_P else 1
            shots = min(shots, remaining[diagnosis], most_per_patient - held)
            lesion_id = str(first_lesion + lesion_index)
            lesion_index += 1
            spot = _lesion_fields(rng, extended, diagnosis)
            drawn = render_lesion(LOOKS[diagnosis], wh(size), item_rng(seed, 120, written), skin_type=skin_type)
            for shot in range(shots):
                img_id = f"{patient}_{lesion_id}_{first_image + written}.png"
                folder = out / "images" / f"imgs_part_{1 + written * PARTS // n}"
                folder.mkdir(parents=True, exist_ok=True)
                (drawn if shot == 0 else _view(drawn, shot)).image.save(folder / img_id)
                values = {**person, **spot, "patient_id": patient, "lesion_id": lesion_id, "img_id": img_id}
                rows.append(",".join(values[c] for c in COLUMNS.split(",")))
                written, held = written + 1, held + 1
                remaining[diagnosis] -= 1
        patient_index += 1
    order = rng.permutation(len(rows))
    write_csv(out / "metadata.csv", COLUMNS, [rows[i] for i in order], crlf=False)
    return {"train": n}
