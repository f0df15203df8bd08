"""``dermlab/challenge/scoring.py``: ``dermlab score`` agrees with isic-challenge-scoring (ISIC 2016-2020, task 1
masks) and scores ISIC 2024 by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from isic_challenge_scoring import metrics as isic_metrics
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.types import ScoreError
from PIL import Image

from dermlab.challenge.scoring import ISIC2018_CATEGORIES, score, score_segmentation
from dermlab.challenge.truth import ISIC2019_CATEGORIES
from dermlab.errors import DataError
from dermlab.metrics.segmentation import SegmentationScores
from tests.helpers.isic2019_2020 import TRUTH_2019, TRUTH_2020, needs_2019, needs_2020
from tests.helpers.scoring import random_ids

NAMES = {"auc": "auc", "sensitivity": "sensitivity", "specificity": "specificity", "accuracy": "accuracy",
         "average_precision": "ap"}


def reference(truth: pd.DataFrame, predictions: pd.DataFrame, tmp_path) -> ClassificationScore:
    """The official scorer on files in its own layout (``image`` + category columns)."""
    truth.to_csv(tmp_path / "ref_truth.csv", index=False)
    predictions.to_csv(tmp_path / "ref_pred.csv", index=False)
    return ClassificationScore.from_file(tmp_path / "ref_truth.csv", tmp_path / "ref_pred.csv",
                                         ClassificationMetric.AUC)


def assert_agrees(ours: dict, theirs: ClassificationScore) -> None:
    for category, values in ours["per_category"].items():
        for name, their_name in NAMES.items():
            assert values[name] == pytest.approx(theirs.per_category.loc[category, their_name], abs=1e-6), \
                (category, name)


@pytest.mark.parametrize("prediction_header", [False, True])
def test_isic2016(tmp_path, prediction_header):
    rng = np.random.default_rng(0)
    ids = random_ids(120)
    labels = rng.random(120) < 0.25
    probabilities = np.clip(rng.random(120) * 0.7 + 0.3 * labels, 0, 1)
    # training ground truth: headerless benign/malignant, CRLF
    (tmp_path / "gt.csv").write_bytes("".join(
        f"{i},{'malignant' if y else 'benign'}\r\n" for i, y in zip(ids, labels, strict=True)).encode())
    lines = [f"{i},{p:.6f}" for i, p in zip(ids, probabilities, strict=True)]
    (tmp_path / "pred.csv").write_text("\n".join((["image,malignant"] if prediction_header else []) + lines) + "\n")
    ours = score(tmp_path / "gt.csv", tmp_path / "pred.csv")
    theirs = reference(pd.DataFrame({"image": ids, "malignant": labels.astype(float)}),
                       pd.DataFrame({"image": ids, "malignant": np.round(probabilities, 6)}), tmp_path)
    assert ours["layout"] == "isic2016"
    assert_agrees(ours, theirs)


def test_isic2016_test_truth_with_numbers(tmp_path):
    ids = random_ids(40)
    labels = np.arange(40) % 4 == 0
    (tmp_path / "gt.csv").write_text("".join(f"{i},{float(y)}\n" for i, y in zip(ids, labels, strict=True)))
    (tmp_path / "pred.csv").write_text("".join(f"{i},{0.9 if y else 0.1}\n" for i, y in zip(ids, labels,
                                                                                          strict=True)))
    assert score(tmp_path / "gt.csv", tmp_path / "pred.csv")["macro"]["auc"] == 1.0


def test_isic2017(tmp_path):
    rng = np.random.default_rng(1)
    ids = random_ids(200)
    dx = rng.choice(3, size=200, p=[0.6, 0.25, 0.15])  # nevus, melanoma, seborrheic keratosis
    truth = pd.DataFrame({"image_id": ids, "melanoma": (dx == 1).astype(float),
                          "seborrheic_keratosis": (dx == 2).astype(float)})
    predictions = pd.DataFrame({"image_id": ids, "melanoma": rng.random(200).round(6),
                                "seborrheic_keratosis": rng.random(200).round(6)})
    truth.to_csv(tmp_path / "gt.csv", index=False, lineterminator="\r\n")
    predictions.to_csv(tmp_path / "pred.csv", index=False)
    ours = score(tmp_path / "gt.csv", tmp_path / "pred.csv")
    theirs = reference(truth.rename(columns={"image_id": "image"}),
                       predictions.rename(columns={"image_id": "image"}), tmp_path)
    assert ours["layout"] == "isic2017" and ours["images"] == 200
    assert_agrees(ours, theirs)
    assert ours["macro"]["auc"] == pytest.approx(theirs.macro_average["auc"], abs=1e-6)


def test_isic2018_with_the_zero_weight_image(tmp_path):
    rng = np.random.default_rng(2)
    ids = random_ids(300, start=34900)
    assert "ISIC_0035068" in ids  # the official scorer gives this test image weight 0
    classes = rng.choice(7, size=300, p=[0.11, 0.6, 0.06, 0.04, 0.11, 0.04, 0.04])
    truth = pd.DataFrame(np.eye(7)[classes], columns=list(ISIC2018_CATEGORIES))
    truth.insert(0, "image", ids)
    raw = rng.random((300, 7))
    predictions = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=list(ISIC2018_CATEGORIES))
    predictions.insert(0, "image", ids)
    truth.to_csv(tmp_path / "gt.csv", index=False)
    predictions.to_csv(tmp_path / "pred.csv", index=False)
    ours = score(tmp_path / "gt.csv", tmp_path / "pred.csv")
    theirs = reference(truth, predictions, tmp_path)
    assert ours["layout"] == "isic2018" and ours["images"] == 299
    assert_agrees(ours, theirs)
    assert ours["balanced_accuracy"] == pytest.approx(theirs.aggregate["balanced_accuracy"], abs=1e-6)


NAMES = {"auc": "auc", "sensitivity": "sensitivity", "specificity": "specificity", "accuracy": "accuracy",
         "average_precision": "ap"}


def official(truth, prediction) -> ClassificationScore:
    return ClassificationScore.from_file(truth, prediction, ClassificationMetric.AUC)


@pytest.fixture
def no_official_rocs(monkeypatch):
    """The official scorer also simplifies each ROC curve for display (Ramer-Douglas-Peucker in Python, seconds on
    the 25,331 / 33,126 real images); nothing here compares curves, so the real-data tests skip that step."""
    monkeypatch.setattr(isic_metrics, "roc", lambda *args: None)


def assert_same_scores(ours: dict, theirs: ClassificationScore) -> None:
    """Every metric both scorers report, per category and macro-averaged, to 1e-6 (torchmetrics counts in float32;
    NaN where both leave a metric undefined); the balanced accuracy to 1e-9."""
    for category, values in ours["per_category"].items():
        for name, their_name in NAMES.items():
            assert values[name] == pytest.approx(theirs.per_category.loc[category, their_name], abs=1e-6,
                                                 nan_ok=True), (category, name)
    for name, their_name in NAMES.items():
        assert ours["macro"][name] == pytest.approx(theirs.macro_average[their_name], abs=1e-6), name
    if "balanced_accuracy" in ours:
        assert ours["balanced_accuracy"] == pytest.approx(theirs.aggregate["balanced_accuracy"], abs=1e-9)


# --- dermlab score against isic-challenge-scoring -----------------------------------------------------------------

def made_up_2019(truth: pd.DataFrame, seed: int) -> pd.DataFrame:
    """A better-than-chance submission for a one-hot ``image,MEL,...,UNK`` truth (probabilities over all nine)."""
    rng = np.random.default_rng(seed)
    raw = rng.random((len(truth), 9)) + 0.6 * truth[list(ISIC2019_CATEGORIES)].to_numpy(float)
    submission = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=list(ISIC2019_CATEGORIES))
    submission.insert(0, "image", truth.image.to_numpy())
    return submission


def test_isic2019_scores_equal_the_official_scorer_with_unk_present(tmp_path):
    """All nine categories occur (as in the challenge's test set): every metric and the balanced accuracy agree."""
    rng = np.random.default_rng(3)
    classes = np.concatenate([np.arange(9), rng.choice(9, size=291, p=[0.18, 0.45, 0.12, 0.04, 0.1, 0.02, 0.02,
                                                                       0.03, 0.04])])
    truth = pd.DataFrame(np.eye(9)[classes], columns=list(ISIC2019_CATEGORIES))
    truth.insert(0, "image", [f"ISIC_{i:07d}" + ("_downsampled" if i % 10 == 1 else "") for i in range(300)])
    truth.to_csv(tmp_path / "truth.csv", index=False, lineterminator="\r\n")
    made_up_2019(truth, 4).to_csv(tmp_path / "pred.csv", index=False)
    ours = score(tmp_path / "truth.csv", tmp_path / "pred.csv")
    assert ours["layout"] == "isic2019" and ours["images"] == 300
    assert_same_scores(ours, official(tmp_path / "truth.csv", tmp_path / "pred.csv"))


@pytest.mark.real_data
@needs_2019
def test_isic2019_real_truth_scores_equal_the_official_scorer_where_it_scores_it(tmp_path, no_official_rocs):
    """The real training truth marks no image UNK. isic-challenge-scoring 5.6.0 stops on it (a ValueError in its
    ``auc_sens_80``, not a refusal); without the UNK column it scores the same file, and every metric of the eight
    classes, their macro AUC, AP and sensitivity and the balanced accuracy equal ours on the nine-column files, where
    UNK's AUC, AP and sensitivity are undefined (NaN, left out of the macro averages)."""
    truth = pd.read_csv(TRUTH_2019)
    submission = made_up_2019(truth, 5)
    submission["UNK"] = 0.0  # as ISIC2019DataModule.submission writes it
    submission.to_csv(tmp_path / "pred.csv", index=False)
    with pytest.raises(ValueError):
        official(TRUTH_2019, tmp_path / "pred.csv")
    ours = score(TRUTH_2019, tmp_path / "pred.csv")
    assert ours["images"] == 25331 and np.isnan(ours["per_category"]["UNK"]["auc"])
    assert ours["undefined"] == {"UNK": ["auc", "average_precision", "pauc_tpr80", "sensitivity"]}
    truth.drop(columns="UNK").to_csv(tmp_path / "truth8.csv", index=False)
    submission.drop(columns="UNK").to_csv(tmp_path / "pred8.csv", index=False)
    theirs = official(tmp_path / "truth8.csv", tmp_path / "pred8.csv")
    for category in ISIC2019_CATEGORIES[:-1]:
        for name, their_name in NAMES.items():
            assert ours["per_category"][category][name] == pytest.approx(
                theirs.per_category.loc[category, their_name], abs=1e-6), (category, name)
    for name in ("auc", "average_precision", "sensitivity"):
        assert ours["macro"][name] == pytest.approx(theirs.macro_average[NAMES[name]], abs=1e-6), name
    assert ours["balanced_accuracy"] == pytest.approx(theirs.aggregate["balanced_accuracy"], abs=1e-9)
    assert 0.3 < ours["balanced_accuracy"] < 0.9  # the made-up submission is better than chance (1/8), not perfect


@pytest.mark.real_data
@needs_2020
def test_isic2020_real_truth_auc_equals_the_official_scorer(tmp_path, no_official_rocs):
    """The official scorer names the id column ``image``: it scores the same files with that column renamed."""
    truth = pd.read_csv(TRUTH_2020, dtype={"image_name": str})
    rng = np.random.default_rng(6)
    target = np.clip(rng.random(len(truth)) * 0.8 + 0.25 * truth.target, 0, 1).round(6)
    pd.DataFrame({"image_name": truth.image_name, "target": target}).to_csv(tmp_path / "pred.csv", index=False)
    ours = score(TRUTH_2020, tmp_path / "pred.csv")
    pd.DataFrame({"image": truth.image_name, "target": truth.target.astype(float)}).to_csv(tmp_path / "t.csv",
                                                                                         index=False)
    pd.DataFrame({"image": truth.image_name, "target": target}).to_csv(tmp_path / "p.csv", index=False)
    theirs = official(tmp_path / "t.csv", tmp_path / "p.csv")
    assert ours["layout"] == "isic2020" and ours["images"] == 33126 and list(ours["per_category"]) == ["target"]
    assert 0.6 < ours["macro"]["auc"] < 0.9  # the made-up scores separate the classes, not perfectly
    assert_same_scores(ours, theirs)


IDS_2020 = [f"ISIC_{7000000 + 37 * i:07d}" for i in range(8)]
SUBMISSIONS = {  # name → (ISIC 2019 or 2020 layout, the submission's text, what our refusal names)
    "2019 without UNK": ("2019", "image," + ",".join(ISIC2019_CATEGORIES[:-1]) + "\n" + "".join(
        f"ISIC_{i:07d}" + ",0.125" * 8 + "\n" for i in range(9)), "lacks column(s) UNK"),
    "2019 as written": ("2019", "image," + ",".join(ISIC2019_CATEGORIES) + "\n" + "".join(
        f"ISIC_{i:07d}.JPG" + "".join(f",{0.1 + 0.01 * ((i + k) % 9):.2f}" for k in range(9)) + "\n"
        for i in range(9)), None),
    "2020 integers": ("2020", "image_name,target\n" + "".join(f"{i},{k % 2}\n" for k, i in enumerate(IDS_2020)),
                      "column 'target' holds integers only"),
    "2020 above 1": ("2020", "image_name,target\n" + "".join(f"{i},{0.3 + k / 4:.2f}\n"
                                                            for k, i in enumerate(IDS_2020)), "values outside [0, 1]"),
    "2020 as written": ("2020", "image_name,target\n" + "".join(f"{i},{k / 8:.3f}\n" for k, i in enumerate(IDS_2020)),
                        None),
}


@pytest.mark.parametrize("case", list(SUBMISSIONS))
def test_submissions_are_refused_and_accepted_as_the_official_scorer_does(case, tmp_path):
    year, text, named = SUBMISSIONS[case]
    if year == "2019":
        truth = pd.DataFrame(np.eye(9), columns=list(ISIC2019_CATEGORIES))  # every category once, UNK too
        truth.insert(0, "image", [f"ISIC_{i:07d}" for i in range(9)])
        truth.to_csv(tmp_path / "truth.csv", index=False)
        (tmp_path / "pred.csv").write_text(text)
        official_truth, official_pred = tmp_path / "truth.csv", tmp_path / "pred.csv"
    else:
        pd.DataFrame({"image_name": IDS_2020, "patient_id": "IP_0000001", "target": [k % 2 for k in range(8)]}).to_csv(
            tmp_path / "truth.csv", index=False)
        (tmp_path / "pred.csv").write_text(text)
        pd.DataFrame({"image": IDS_2020, "target": [float(k % 2) for k in range(8)]}).to_csv(tmp_path / "t.csv",
                                                                                           index=False)
        (tmp_path / "p.csv").write_text(text.replace("image_name,", "image,", 1))
        official_truth, official_pred = tmp_path / "t.csv", tmp_path / "p.csv"
    try:
        theirs = official(official_truth, official_pred)
    except ScoreError:
        theirs = None
    assert (theirs is None) == (named is not None)
    if named:
        with pytest.raises(DataError, match="pred.csv") as refused:
            score(tmp_path / "truth.csv", tmp_path / "pred.csv")
        assert named in str(refused.value)
    else:
        assert_same_scores(score(tmp_path / "truth.csv", tmp_path / "pred.csv"), theirs)


# --- scoring --------------------------------------------------------------------------------------------------
TRUTH = {"ISIC_0000001": 1, "ISIC_0000002": 1, "ISIC_0000003": 0, "ISIC_0000004": 0, "ISIC_0000005": 0}
SCORES = {"ISIC_0000001": 0.9, "ISIC_0000002": 0.4, "ISIC_0000003": 0.6, "ISIC_0000004": 0.3, "ISIC_0000005": 0.1}


def write(path, header, rows) -> str:
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def solution(tmp_path, metadata: bool = False) -> str:
    """The truth as Kaggle's two-column solution, or as train-metadata.csv (more columns, other order)."""
    if metadata:
        return write(tmp_path / "train-metadata.csv", "isic_id,patient_id,target,age_approx,lesion_id",
                     [f"{i},IP_{n % 2},{t},45.0," for n, (i, t) in enumerate(TRUTH.items())])
    return write(tmp_path / "solution.csv", "isic_id,target", [f"{i},{t}" for i, t in TRUTH.items()])


@pytest.mark.parametrize("metadata", [False, True], ids=["solution", "train-metadata"])
def test_2024_scoring_by_hand(tmp_path, metadata):
    # ROC of 2 malignant (0.9, 0.4) and 3 benign (0.6, 0.3, 0.1): TPR 0.5 up to FPR 1/3, then 1. The band TPR ≥ 0.8
    # holds the area 0.2 × (1 − 1/3) = 0.1333; the full AUC is 5 of 6 pairs ranked right.
    pred = write(tmp_path / "pred.csv", "isic_id,target", [f"{i},{s}" for i, s in SCORES.items()])
    result = score(solution(tmp_path, metadata), pred)
    target = result["per_category"]["target"]
    assert result["layout"] == "isic2024" and result["images"] == 5 and result["primary"] == "pauc_tpr80"
    assert target["pauc_tpr80"] == pytest.approx(0.2 * 2 / 3, abs=1e-7)
    assert target["auc"] == pytest.approx(5 / 6)
    # at p > 0.5: ISIC_0000001 found, ISIC_0000003 a false alarm
    assert target["sensitivity"] == pytest.approx(0.5) and target["specificity"] == pytest.approx(2 / 3)
    assert target["accuracy"] == pytest.approx(0.6)


def test_2024_integer_predictions_are_numbers_as_kaggle_takes_them(tmp_path):
    # hard 0/1 guesses: ROC (0, 0) → (1/3, 0.5) → (1, 1); TPR reaches 0.8 at FPR 11/15, leaving a triangle of
    # base 4/15 and height 0.2 above the band's floor: 0.4 / 15.
    guesses = {"ISIC_0000001": 1, "ISIC_0000002": 0, "ISIC_0000003": 1, "ISIC_0000004": 0, "ISIC_0000005": 0}
    pred = write(tmp_path / "pred.csv", "isic_id,target", [f"{i},{g}" for i, g in guesses.items()])
    assert score(solution(tmp_path), pred)["per_category"]["target"]["pauc_tpr80"] == pytest.approx(0.4 / 15,
                                                                                                   abs=1e-7)


@pytest.mark.parametrize("rows, message", [
    (["ISIC_0000001,0.9", "ISIC_0000002,0.4", "ISIC_0000003,0.6", "ISIC_0000004,0.3"],
     "no row for 1 image.*ISIC_0000005"),
    ([*(f"{i},{s}" for i, s in SCORES.items()), "ISIC_0000009,0.5"],
     "1 image.* not in the truth: row 7 \\(ISIC_0000009"),
    ([*(f"{i},{s}" for i, s in SCORES.items()), "ISIC_0000002,0.5"], "ISIC_0000002 \\(rows 3, 7\\)"),
    (["ISIC_0000001,0.9", "ISIC_0000002,high", "ISIC_0000003,0.6", "ISIC_0000004,0.3", "ISIC_0000005,0.1"],
     "'high' on row 3 \\(ISIC_0000002\\), which is not a number"),
    (["ISIC_0000001,0.9", "ISIC_0000002,0.4", "ISIC_0000003,1.5", "ISIC_0000004,0.3", "ISIC_0000005,0.1"],
     "outside \\[0, 1\\] in row 4 \\(ISIC_0000003\\)"),
], ids=["missing", "extra", "duplicate", "word", "above-one"])
def test_2024_bad_submissions_are_refused_naming_the_row(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        score(solution(tmp_path), write(tmp_path / "pred.csv", "isic_id,target", rows))


def test_2024_submission_needs_its_columns(tmp_path):
    pred = write(tmp_path / "pred.csv", "image,target", [f"{i},{s}" for i, s in SCORES.items()])
    with pytest.raises(DataError, match="no 'isic_id' column.*expected header: isic_id,target"):
        score(solution(tmp_path), pred)


def write_mask_pair(truth_dir, prediction_dir, number: int, truth: np.ndarray, prediction: np.ndarray) -> None:
    Image.fromarray((truth * 255).astype(np.uint8)).save(truth_dir / f"ISIC_{number:07d}_segmentation.png")
    Image.fromarray((prediction * 255).astype(np.uint8)).save(prediction_dir / f"ISIC_{number:07d}_segmentation.png")


def test_score_seg_agrees_with_the_official_scorer(tmp_path):
    from isic_challenge_scoring.segmentation import SegmentationScore

    truth_dir, prediction_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    prediction_dir.mkdir()
    rng = np.random.default_rng(0)
    metric = SegmentationScores()
    for number in range(12):
        truth = np.zeros((30, 40), bool)
        prediction = np.zeros((30, 40), bool)
        if number:  # image 0: no lesion and none predicted (the scorer's "freebie" cases)
            y, x, h, w = rng.integers(0, 15), rng.integers(0, 20), rng.integers(5, 15), rng.integers(5, 20)
            truth[y:y + h, x:x + w] = True
            dy, dx = rng.integers(-3, 4, 2)
            prediction[max(0, y + dy):y + dy + h, max(0, x + dx):x + dx + w] = number % 5 != 0
        write_mask_pair(truth_dir, prediction_dir, number, truth, prediction)
        metric.update(torch.tensor(prediction, dtype=torch.float32)[None, None],
                      torch.tensor(truth, dtype=torch.float32)[None, None])
    ours = score_segmentation(truth_dir, prediction_dir)["macro"]
    official = SegmentationScore.from_dir(truth_dir, prediction_dir).macro_average
    module = metric.compute()
    for name in ("threshold_jaccard", "jaccard", "dice", "accuracy", "sensitivity", "specificity"):
        assert ours[name] == pytest.approx(official[name], abs=1e-12), name
        assert module[name].item() == pytest.approx(official[name], abs=1e-9), name
    assert 0 < ours["threshold_jaccard"] < ours["jaccard"] < 1


def test_score_seg_names_a_missing_or_misfit_prediction(tmp_path):
    truth_dir, prediction_dir = tmp_path / "truth", tmp_path / "pred"
    truth_dir.mkdir()
    prediction_dir.mkdir()
    write_mask_pair(truth_dir, prediction_dir, 1, np.ones((4, 4)), np.ones((4, 4)))
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(truth_dir / "ISIC_0000002_segmentation.png")
    with pytest.raises(DataError, match="no mask for ISIC_0000002_segmentation.png"):
        score_segmentation(truth_dir, prediction_dir)
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(prediction_dir / "ISIC_0000002_segmentation.png")
    with pytest.raises(DataError, match="ISIC_0000002_segmentation.png' is 4×5 pixels"):
        score_segmentation(truth_dir, prediction_dir)
