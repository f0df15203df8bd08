"""Synthetic HAM10000 and ISIC 2018 (tasks 1, 2, 3): the seven HAM classes in the official layouts.

HAM10000: ``HAM10000_metadata.csv`` (8-column Dataverse layout
``lesion_id,image_id,dx,dx_type,age,sex,localization,dataset``, CRLF) and images split into
``HAM10000_images_part_1/`` and ``..._part_2/``. Several images share a lesion (a flipped or
rotated copy of the same drawing, like HAM's repeated shots), and ``dx_type`` follows the real
shares per diagnosis. ISIC 2018 task 3 reuses them with the one-hot ground truth and
``ISIC2018_Task3_Training_LesionGroupings.csv``; tasks 1 and 2 write lesion and attribute masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from datamodules.synthetic.common import draw_classes, item_rng, split_sizes, wh, write_csv
from datamodules.synthetic.render import ATTRIBUTES, Rendering, render_lesion

CLASSES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
PRIORS = {"nv": 6705, "mel": 1113, "bkl": 1099, "bcc": 514, "akiec": 327, "vasc": 142, "df": 115}
# dx_type shares by diagnosis (HAM: histo 5340, follow_up 3704, consensus 902, confocal 69 of 10015).
DX_TYPES = {
    "nv": {"follow_up": 0.55, "histo": 0.30, "consensus": 0.13, "confocal": 0.02},
    "mel": {"histo": 1.0},
    "bcc": {"histo": 1.0},
    "akiec": {"histo": 1.0},
    "bkl": {"histo": 0.55, "consensus": 0.33, "confocal": 0.12},
    "df": {"histo": 0.5, "consensus": 0.5},
    "vasc": {"histo": 0.45, "consensus": 0.55},
}
CONFIRM_TYPES = {"histo": "histopathology", "follow_up": "serial imaging showing no change",
                 "consensus": "single image expert consensus",
                 "confocal": "confocal microscopy with consensus dermoscopy"}
REPEAT_P = 0.3  # chance that the next image shows the same lesion again (HAM: 10015 images, 7470 lesions)
FIRST_ID = 24306  # HAM10000 image ids run from ISIC_0024306
#: The smallest HAM10000 ``n`` the datamodule's default split (5 lesion-grouped folds) takes for any seed: from 14
#: images on each of the 7 classes has two (so there are 7 lesions or more), and from 29 on one class has five.
HAM10000_MIN_N = 29


@dataclass
class Case:
    """One synthetic HAM10000 image: its ids, diagnosis, how the diagnosis was confirmed, and its pixels."""

    image_id: str
    lesion_id: str
    dx: str
    dx_type: str
    rendering: Rendering


def _view(rendering: Rendering, repeat: int) -> Rendering:
    """The ``repeat``-th further shot (1, 2, ...) of a lesion's first rendering: a flip or half turn (keeps the
    4:3 shape), and from the 4th on a slightly brighter exposure, so no two shots share their pixels (like HAM's
    repeated shots, which are other photographs, not copies — the split audit would flag a copy)."""
    op = (Image.FLIP_LEFT_RIGHT, Image.FLIP_TOP_BOTTOM, Image.ROTATE_180)[(repeat - 1) % 3]
    image = rendering.image.transpose(op)
    if repeat > 3:
        shift = (repeat - 1) // 3
        image = image.point(lambda v: min(255, v + shift))
    return Rendering(image, rendering.mask.transpose(op),
                     {k: v.transpose(op) for k, v in rendering.attributes.items()})


def draw_cases(n: int, size: int, seed: int, stream: int, first_id: int) -> list[Case]:
    """``n`` images of HAM classes with lesion ids (with repeats) and dx_type."""
    rng = item_rng(seed, stream)
    diagnoses = draw_classes(rng, n, PRIORS, minimum=2)
    cases: list[Case] = []
    lesion, first, repeat = 0, None, 0
    for i, dx in enumerate(diagnoses):
        previous = cases[-1] if cases else None
        if previous and previous.dx == dx and rng.random() < REPEAT_P:
            repeat += 1
            rendering, lesion_id, dx_type = _view(first, repeat), previous.lesion_id, previous.dx_type
        else:
            rendering = first = render_lesion(dx, wh(size), item_rng(seed, stream, i))
            repeat = 0
            lesion_id = f"HAM_{seed % 100:02d}{stream:02d}{lesion:03d}"
            lesion += 1
            shares = DX_TYPES[dx]
            dx_type = str(rng.choice(list(shares), p=list(shares.values())))
        cases.append(Case(f"ISIC_{first_id + i:07d}", lesion_id, dx, dx_type, rendering))
    return cases


def write_ham10000(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` images, the whole pool the datamodule's folds are drawn from; returns ``{"train": n}``."""
    cases = draw_cases(n, size, seed, stream=10, first_id=FIRST_ID)
    rng = item_rng(seed, 11)
    rows = []
    for index, case in enumerate(cases):
        part = out / f"HAM10000_images_part_{1 if index < (n + 1) // 2 else 2}"
        part.mkdir(parents=True, exist_ok=True)
        case.rendering.image.save(part / f"{case.image_id}.jpg", quality=92)
        age = int(rng.integers(4, 18)) * 5
        sex = rng.choice(["male", "female"])
        site = rng.choice(["back", "lower extremity", "trunk", "upper extremity", "abdomen", "face"])
        dataset = rng.choice(["vidir_molemax", "vidir_modern", "rosendahl", "vienna_dias"])
        rows.append(f"{case.lesion_id},{case.image_id},{case.dx},{case.dx_type},{age},{sex},{site},{dataset}")
    write_csv(out / "HAM10000_metadata.csv", "lesion_id,image_id,dx,dx_type,age,sex,localization,dataset", rows)
    return {"train": n}


def _one_hot(case: Case) -> str:
    return ",".join(f"{float(case.dx.upper() == c):.1f}" for c in CLASSES)


def write_isic2018_task3(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """ISIC 2018 task 3 in its official layout under ``out``: ``n`` training images of ``size`` px plus validation
    and test images (:func:`~datamodules.synthetic.common.split_sizes`), each split's one-hot ground truth and the
    training images' ``ISIC2018_Task3_Training_LesionGroupings.csv``; returns the images per split."""
    sizes = split_sizes(n)
    first = FIRST_ID
    for stream, (split, folder) in enumerate((("train", "Training"), ("val", "Validation"), ("test", "Test"))):
        cases = draw_cases(sizes[split], size, seed, stream=30 + stream, first_id=first)
        first += sizes[split]
        images = out / f"ISIC2018_Task3_{folder}_Input"
        images.mkdir(parents=True, exist_ok=True)
        for case in cases:
            case.rendering.image.save(images / f"{case.image_id}.jpg", quality=92)
        write_csv(out / f"ISIC2018_Task3_{folder}_GroundTruth.csv", "image," + ",".join(CLASSES),
                  [f"{c.image_id},{_one_hot(c)}" for c in cases])
        if split == "train":
            write_csv(out / "ISIC2018_Task3_Training_LesionGroupings.csv", "image,lesion_id,diagnosis_confirm_type",
                      [f"{c.image_id},{c.lesion_id},{CONFIRM_TYPES[c.dx_type]}" for c in cases])
    return sizes


def _write_segmentation(out: Path, n: int, size: int, seed: int, attributes: bool) -> dict[str, int]:
    sizes = split_sizes(n)
    first = 0
    for stream, (split, folder) in enumerate((("train", "Training"), ("val", "Validation"), ("test", "Test"))):
        cases = draw_cases(sizes[split], size, seed, stream=50 + stream, first_id=first)
        first += sizes[split]
        images = out / f"ISIC2018_Task1-2_{folder}_Input"
        images.mkdir(parents=True, exist_ok=True)
        truth = out / (f"ISIC2018_Task2_{folder}_GroundTruth" + ("_v3" if split == "train" else "")
                       if attributes else f"ISIC2018_Task1_{folder}_GroundTruth")
        truth.mkdir(parents=True, exist_ok=True)
        for case in cases:
            case.rendering.image.save(images / f"{case.image_id}.jpg", quality=92)
            if attributes:
                for name in ATTRIBUTES:
                    case.rendering.attributes[name].save(truth / f"{case.image_id}_attribute_{name}.png")
            else:
                case.rendering.mask.save(truth / f"{case.image_id}_segmentation.png")
    return sizes


def write_isic2018_task1(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """ISIC 2018 task 1 in its official layout under ``out``: ``n`` training images of ``size`` px plus validation
    and test images, each with its lesion mask (``<id>_segmentation.png``, 0/255); returns the images per split."""
    return _write_segmentation(out, n, size, seed, attributes=False)


def write_isic2018_task2(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """ISIC 2018 task 2 in its official layout under ``out``: ``n`` training images of ``size`` px plus validation
    and test images, each with its five attribute masks (``<id>_attribute_<name>.png``, 0/255; the training truth
    in ``..._GroundTruth_v3``); returns the images per split."""
    return _write_segmentation(out, n, size, seed, attributes=True)
