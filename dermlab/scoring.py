"""``dermlab score``: score an official submission CSV against an official ground-truth CSV.

Accepted layouts (detected from the ground-truth file):

* ISIC 2016 Part 3: truth is headerless ``ISIC_xxxxxxx,benign|malignant`` (training) or
  ``ISIC_xxxxxxx,0.0|1.0`` (test); predictions headerless ``ISIC_xxxxxxx,0.73`` or with the
  header ``image,malignant``. One category, ``malignant``.
* ISIC 2017 Part 3: ``image_id,melanoma,seborrheic_keratosis`` for both files; two binary
  categories (a nevus is 0 in both).
* ISIC 2018 Task 3: ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` one-hot for both files; the seven
  categories plus balanced multi-class accuracy (argmax).

``dermlab score --seg TRUTH_DIR PRED_DIR`` scores ISIC 2018 task 1 or task 2 masks (:func:`score_segmentation`):
every ``ISIC_xxxxxxx_segmentation.png`` (``..._attribute_<name>.png``) of the truth folder against the prediction
file carrying the same image number (and attribute), both read by :func:`datamodules.masks.read_mask` (lesion
where > 128, as the official scorer binarises; a mask that is not single-channel, or whose non-zero values are all
≤ 128 such as a {0, 1} mask, is refused). Hidden files (``._*``, ``.DS_Store``) and ``__MACOSX`` are ignored.

:func:`full_size_metrics` names those scores ``full/<metric>`` for a grid's table (the challenge's own scoring of
full-size masks, beside the ``test/`` metrics computed at the network's input size).

Metrics come from :mod:`dermlab.metrics` (torchmetrics). Rows with ``score_weight`` 0 are left
out, as the official scorer does; like it, ISIC_0035068 (2018 test) gets weight 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torchmetrics.classification import MulticlassRecall

from dermlab.errors import DataError
from dermlab.metrics import binary_metrics, scalars
from dermlab.segmentation_metrics import SCORES, attribute_jaccard, scores_from_counts

ISIC2018_CATEGORIES = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")
ZERO_WEIGHT_IMAGES = ("ISIC_0035068",)  # excluded by isic-challenge-scoring (2018 test set)


@dataclass
class Truth:
    layout: str
    id_column: str
    table: pd.DataFrame  # index: image id; columns: categories with 0/1
    one_hot: bool


def _first_line(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"'{path}' does not exist.")
    with path.open("r", encoding="utf-8-sig") as stream:
        return stream.readline().strip()


def _headerless(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, header=None, dtype={0: str})
    if table.shape[1] != 2:
        raise DataError(f"'{path}' has {table.shape[1]} columns; a headerless ISIC 2016 file has 2 (image, value).")
    return table.rename(columns={0: "image", 1: "malignant"})


def read_truth(path: Path) -> Truth:
    """Read a ground-truth CSV in any accepted layout, dropping rows of weight 0."""
    header = _first_line(path)
    if header.startswith("ISIC_"):
        table = _headerless(path)
        table["malignant"] = table["malignant"].replace({"benign": 0.0, "malignant": 1.0})
        layout, id_column = "isic2016", "image"
    else:
        table = pd.read_csv(path, dtype={"image": str, "image_id": str})
        id_column = "image_id" if "image_id" in table.columns else "image"
        if id_column not in table.columns:
            raise DataError(f"'{path}' has no 'image' or 'image_id' column; header is {header!r}.")
        if {"melanoma", "seborrheic_keratosis"} <= set(table.columns):
            layout = "isic2017"
        elif set(ISIC2018_CATEGORIES) <= set(table.columns):
            layout = "isic2018"
        else:
            raise DataError(f"cannot tell the layout of '{path}' from its header {header!r}; expected "
                            "ISIC 2016 (no header), 2017 (image_id,melanoma,seborrheic_keratosis) or 2018 "
                            "(image,MEL,NV,BCC,AKIEC,BKL,DF,VASC).")
    table = table.set_index(id_column)
    weights = table.pop("score_weight") if "score_weight" in table.columns else pd.Series(1.0, index=table.index)
    table = table.drop(columns=[c for c in ("validation_weight",) if c in table.columns])
    weights[weights.index.isin(ZERO_WEIGHT_IMAGES)] = 0.0
    if not weights.isin([0.0, 1.0]).all():
        raise DataError(f"'{path}' has score weights other than 0 and 1, which this scorer does not support.")
    table = table[weights.to_numpy() > 0]
    categories = {"isic2016": ["malignant"], "isic2017": ["melanoma", "seborrheic_keratosis"],
                  "isic2018": list(ISIC2018_CATEGORIES)}[layout]
    table = table[categories].apply(pd.to_numeric, errors="coerce")
    bad = ~table.isin([0.0, 1.0]).all(axis=1)
    if bad.any():
        raise DataError(f"'{path}' row {table.index[bad][0]} holds a label outside {{0.0, 1.0}} "
                        "(or benign/malignant for ISIC 2016).")
    return Truth(layout, id_column, table, one_hot=layout == "isic2018")


def read_predictions(path: Path, truth: Truth) -> pd.DataFrame:
    """Read a submission, aligned to the truth's images; categories it lacks are simply not scored."""
    header = _first_line(path)
    table = _headerless(path) if header.startswith("ISIC_") else pd.read_csv(path, dtype={"image": str,
                                                                                         "image_id": str})
    id_column = next((c for c in ("image", "image_id") if c in table.columns), None)
    if id_column is None:
        raise DataError(f"'{path}' has no 'image' or 'image_id' column; header is {header!r}.")
    table[id_column] = table[id_column].str.replace(r"\.jpg$", "", case=False, regex=True)
    if table[id_column].duplicated().any():
        raise DataError(f"'{path}' lists {table[id_column][table[id_column].duplicated()].iloc[0]} more than once.")
    table = table.set_index(id_column)
    scored = [c for c in truth.table.columns if c in table.columns]
    if not scored:
        raise DataError(f"'{path}' has none of the categories {list(truth.table.columns)}.")
    if truth.one_hot and len(scored) != len(truth.table.columns):
        raise DataError(f"'{path}' lacks categories {sorted(set(truth.table.columns) - set(scored))}; "
                        "a one-hot task needs all of them.")
    missing = truth.table.index.difference(table.index)
    if len(missing):
        raise DataError(f"'{path}' has no prediction for {len(missing)} image(s), e.g. {missing[0]}.")
    values = table.loc[truth.table.index, scored].apply(pd.to_numeric, errors="coerce")
    if values.isna().any().any() or ((values < 0) | (values > 1)).any().any():
        raise DataError(f"'{path}' holds values that are not probabilities in [0, 1].")
    return values


def score(truth_path: str | Path, prediction_path: str | Path) -> dict:
    """Per-category and macro-averaged metrics (plus balanced accuracy for one-hot tasks)."""
    truth = read_truth(Path(truth_path))
    predictions = read_predictions(Path(prediction_path), truth)
    per_category = {}
    for category in predictions.columns:
        metrics = binary_metrics()
        metrics.update(torch.tensor(predictions[category].to_numpy(), dtype=torch.float64),
                       torch.tensor(truth.table[category].to_numpy(), dtype=torch.long))
        per_category[category] = scalars(metrics.compute())
    names = next(iter(per_category.values())).keys()
    result = {
        "layout": truth.layout,
        "images": len(truth.table),
        "per_category": per_category,
        "macro": {name: float(np.mean([c[name] for c in per_category.values()])) for name in names},
    }
    if truth.one_hot:
        recall = MulticlassRecall(num_classes=len(predictions.columns), average="macro")
        recall.update(torch.tensor(predictions.to_numpy()).argmax(1),
                      torch.tensor(truth.table[predictions.columns].to_numpy()).argmax(1))
        result["balanced_accuracy"] = float(recall.compute())
    return result


def score_segmentation(truth_dir: str | Path, prediction_dir: str | Path) -> dict:
    """ISIC 2018 task 1: mean per-image thresholded Jaccard (the challenge metric), Jaccard, Dice, accuracy,
    sensitivity and specificity of the masks in ``prediction_dir`` against those of ``truth_dir``. Task 2
    (``ISIC_xxxxxxx_attribute_<name>.png`` truth): the Jaccard per attribute and the challenge's overall one,
    from pixel counts normalised per image (as ``isic-challenge-scoring``'s task 2 scorer)."""
    from datamodules.listing import list_images  # the shared folder lister and mask reader (not at import:
    from datamodules.masks import read_mask  # the CSV scoring path stays light)

    truth_dir, prediction_dir = Path(truth_dir), Path(prediction_dir)
    for folder, what in ((truth_dir, "ground-truth"), (prediction_dir, "prediction")):
        if not folder.is_dir():
            raise DataError(f"{what} folder '{folder}' does not exist.")
    truths = list_images(truth_dir, keep=lambda p: p.suffix.lower() == ".png" and re.match(r"ISIC_\d{7}", p.stem))
    if not truths:
        raise DataError(f"'{truth_dir}' holds no ISIC_xxxxxxx*.png ground-truth masks.")
    predictions = list_images(prediction_dir)
    counts, attributes = [], []
    for truth_path in truths:
        number = re.search(r"ISIC_(\d{7})", truth_path.stem).group(1)
        attribute = re.search(r"attribute_([a-z_]+)", truth_path.stem)
        attributes.append(attribute.group(1) if attribute else None)
        matches = [p for p in predictions if number in p.stem and (not attribute or attribute.group(1) in p.stem)]
        if len(matches) != 1:
            raise DataError(f"'{prediction_dir}' has {'no' if not matches else 'more than one'} mask for "
                            f"{truth_path.name} (looked for a file name containing {number}"
                            f"{' and ' + attribute.group(1) if attribute else ''}).")
        truth, prediction = read_mask(truth_path), read_mask(matches[0])
        if truth.shape != prediction.shape:
            raise DataError(f"'{matches[0]}' is {prediction.shape[1]}×{prediction.shape[0]} pixels but its "
                            f"ground truth is {truth.shape[1]}×{truth.shape[0]}; write masks at the image's size.")
        counts.append([(truth & prediction).sum(), (~truth & prediction).sum(), (~truth & ~prediction).sum(),
                       (truth & ~prediction).sum()])
    counts = torch.tensor(counts, dtype=torch.float64)
    if any(a is not None for a in attributes):
        if None in attributes:
            raise DataError(f"'{truth_dir}' mixes task 1 and task 2 masks; give one task's ground truth.")
        names = sorted(set(attributes))
        per_attribute = [attribute_jaccard(counts[torch.tensor([a == name for a in attributes])][:, None])[1]
                         for name in names]
        return {"layout": "isic2018_task2", "images": len(truths) // len(names),
                "attribute_jaccard": float(attribute_jaccard(counts[:, None])[1]),
                "per_attribute": {name: float(v) for name, v in zip(names, per_attribute, strict=True)}}
    per_image = scores_from_counts(*counts.unbind(-1))
    return {"layout": "isic2018_task1", "images": len(truths),
            "macro": {name: float(per_image[name].mean()) for name in SCORES}}


FULL_SIZE = "full"  # prefix of the full-size (official) mask scores in a grid cell's result


def full_size_metric_names(class_names: tuple[str, ...] | list[str]) -> list[str]:
    """The names :func:`full_size_metrics` gives: task 1 (one mask) the six per-image scores, task 2 (several
    attribute masks) ``attribute_jaccard`` and ``jaccard_<attribute>``."""
    if len(class_names) == 1:
        return [f"{FULL_SIZE}/{name}" for name in SCORES]
    return [f"{FULL_SIZE}/attribute_jaccard", *(f"{FULL_SIZE}/jaccard_{name}" for name in sorted(class_names))]


def full_size_metrics(scored: dict) -> dict[str, float]:
    """Flat ``full/<metric>`` scalars from a :func:`score_segmentation` result (task 1 or 2)."""
    if scored["layout"] == "isic2018_task2":
        return {f"{FULL_SIZE}/attribute_jaccard": scored["attribute_jaccard"],
                **{f"{FULL_SIZE}/jaccard_{k}": v for k, v in scored["per_attribute"].items()}}
    return {f"{FULL_SIZE}/{k}": v for k, v in scored["macro"].items()}
