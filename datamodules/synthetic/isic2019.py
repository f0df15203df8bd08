"""Synthetic ISIC 2019 in the official layout (see ``datamodules/isic2019.py``).

``ISIC_2019_Training_Input/<id>.jpg``; ``ISIC_2019_Training_GroundTruth.csv`` (``image,MEL,NV,BCC,AK,BKL,DF,VASC,
SCC,UNK``, one-hot ``0.0``/``1.0``, UNK never set, CRLF) and ``ISIC_2019_Training_Metadata.csv`` (``image,age_approx,
anatom_site_general,lesion_id,sex``, CRLF). Every tenth id, from the second on, carries the ``_downsampled`` suffix
of the real file names (``ISIC_0000001_downsampled``; 2,074 of the 25,331 real ids do), and those images have an
empty ``lesion_id`` (one image each); the others repeat a lesion now and then (a flipped or turned shot of the
same drawing), so the folds have multi-image lesions to keep whole. Classes follow the real training counts.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.synthetic.common import draw_classes, item_rng, wh, write_csv
from datamodules.synthetic.ham import REPEAT_P, _view
from datamodules.synthetic.render import render_lesion

# The real training counts (ISIC_2019_Training_GroundTruth.csv) and the synthetic look of each class.
PRIORS = {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239, "VASC": 253, "SCC": 628}
STYLE = {"MEL": "mel", "NV": "nv", "BCC": "bcc", "AK": "akiec", "BKL": "bkl", "DF": "df", "VASC": "vasc", "SCC": "scc"}
CATEGORIES = (*PRIORS, "UNK")
SITES = ("anterior torso", "upper extremity", "posterior torso", "lower extremity", "head/neck", "lateral torso",
         "palms/soles", "oral/genital", "")
DOWNSAMPLED_EVERY = 10
#: The smallest ``n`` the datamodule's default split (5 lesion-grouped folds) takes for any seed: from 16 images on
#: each of the 8 classes has two (so there are 8 lesions or more), and from 33 on one class has five images.
MIN_N = 33


def image_id(index: int) -> str:
    """``ISIC_xxxxxxx``, with the ``_downsampled`` suffix on every tenth id from the second on."""
    return f"ISIC_{index:07d}" + ("_downsampled" if index % DOWNSAMPLED_EVERY == 1 else "")


def write_isic2019(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images of ``size`` px (the only split released with a truth); returns ``{"train": n}``."""
    rng = item_rng(seed, 19)
    images = out / "ISIC_2019_Training_Input"
    images.mkdir(parents=True, exist_ok=True)
    truth, metadata = [], []
    lesion, first, repeat, previous = 0, None, 0, None
    for i, dx in enumerate(draw_classes(rng, n, PRIORS, minimum=2)):
        name = image_id(i)
        alone = name.endswith("_downsampled")
        if previous and previous[0] == dx and previous[1] and not alone and rng.random() < REPEAT_P:
            repeat += 1
            rendering, lesion_id = _view(first, repeat), previous[1]
        else:
            rendering = first = render_lesion(STYLE[dx], wh(size), item_rng(seed, 19, i))
            repeat = 0
            lesion_id = "" if alone else f"BCN_{seed % 100:02d}{lesion:05d}"
            lesion += not alone
        rendering.image.save(images / f"{name}.jpg", quality=92)
        previous = (dx, lesion_id)
        truth.append(name + "," + ",".join(f"{float(dx == c):.1f}" for c in CATEGORIES))
        age = "" if rng.random() < 0.02 else f"{int(rng.integers(2, 18)) * 5}.0"
        sex = "" if rng.random() < 0.02 else str(rng.choice(["male", "female"]))
        metadata.append(f"{name},{age},{rng.choice(SITES)},{lesion_id},{sex}")
    write_csv(out / "ISIC_2019_Training_GroundTruth.csv", "image," + ",".join(CATEGORIES), truth)
    write_csv(out / "ISIC_2019_Training_Metadata.csv", "image,age_approx,anatom_site_general,lesion_id,sex", metadata)
    return {"train": n}
