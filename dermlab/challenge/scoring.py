"""``dermlab score``: score an official submission CSV against an official ground-truth CSV.

Accepted truth layouts (detected from the ground-truth file, :mod:`dermlab.challenge.truth`) and their submissions
(checked by the official scorer's rules, :mod:`dermlab.challenge.submissions`):

* ISIC 2016 Part 3: truth is headerless ``ISIC_xxxxxxx,benign|malignant`` (training) or
  ``ISIC_xxxxxxx,0.0|1.0`` (test); predictions headerless ``ISIC_xxxxxxx,0.73`` or with the
  header ``image,malignant``. One category, ``malignant``.
* ISIC 2017 Part 3: ``image_id,melanoma,seborrheic_keratosis`` for both files; two binary
  categories (a nevus is 0 in both).
* ISIC 2018 Task 3: truth ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC`` one-hot, or as published with HAM10000
  (``lesion_id,image_id,dx,...,dataset``); submission ``image,MEL,NV,BCC,AKIEC,BKL,DF,VASC``; the seven
  categories plus balanced multi-class accuracy (argmax).
* ISIC 2019: ``image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK`` one-hot for both files; the nine categories plus
  balanced multi-class accuracy (argmax over all nine columns).
* ISIC 2020: truth ``image_name,patient_id,...,target``, submission ``image_name,target``; one category,
  ``target`` (melanoma), whose AUC is the challenge metric.
* ISIC 2024 (SLICE-3D, Kaggle): truth ``isic_id,target`` (the competition's solution) or ``train-metadata.csv``
  itself; submission ``isic_id,target``. One category, ``target``; the challenge's primary metric is its
  ``pauc_tpr80`` (partial AUC above 80 % TPR, :mod:`dermlab.challenge.partial_auc`), named in the result's ``primary``.

A category that the scored images hold in one class only has undefined metrics, NaN in the result, named under
``undefined`` and left out of the macro averages (:func:`undefined_metrics`). Without negatives the official
scorer gives the same values; without positives (UNK in any truth cut from the ISIC 2019 training data, which marks
no image UNK) ``isic-challenge-scoring`` 5.6.0 stops with a ValueError and gives none: here AUC, average precision,
partial AUC and sensitivity are NaN, every other category and the balanced accuracy are scored as usual.

``dermlab score --seg TRUTH_DIR PRED_DIR`` scores ISIC 2018 task 1 or task 2 masks (:func:`score_segmentation`):
every ``ISIC_xxxxxxx_segmentation.png`` (``..._attribute_<name>.png``) of the truth folder against the prediction
file carrying the same image number (and attribute), both read by :func:`dermlab.files.masks.read_mask` (lesion
where > 128, as the official scorer binarises; a mask that is not single-channel, or whose non-zero values are all
≤ 128 such as a {0, 1} mask, is refused). Hidden files (``._*``, ``.DS_Store``) and ``__MACOSX`` are ignored.

:func:`full_size_metrics` names those scores ``full/<metric>`` for a grid's table (the challenge's own scoring of
full-size masks, beside the ``test/`` metrics computed at the network's input size).

Metrics come from :mod:`dermlab.metrics.definitions`, the definitions a run logs. Rows with ``score_weight`` 0 are left
out, as the official scorer does; like it, ISIC_0035068 (2018 test) gets weight 0.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dermlab.challenge.bootstrap import bootstrap_intervals, with_intervals
from dermlab.challenge.submissions import read_submission
from dermlab.challenge.truth import ISIC2018_CATEGORIES, ZERO_WEIGHT_IMAGES, Truth, read_truth  # noqa: F401 (re-exported)
from dermlab.errors import DataError
from dermlab.metrics import definitions
from dermlab.metrics.definitions import binary_metric_values
from dermlab.metrics.segmentation import SCORES, attribute_jaccard, scores_from_counts

PRIMARY = {"isic2024": "pauc_tpr80"}  # the challenge's ranking metric, where it is not the AUC


def read_scored(truth_path: str | Path, prediction_path: str | Path,
                categories: list[str] | None = None) -> tuple[Truth, pd.DataFrame, pd.DataFrame, list[str]]:
    """The truth, the scored images' labels and predictions (same rows, same order) and the categories to score,
    read and checked exactly as :func:`score` reads them (:func:`dermlab.commands.compare` shares it).

    Raises:
        DataError: a malformed truth or submission (naming the rows or columns), or an unknown category.
    """
    truth = read_truth(Path(truth_path))
    predictions = read_submission(prediction_path, truth.submission, truth.labels.index)
    labels = truth.scored
    predictions = predictions.loc[labels.index]
    names = list(truth.submission.categories) if categories is None else list(categories)
    unknown = [c for c in names if c not in truth.submission.categories]
    if unknown or not names:
        raise DataError(f"cannot score categories {unknown or names}; '{truth_path}' has "
                        f"{list(truth.submission.categories)}.")
    return truth, labels, predictions, names


def score(truth_path: str | Path, prediction_path: str | Path, categories: list[str] | None = None,
          n_boot: int = 0, seed: int = 0, level: float = 0.95) -> dict:
    """Per-category and macro-averaged metrics (plus balanced accuracy for one-hot tasks).

    The truth is read in any published layout (:func:`dermlab.challenge.truth.read_truth`), the submission checked by
    the official scorer's rules (:func:`dermlab.challenge.submissions.read_submission`); images of weight 0 must be
    submitted but are not scored. ``categories`` scores only those columns (e.g. ``melanoma`` of an ISIC 2017 run
    trained on that task alone); the submission must still hold every column.

    A metric that a category's scored images cannot define (an AUC without both classes, a sensitivity without a
    positive image) is NaN, listed in ``undefined`` ({category: [metric, ...]}) and left out of ``macro``.

    One-hot truths (ISIC 2018, 2019) also get ``balanced_accuracy`` and ``multiclass``: the multi-class metrics a
    run logs under the same names, by the same definitions (:func:`multiclass_scores`). ``macro`` is the official
    scorer's mean over categories of one-vs-rest metrics at p > 0.5, another quantity.

    With ``n_boot`` > 0 every metric ``m`` gets ``m_ci95: [low, high]`` beside it (the key follows ``level``), the
    stratified bootstrap percentile interval of ``n_boot`` resamples drawn with ``seed``
    (:mod:`dermlab.challenge.bootstrap`), and the result a ``bootstrap`` entry saying so.

    Raises:
        DataError: a malformed truth or submission (naming the rows or columns), or an unknown category.
    """
    truth, labels, predictions, names = read_scored(truth_path, prediction_path, categories)
    per_category, undefined = {}, {}
    for category in names:
        truth_of_category = labels[category].to_numpy()
        values = binary_metric_values(truth_of_category, predictions[category].to_numpy(dtype=float))
        per_category[category] = {name: float(value[0]) for name, value in values.items()}
        missing = undefined_metrics(truth_of_category)
        if missing:
            undefined[category] = missing
    metric_names = next(iter(per_category.values())).keys()
    result = {
        "layout": truth.layout,
        "images": len(labels),
        "per_category": per_category,
        # the mean over the categories where a metric is defined, as the official scorer's pandas mean (skipna)
        "macro": {name: float(pd.Series([c[name] for c in per_category.values()], dtype=float).mean())
                  for name in metric_names},
    }
    if undefined:  # e.g. UNK of an ISIC 2019 truth cut from the training data: no image of that class
        result["undefined"] = undefined
    if truth.one_hot:
        result["balanced_accuracy"] = balanced_accuracy(labels.to_numpy(), predictions.to_numpy())
        result["multiclass"] = multiclass_scores(labels.to_numpy(), predictions.to_numpy())
    if truth.layout in PRIMARY:
        result["primary"] = PRIMARY[truth.layout]
    if n_boot:
        columns = list(truth.submission.categories)
        return _add_intervals(result, labels[columns], predictions[columns], names, truth.one_hot, n_boot, seed,
                              level)
    return result


def _add_intervals(result: dict, labels: pd.DataFrame, predictions: pd.DataFrame, names: list[str],
                   one_hot: bool, n_boot: int, seed: int, level: float) -> dict:
    intervals = bootstrap_intervals(labels, predictions, names, n_boot, seed, level, one_hot)
    result["per_category"] = {c: with_intervals(values, intervals["per_category"][c], level)
                              for c, values in result["per_category"].items()}
    result["macro"] = with_intervals(result["macro"], intervals["macro"], level)
    if one_hot:
        result = with_intervals(result, {"balanced_accuracy": intervals["balanced_accuracy"]}, level)
    result["bootstrap"] = {"resamples": n_boot, "seed": seed, "level": level,
                           "method": "percentile, images resampled within each true class"}
    return result


NO_POSITIVES = ("auc", "average_precision", "pauc_tpr80", "sensitivity")  # undefined without a positive image
NO_NEGATIVES = ("auc", "pauc_tpr80")  # undefined without a negative image (the official scorer's NaN AUC)


def undefined_metrics(truth: np.ndarray) -> list[str]:
    """The metrics :func:`dermlab.metrics.definitions.binary_metric_values` leaves NaN for one category whose scored
    images' ``truth`` (N,) 0/1 holds one class only; ``[]`` when both classes occur.

    * No negative image: ``isic-challenge-scoring`` scores this; as it does, AUC (and the partial AUC) are NaN,
      specificity is 1.0 (its ``binary_specificity``: "make this metric a freebie") and the average precision is
      scikit-learn's 1.0 (as computed).
    * No positive image (e.g. UNK in a truth cut from the ISIC 2019 training data): the official scorer 5.6.0 stops
      with a ValueError in its ``auc_sens_80`` and gives no number; here AUC, average precision, partial AUC and
      sensitivity are NaN.

    NaN values are left out of the macro averages, as the official scorer's (pandas) mean skips them.
    """
    positives = int(np.sum(truth))
    if 0 < positives < len(truth):
        return []
    return list(NO_POSITIVES if positives == 0 else NO_NEGATIVES)


def argmax_correct(truth: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) true class of each one-hot ``truth`` row and whether the argmax of ``probabilities`` is right
    (:func:`dermlab.metrics.definitions.decided_argmax`: a row whose highest probability is shared is wrong)."""
    true_class = truth.argmax(1)
    return true_class, definitions.decided_argmax(probabilities) == true_class


def balanced_accuracy(truth: np.ndarray, probabilities: np.ndarray) -> float:
    """ISIC 2018 balanced multi-class accuracy of ``truth`` (N, C) one-hot and ``probabilities`` (N, C):
    :func:`dermlab.metrics.definitions.balanced_accuracy` (mean recall of the argmax over the classes present; a row
    whose highest probability is shared by several classes is wrong for every class, as ``isic-challenge-scoring``)."""
    return float(definitions.balanced_accuracy(truth.argmax(1), probabilities)[0])


def multiclass_scores(truth: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """The multi-class metrics a run logs under the same names (:data:`dermlab.metrics.definitions.MULTICLASS`:
    balanced accuracy, accuracy and specificity of the argmax, macro AUC over the classes present, top-label ECE)
    of ``truth`` (N, C) one-hot and ``probabilities`` (N, C). The ``macro`` entry of :func:`score` is another
    quantity: the official scorer's mean over categories of one-vs-rest metrics at p > 0.5."""
    values = definitions.multiclass_metric_values(truth.argmax(1), probabilities)
    return {name: float(values[name][0]) for name in definitions.MULTICLASS}


def score_segmentation(truth_dir: str | Path, prediction_dir: str | Path) -> dict:
    """ISIC 2018 task 1: mean per-image thresholded Jaccard (the challenge metric), Jaccard, Dice, accuracy,
    sensitivity and specificity of the masks in ``prediction_dir`` against those of ``truth_dir``. Task 2
    (``ISIC_xxxxxxx_attribute_<name>.png`` truth): the Jaccard per attribute and the challenge's overall one,
    from pixel counts normalised per image (as ``isic-challenge-scoring``'s task 2 scorer)."""
    from dermlab.files.listing import list_images  # the shared folder lister and mask reader (not at import:
    from dermlab.files.masks import read_mask  # the CSV scoring path stays light)

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
