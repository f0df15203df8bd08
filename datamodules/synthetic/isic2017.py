"""Write a synthetic ISIC 2017 Part 3 data set in the official on-disk layout.

Layout (as downloaded from the ISIC 2017 challenge page)::

    ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_xxxxxxx.jpg
    ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_xxxxxxx_superpixels.png
    ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC-2017_*_Data_metadata.csv
    ISIC-2017_{Training,Validation,Test_v2}_Part3_GroundTruth.csv

The ground-truth CSVs are byte-compatible with the official ones: header
``image_id,melanoma,seborrheic_keratosis``, values ``0.0``/``1.0``, CRLF line endings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.synthetic.render import render_lesion

SPLIT_FOLDERS = {"train": "Training", "val": "Validation", "test": "Test_v2"}
# Class priors of the official training set: 374 melanoma, 254 seborrheic keratosis of 2000.
PRIORS = {"nv": 1372 / 2000, "mel": 374 / 2000, "sk": 254 / 2000}


def split_sizes(n_train: int) -> dict[str, int]:
    """Training gets ``n_train`` images; validation a quarter and test half of that (at least 8)."""
    return {"train": n_train, "val": max(8, n_train // 4), "test": max(8, n_train // 2)}


def _diagnoses(rng: np.random.Generator, n: int) -> list[str]:
    """Draw ``n`` diagnoses with the official priors, making sure every class appears."""
    names = list(PRIORS)
    drawn = list(rng.choice(names, size=n, p=list(PRIORS.values())))
    for i, name in enumerate(names[: min(n, len(names))]):
        if name not in drawn:
            drawn[i] = name
    return [str(d) for d in drawn]


def _write_crlf_csv(path: Path, header: str, rows: list[str]) -> None:
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("ascii"))


def write_isic2017(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """Write ``n`` training images (plus validation and test) of ``size`` px under ``out``.

    Deterministic given ``seed``: image i of a split depends only on (seed, split, i).
    Returns the number of images written per split.
    """
    sizes = split_sizes(n)
    next_id = 0
    for split, folder in SPLIT_FOLDERS.items():
        data_dir = out / f"ISIC-2017_{folder}_Data"
        data_dir.mkdir(parents=True, exist_ok=True)
        split_rng = np.random.default_rng([seed, list(SPLIT_FOLDERS).index(split)])
        labels, meta = [], []
        for i, dx in enumerate(_diagnoses(split_rng, sizes[split])):
            image_id = f"ISIC_{next_id:07d}"
            next_id += 1
            rng = np.random.default_rng([seed, list(SPLIT_FOLDERS).index(split), i])
            image, mask = render_lesion(dx, size, rng)
            image.save(data_dir / f"{image_id}.jpg", quality=92)
            # The official folders also hold SLIC superpixel maps; the datamodule must skip them.
            Image.fromarray(np.zeros((size, size, 3), np.uint8)).save(data_dir / f"{image_id}_superpixels.png")
            labels.append(f"{image_id},{float(dx == 'mel'):.1f},{float(dx == 'sk'):.1f}")
            meta.append(f"{image_id},{int(rng.integers(20, 85))},{rng.choice(['male', 'female'])}")
        _write_crlf_csv(out / f"ISIC-2017_{folder}_Part3_GroundTruth.csv",
                        "image_id,melanoma,seborrheic_keratosis", labels)
        _write_crlf_csv(data_dir / f"ISIC-2017_{folder}_Data_metadata.csv", "image_id,age_approximate,sex", meta)
    return sizes
