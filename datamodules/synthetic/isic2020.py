"""Synthetic ISIC 2020 in the official layout (see ``datamodules/isic2020.py``).

``train/ISIC_xxxxxxx.jpg`` (random 7-digit ids, as the real ones), ``ISIC_2020_Training_GroundTruth.csv``
(``image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target``, LF as the
released file) and ``ISIC_2020_Training_Duplicates.csv`` (``image_name_1,image_name_2``). Patients have several
images each (the real set: 33,126 images of 2,056 patients); melanoma is rare (584 of 33,126) but every set has at
least three. About one image in twelve (and at least one benign image wherever a patient has two) is a
byte-identical copy of an earlier image of the same patient under a new id, listed in the duplicates file with the
earlier image first. Each image is in at most one pair (the reader refuses an ``image_name_1`` listed twice), and
at most one image in six is a copy.

``MIN_N`` is the smallest ``n`` whose twin the datamodule's default split (5 patient-grouped folds, copies left
out) sets up for any seed: with ``n >= 20`` a patient has at most ``n // 5`` images, so there are at least five
patients, and at least 17 images remain once copies are left out, so one class has five (``StratifiedGroupKFold``).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.synthetic.common import draw_classes, item_rng, wh, write_csv
from datamodules.synthetic.render import render_lesion

PRIORS = {"benign": 33126 - 584, "melanoma": 584}
BENIGN_LOOKS = {"nv": ("nevus", 0.8), "bkl": ("seborrheic keratosis", 0.2)}  # look → (diagnosis, share)
SITES = ("torso", "lower extremity", "upper extremity", "head/neck", "palms/soles", "oral/genital", "")
COPY_P = 1 / 12
COLUMNS = "image_name,patient_id,sex,age_approx,anatom_site_general_challenge,diagnosis,benign_malignant,target"
MIN_N = 20
FOLDS = 5  # the datamodule's default n_folds: a patient holds at most n // FOLDS images


def write_isic2020(out: Path, n: int, size: int, seed: int) -> dict[str, int]:
    """``n`` training images of ``size`` px (copies included); returns ``{"train": n}``. Any ``n >= 1`` is written;
    below ``MIN_N`` the default 5-fold split may not find five patients."""
    rng = item_rng(seed, 20)
    images = out / "train"
    images.mkdir(parents=True, exist_ok=True)
    numbers = rng.choice(10**7, size=n, replace=False)
    classes = draw_classes(rng, n, PRIORS, minimum=3)
    rows, pairs, patient_images, paired = [], [], [], set()
    patient, left, sex, age = None, 0, "", ""
    most_per_patient, most_copies = max(1, n // FOLDS), max(1, n // 6)
    for i, label in enumerate(classes):
        if left == 0:  # a new patient with 1-6 images (at most n // 5)
            patient, left = f"IP_{int(rng.integers(10**6, 10**7)):07d}", min(int(rng.integers(1, 7)), most_per_patient)
            sex, age, patient_images = str(rng.choice(["male", "female"])), f"{int(rng.integers(4, 17)) * 5}.0", []
        left -= 1
        name = f"ISIC_{int(numbers[i]):07d}"
        earlier = [r for r in patient_images if r[2] == label and r[0] not in paired]  # never in two pairs
        if earlier and len(pairs) < most_copies and (rng.random() < COPY_P or (not pairs and label == "benign")):
            source = earlier[int(rng.integers(len(earlier)))]  # the same photo, a new id
            (images / f"{name}.jpg").write_bytes((images / f"{source[0]}.jpg").read_bytes())
            pairs.append(f"{source[0]},{name}")
            paired.update((source[0], name))
            site, diagnosis = source[1], source[3]
        else:
            if label == "melanoma":
                look, diagnosis = "mel", "melanoma"
            else:
                look = str(rng.choice(list(BENIGN_LOOKS), p=[s for _, s in BENIGN_LOOKS.values()]))
                diagnosis = BENIGN_LOOKS[look][0] if rng.random() < 0.3 else "unknown"  # most real benign: unknown
            render_lesion(look, wh(size), item_rng(seed, 20, i)).image.save(images / f"{name}.jpg", quality=92)
            site = str(rng.choice(SITES))
        patient_images.append((name, site, label, diagnosis))
        malignant = label == "melanoma"
        rows.append(f"{name},{patient},{sex},{age},{site},{diagnosis},{'malignant' if malignant else 'benign'},"
                    f"{int(malignant)}")
    write_csv(out / "ISIC_2020_Training_GroundTruth.csv", COLUMNS, rows, crlf=False)
    write_csv(out / "ISIC_2020_Training_Duplicates.csv", "image_name_1,image_name_2", pairs, crlf=False)
    return {"train": n}
