"""Synthetic vitiligo (folder per class) and 7-point criteria (derm7pt release_v0) layouts.

Vitiligo: ``{train,val,test}/{Yes,No}/*.jpg`` (Yes = vitiligo), as the public set's code expects.
derm7pt: ``release_v0/meta/meta.csv`` (the 19 columns of the release), ``meta/{train,valid,test}_indexes.csv``
(one ``indexes`` column of 0-based row numbers) and ``release_v0/images/<folder>/<file>`` for the
dermoscopic (``derm``) images.
"""

from __future__ import annotations

from pathlib import Path

from datamodules.synthetic.common import draw_classes, item_rng, split_sizes, wh, write_csv
from datamodules.synthetic.render import render_lesion, render_vitiligo


def write_vitiligo(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
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


def write_derm7pt(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    release = out / "release_v0"
    priors = {name: count for name, (count, _) in DERM7PT_DIAGNOSES.items()}
    diagnoses = draw_classes(item_rng(seed, 80), n, priors)
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
    order = item_rng(seed, 81).permutation(n)
    n_test, n_valid = round(n * 395 / 1011), round(n * 203 / 1011)
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid], "train": order[n_test + n_valid:]}
    for name, indexes in parts.items():
        write_csv(release / "meta" / f"{name}_indexes.csv", "indexes", [str(i) for i in sorted(indexes)], crlf=False)
    return {name: len(indexes) for name, indexes in parts.items()}
