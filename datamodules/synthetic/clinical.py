"""Synthetic vitiligo (folder per class) and 7-point criteria (derm7pt release_v0) layouts.

Vitiligo: ``{train,val,test}/{Yes,No}/*.jpg`` (Yes = vitiligo), as the public set's code expects.
derm7pt: ``release_v0/meta/meta.csv`` (the 19 columns of the release), ``meta/{train,valid,test}_indexes.csv``
(one ``indexes`` column of 0-based row numbers) and ``release_v0/images/<folder>/<file>`` for the
dermoscopic (``derm``) images. derm7pt's ``n`` counts all images, which are split as release_v0 is (395 test,
203 valid, 413 train of 1011); every part holds at least one image that the datamodule keeps (``melanosis`` and
``miscellaneous`` match no HAM class and are left out), so ``DERM7PT_MIN_N`` (one image per part) is the
smallest usable ``n``. Vitiligo's ``n`` counts the training images; ``VITILIGO_MIN_N`` gives training both
classes.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.synthetic.common import draw_classes, item_rng, split_sizes, wh, write_csv
from datamodules.synthetic.render import render_lesion, render_vitiligo

VITILIGO_MIN_N = 2
DERM7PT_MIN_N = 3


def write_vitiligo(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images (validation ``n // 4`` and test ``n // 2``, at least 8 each); counts per split."""
    sizes = split_sizes(n)
    for stream, split in enumerate(("train", "val", "test")):
        for i, label in enumerate(draw_classes(item_rng(seed, 70, stream), sizes[split], {"Yes": 0.5, "No": 0.5})):
            folder = out / split / label
            folder.mkdir(parents=True, exist_ok=True)
            image = render_vitiligo(label == "Yes", wh(size), item_rng(seed, 70, stream, i))
            image.save(folder / f"{split}_{i:05d}.jpg", quality=92)
    return sizes


# derm7pt diagnosis strings with their share in release_v0 and the synthetic look used for them.
DERM7PT_DIAGNOSES = {
    "clark nevus": (399, "nv"), "melanoma (less than 0.76 mm)": (102, "mel"), "reed or spitz nevus": (79, "nv"),
    "melanoma (in situ)": (64, "mel"), "melanoma (0.76 to 1.5 mm)": (53, "mel"), "seborrheic keratosis": (45, "bkl"),
    "basal cell carcinoma": (42, "bcc"), "dermal nevus": (33, "nv"), "vascular lesion": (29, "vasc"),
    "melanoma (more than 1.5 mm)": (28, "mel"), "blue nevus": (28, "nv"), "lentigo": (24, "bkl"),
    "dermatofibroma": (20, "df"), "congenital nevus": (17, "nv"), "melanosis": (16, "nv"),
    "combined nevus": (13, "nv"), "miscellaneous": (8, "bkl"), "recurrent nevus": (6, "nv"),
    "melanoma metastasis": (4, "mel"), "melanoma": (1, "mel"),
}
DERM7PT_COLUMNS = ("case_num,diagnosis,seven_point_score,pigment_network,streaks,pigmentation,regression_structures,"
                   "dots_and_globules,blue_whitish_veil,vascular_structures,level_of_diagnostic_difficulty,elevation,"
                   "location,sex,management,clinic,derm,case_id,notes")
DERM7PT_LEFT_OUT = ("melanosis", "miscellaneous")  # no HAM class: the datamodule leaves them out
DERM7PT_SHARES = {"test": 395 / 1011, "valid": 203 / 1011}  # release_v0's parts; train is the rest


def _derm7pt_parts(diagnoses: list[str], seed: int) -> dict[str, list[int]]:
    """Row numbers of the test, valid and train parts: a seeded shuffle cut in release_v0's shares, then, where a
    part holds only left-out diagnoses, one of its rows swapped with a kept row of a part that has two."""
    n = len(diagnoses)
    order = [int(i) for i in item_rng(seed, 81).permutation(n)]
    n_test, n_valid = round(n * DERM7PT_SHARES["test"]), round(n * DERM7PT_SHARES["valid"])
    bounds = {"test": (0, n_test), "valid": (n_test, n_test + n_valid), "train": (n_test + n_valid, n)}

    def kept(lo: int, hi: int) -> list[int]:
        return [p for p in range(lo, hi) if diagnoses[order[p]] not in DERM7PT_LEFT_OUT]

    for lo, hi in bounds.values():
        if hi > lo and not kept(lo, hi):
            donor = next((p for a, b in bounds.values() if len(kept(a, b)) > 1 for p in kept(a, b)), None)
            if donor is not None:  # None: fewer kept rows than parts (n below DERM7PT_MIN_N)
                order[lo], order[donor] = order[donor], order[lo]
    return {name: order[lo:hi] for name, (lo, hi) in bounds.items()}


def write_derm7pt(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` images in all (not training images), split into test, valid and train parts; counts per part.
    From ``DERM7PT_MIN_N`` on every part holds an image the datamodule keeps."""
    release = out / "release_v0"
    priors = {name: count for name, (count, _) in DERM7PT_DIAGNOSES.items()}
    diagnoses = draw_classes(item_rng(seed, 80), n, priors)
    for i in range(n):  # at least one kept image per part: three (or all n) of a diagnosis the datamodule keeps
        if sum(d not in DERM7PT_LEFT_OUT for d in diagnoses) >= min(n, DERM7PT_MIN_N):
            break
        if diagnoses[i] in DERM7PT_LEFT_OUT:
            diagnoses[i] = "clark nevus"
    rows = []
    for i, diagnosis in enumerate(diagnoses):
        rng = item_rng(seed, 80, i)
        folder = f"Syn{i // 50:03d}"
        derm, clinic = f"{folder}/Syn{2 * i + 1:03d}.jpg", f"{folder}/Syn{2 * i:03d}.jpg"
        (release / "images" / folder).mkdir(parents=True, exist_ok=True)
        render_lesion(DERM7PT_DIAGNOSES[diagnosis][1], (size, round(size * 2 / 3)), rng).image.save(
            release / "images" / derm, quality=92)
        sex = rng.choice(["female", "male"])
        rows.append(f"{i + 1},{diagnosis},0,absent,absent,absent,absent,absent,absent,absent,low,flat,back,{sex},"
                    f"clinical follow up,{clinic},{derm},,")
    write_csv(release / "meta" / "meta.csv", DERM7PT_COLUMNS, rows, crlf=False)
    parts = _derm7pt_parts(diagnoses, seed)
    for name, indexes in parts.items():
        write_csv(release / "meta" / f"{name}_indexes.csv", "indexes", [str(i) for i in sorted(indexes)], crlf=False)
    return {name: len(indexes) for name, indexes in parts.items()}
