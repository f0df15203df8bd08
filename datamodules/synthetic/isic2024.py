"""Synthetic ISIC 2024 (SLICE-3D) in the official Kaggle layout (see ``datamodules/isic2024.py``).

Each image is rendered, saved as a JPEG file (``train-image/image/ISIC_xxxxxxx.jpg``, as the download also holds
the training images) and its exact bytes packed into ``train-image.hdf5`` / ``test-image.hdf5``: one scalar
byte-string dataset per image, named by its ``isic_id``. ``train-metadata.csv`` has the official 55 columns
(``isic_id,target,patient_id,age_approx,sex,anatom_site_general,...,tbp_lv_dnn_lesion_confidence``),
``test-metadata.csv`` the 44 without the target and diagnosis columns, ``sample_submission.csv`` ``isic_id,target``.
Images come in patients of about three crops each (age, sex and attribution per patient), so that patient-grouped
folds have something to group. The malignant share is 30 %, not the real 393 of 401,059, so that a copy of a few
dozen images has malignant crops in every fold; a malignant crop is drawn as a melanoma, a benign one as a nevus or
seborrheic keratosis (:mod:`datamodules.synthetic.render`), square as the 15 × 15 mm tiles are.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from datamodules.synthetic.common import item_rng, split_sizes
from datamodules.synthetic.render import render_lesion

if TYPE_CHECKING:
    from PIL import Image

MALIGNANT_SHARE = 0.3
IMAGES_PER_PATIENT = 3
#: The smallest ``n`` the datamodule's default split (5 patient-grouped folds) takes for any seed: five patients of
#: three images, ten or more of them benign.
MIN_N = 5 * IMAGES_PER_PATIENT
TBP_NUMBERS = ("A", "Aext", "B", "Bext", "C", "Cext", "H", "Hext", "L", "Lext", "areaMM2", "area_perim_ratio",
               "color_std_mean", "deltaA", "deltaB", "deltaL", "deltaLB", "deltaLBnorm", "eccentricity")
TBP_SHAPE = ("minorAxisMM", "nevi_confidence", "norm_border", "norm_color", "perimeterMM", "radial_color_std_max",
             "stdL", "stdLExt", "symm_2axis", "symm_2axis_angle", "x", "y", "z")
TRAIN_COLUMNS = ("isic_id", "target", "patient_id", "age_approx", "sex", "anatom_site_general",
                 "clin_size_long_diam_mm", "image_type", "tbp_tile_type", *(f"tbp_lv_{c}" for c in TBP_NUMBERS),
                 "tbp_lv_location", "tbp_lv_location_simple", *(f"tbp_lv_{c}" for c in TBP_SHAPE), "attribution",
                 "copyright_license", "lesion_id", "iddx_full", "iddx_1", "iddx_2", "iddx_3", "iddx_4", "iddx_5",
                 "mel_mitotic_index", "mel_thick_mm", "tbp_lv_dnn_lesion_confidence")
TRAIN_ONLY = ("target", "lesion_id", "iddx_full", "iddx_1", "iddx_2", "iddx_3", "iddx_4", "iddx_5",
              "mel_mitotic_index", "mel_thick_mm", "tbp_lv_dnn_lesion_confidence")
TEST_COLUMNS = tuple(c for c in TRAIN_COLUMNS if c not in TRAIN_ONLY)
SITES = {"posterior torso": "Torso Back", "anterior torso": "Torso Front", "lower extremity": "Left Leg",
         "upper extremity": "Right Arm", "head/neck": "Head & Neck"}
ATTRIBUTION = ("Memorial Sloan Kettering Cancer Center", "Department of Dermatology, Hospital Clínic de Barcelona",
               "University Hospital of Basel")
MELANOMA = "Malignant::Malignant melanocytic proliferations (Melanoma)::Melanoma Invasive"


def jpeg_bytes(image: Image.Image, quality: int = 92) -> bytes:
    """The JPEG file of ``image`` as bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _rows(n: int, size: int, seed: int, first_id: int, stream: int) -> tuple[list[dict], dict[str, bytes]]:
    """``n`` metadata rows of one split and the JPEG bytes of each image."""
    rng = item_rng(seed, stream)
    patients = max(1, n // IMAGES_PER_PATIENT)
    patient_of = rng.permutation(np.arange(n) % patients)
    malignant = np.zeros(n, bool)
    malignant[rng.choice(n, size=max(1, round(MALIGNANT_SHARE * n)), replace=False)] = True
    people = [{"patient_id": f"IP_{seed % 100:02d}{stream:02d}{p:03d}", "age_approx": float(rng.integers(6, 17) * 5),
               "sex": str(rng.choice(["male", "female"])), "attribution": str(rng.choice(ATTRIBUTION))}
              for p in range(patients)]
    rows, images = [], {}
    for i in range(n):
        image_id = f"ISIC_{first_id + i:07d}"
        draw = item_rng(seed, stream, i)
        dx = "mel" if malignant[i] else str(draw.choice(["nv", "sk"], p=[0.8, 0.2]))
        images[image_id] = jpeg_bytes(render_lesion(dx, size, draw).image)
        site = str(draw.choice(list(SITES)))
        diameter = round(draw.uniform(2.5, 9.0 if malignant[i] else 5.0), 2)  # mm; malignant crops tend larger
        row = {"isic_id": image_id, "target": int(malignant[i]), **people[patient_of[i]],
               "anatom_site_general": site, "clin_size_long_diam_mm": diameter,
               "image_type": "TBP tile: close-up", "tbp_tile_type": str(draw.choice(["3D: white", "3D: XP"])),
               **{f"tbp_lv_{c}": round(float(draw.normal(20, 5)), 6) for c in (*TBP_NUMBERS, *TBP_SHAPE)},
               "tbp_lv_location": SITES[site], "tbp_lv_location_simple": SITES[site],
               "copyright_license": str(draw.choice(["CC-BY", "CC-BY-NC", "CC-0"])),
               "lesion_id": f"IL_{first_id + i:07d}" if malignant[i] else "",
               "iddx_full": MELANOMA if malignant[i] else "Benign", "iddx_1": "Malignant" if malignant[i] else "Benign",
               "iddx_2": "Malignant melanocytic proliferations (Melanoma)" if malignant[i] else "",
               "iddx_3": "Melanoma Invasive" if malignant[i] else "", "iddx_4": "", "iddx_5": "",
               "mel_mitotic_index": "", "mel_thick_mm": round(draw.uniform(0.2, 2.0), 2) if malignant[i] else "",
               "tbp_lv_dnn_lesion_confidence": round(float(draw.uniform(50, 100)), 6)}
        rows.append(row)
    return rows, images


def write_hdf5(path: Path, images: dict[str, bytes]) -> None:
    """``images`` (id → encoded bytes) as one scalar byte-string dataset per id, the ISIC 2024 layout."""
    import h5py

    with h5py.File(path, "w") as file:
        for image_id, data in images.items():
            file.create_dataset(image_id, data=np.bytes_(data))


def write_isic2024(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images of ``size`` px (and ``n // 2``, at least 8, test images); returns counts per split."""
    sizes = split_sizes(n, ("train", "test"))
    first = 15000
    for stream, split in enumerate(("train", "test")):
        rows, images = _rows(sizes[split], size, seed, first, 70 + stream)
        first += sizes[split]
        if split == "train":
            folder = out / "train-image" / "image"
            folder.mkdir(parents=True, exist_ok=True)
            for image_id, data in images.items():
                (folder / f"{image_id}.jpg").write_bytes(data)
        write_hdf5(out / f"{split}-image.hdf5", images)
        columns = list(TRAIN_COLUMNS if split == "train" else TEST_COLUMNS)
        pd.DataFrame(rows)[columns].to_csv(out / f"{split}-metadata.csv", index=False)
    pd.DataFrame({"isic_id": pd.read_csv(out / "test-metadata.csv").isic_id, "target": 0.3}).to_csv(
        out / "sample_submission.csv", index=False)
    return sizes
