"""``dermlab score`` agrees with isic-challenge-scoring to 1e-6 on random predictions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore

from dermlab.challenge.scoring import ISIC2018_CATEGORIES, score
from dermlab.cli import main

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


def random_ids(n: int, start: int = 0) -> list[str]:
    return [f"ISIC_{start + i:07d}" for i in range(n)]


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


def test_cli_prints_json_and_rejects_missing_rows(tmp_path, capsys):
    ids = random_ids(10)
    (tmp_path / "gt.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                     "".join(f"{i},{float(k % 2)},0.0\n" for k, i in enumerate(ids)))
    (tmp_path / "pred.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                       "".join(f"{i},0.3,0.1\n" for i in ids[:-1]))
    with pytest.raises(SystemExit):
        main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv")])
    assert "no row for 1 image(s) of the truth: ISIC_0000009" in capsys.readouterr().err
    # the official scorer refuses a submission without every category column (issue #18, case 7)
    (tmp_path / "pred.csv").write_text("image_id,melanoma\n" + "".join(f"{i},0.3\n" for i in ids))
    with pytest.raises(SystemExit):
        main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv")])
    assert "lacks column(s) seborrheic_keratosis" in capsys.readouterr().err
    (tmp_path / "pred.csv").write_text("image_id,melanoma,seborrheic_keratosis\n" +
                                       "".join(f"{i},0.3,0.5\n" for i in ids))
    main(["score", "--truth", str(tmp_path / "gt.csv"), "--pred", str(tmp_path / "pred.csv"),
          "--categories", "melanoma"])
    result = json.loads(capsys.readouterr().out)
    assert list(result["per_category"]) == ["melanoma"] and result["macro"]["auc"] == 0.5
