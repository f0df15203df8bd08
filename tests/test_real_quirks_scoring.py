"""Issue #18, cases 5-7: submissions and truth files as people have them, scored as the challenge does.

Case 5: the ISIC 2018 task 3 test truth as published with HAM10000 (``lesion_id,image_id,dx,...,dataset``).
Case 6: one submission validator with the official scorer's rules, checked against ``isic-challenge-scoring``
on hand-made CSVs (it must accept and refuse the same files) and run on every submission the suite writes.
Case 7: the ISIC 2017 submission always has both official columns.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.types import ScoreError
from PIL import Image

from callbacks.submission import SubmissionWriter
from datamodules import ISIC2017DataModule, ISIC2018Task3DataModule
from dermlab.challenge.scoring import ISIC2018_CATEGORIES, score
from dermlab.challenge.truth import read_truth
from dermlab.errors import DataError
from tests.conftest import SHARED_DATA

HAM_TEST_TRUTH = SHARED_DATA / "isic2018" / "ISIC2018_Task3_Test_GroundTruth.csv"
ISIC2017_TEST_TRUTH = SHARED_DATA / "isic2017" / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"
needs_ham_truth = pytest.mark.skipif(not HAM_TEST_TRUTH.is_file(), reason=f"real truth absent: {HAM_TEST_TRUTH}")
needs_2017_truth = pytest.mark.skipif(not ISIC2017_TEST_TRUTH.is_file(), reason=f"absent: {ISIC2017_TEST_TRUTH}")
CATEGORIES = list(ISIC2018_CATEGORIES)
NAMES = {"auc": "auc", "sensitivity": "sensitivity", "specificity": "specificity", "accuracy": "accuracy",
         "average_precision": "ap"}


def official(truth, prediction) -> ClassificationScore:
    return ClassificationScore.from_file(truth, prediction, ClassificationMetric.AUC)


def assert_same_scores(ours: dict, theirs: ClassificationScore) -> None:
    for category, values in ours["per_category"].items():
        for name, their_name in NAMES.items():
            assert values[name] == pytest.approx(theirs.per_category.loc[category, their_name], abs=1e-6), \
                (category, name)
    if "balanced_accuracy" in ours:
        assert ours["balanced_accuracy"] == pytest.approx(theirs.aggregate["balanced_accuracy"], abs=1e-9)


# --- case 6: the official scorer's rules, both sides ------------------------------------------------------------

IDS = [f"ISIC_{35060 + i:07d}" for i in range(10)]  # holds ISIC_0035068, which the official scorer weighs 0


def good_submission() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    raw = rng.random((len(IDS), 7))
    frame = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=CATEGORIES)
    frame.insert(0, "image", IDS)
    return frame


def text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def edited(change) -> str:
    frame = good_submission()
    change(frame)
    return text(frame)


def with_row(frame: pd.DataFrame, row: int, column: str, value) -> None:
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = value


# name → (the submission's text, what our refusal must name; None where both accept it)
CASES = {
    "as written": (text(good_submission()), None),
    "jpg suffixes": (edited(lambda f: f.__setitem__("image", f.image + ".JPG")), None),
    "CRLF": (text(good_submission()).replace("\n", "\r\n"), None),
    "columns in another order": (text(good_submission()[["image", *CATEGORIES[::-1]]]), None),
    "byte order mark": ("\ufeff" + text(good_submission()), None),
    "an extra image": (text(pd.concat([good_submission(), good_submission().iloc[[0]].assign(image="ISIC_0099999")])),
                       "row 12 (ISIC_0099999)"),
    "a missing image": (text(good_submission().iloc[1:]), "ISIC_0035060"),
    "the zero-weight image missing": (text(good_submission().drop(index=8)), "ISIC_0035068"),
    "Unnamed: 0 from to_csv(index=True)": (good_submission().to_csv(index=True), "'Unnamed: 0' is the row index"),
    "an unknown column": (edited(lambda f: f.__setitem__("SCC", 0.0)), "extra column(s) SCC"),
    "a missing column": (text(good_submission().drop(columns="VASC")), "lacks column(s) VASC"),
    "no image column": (text(good_submission().rename(columns={"image": "image_id"})), "no 'image' column"),
    "a repeated row": (text(pd.concat([good_submission(), good_submission().iloc[[3]]])),
                       "ISIC_0035063 (rows 5, 12)"),
    "a NaN": (edited(lambda f: f.__setitem__("MEL", f.MEL.where(f.index != 2))), "row 4 (ISIC_0035062)"),
    "an empty cell": (edited(lambda f: with_row(f, 5, "NV", "")), "row 7 (ISIC_0035065)"),
    "1.2": (edited(lambda f: with_row(f, 6, "BKL", 1.2)), "row 8 (ISIC_0035066)"),
    "-0.1": (edited(lambda f: with_row(f, 0, "DF", -0.1)), "row 2 (ISIC_0035060)"),
    "a word": (edited(lambda f: with_row(f, 1, "BCC", "high")), "column 'BCC' holds 'high' on row 3"),
    "integers only": (edited(lambda f: f.__setitem__("AKIEC", (f.AKIEC > 0.2).astype(int))),
                      "column 'AKIEC' holds integers only"),
    "one line break": ("image," + ",".join(CATEGORIES) + "\nISIC_0035060" + ",0.1" * 7, "fewer than two line breaks"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_score_accepts_and_refuses_what_the_official_scorer_does(case, tmp_path):
    truth = pd.DataFrame(np.eye(7)[np.arange(len(IDS)) % 7], columns=CATEGORIES)
    truth.insert(0, "image", IDS)
    truth.to_csv(tmp_path / "truth.csv", index=False)
    submission, named = CASES[case]
    (tmp_path / "pred.csv").write_bytes(submission.encode("utf-8"))
    try:
        theirs = official(tmp_path / "truth.csv", tmp_path / "pred.csv")
    except ScoreError:
        theirs = None
    assert (theirs is None) == (named is not None), f"the official scorer {'refuses' if theirs is None else 'accepts'}"
    if theirs is None:
        with pytest.raises(DataError, match="pred.csv") as refused:
            score(tmp_path / "truth.csv", tmp_path / "pred.csv")
        assert named in str(refused.value)
    else:
        ours = score(tmp_path / "truth.csv", tmp_path / "pred.csv")
        assert ours["images"] == 9  # ISIC_0035068 is not scored
        assert_same_scores(ours, theirs)


def writer_run(tmp_path, probabilities, listed):
    """SubmissionWriter on a stand-in trainer: predicted ``image_id`` / ``probabilities``, the split's table."""
    ids = [f"ISIC_{i:07d}" for i in range(len(probabilities))]
    datamodule = SimpleNamespace(predict_split="test", tables={"test": SimpleNamespace(ids=listed or ids)},
                                 submission=lambda i, p: pd.DataFrame({"image": i, "MEL": p[:, 0], "NV": p[:, 1]}))
    trainer = SimpleNamespace(datamodule=datamodule, default_root_dir=str(tmp_path), is_global_zero=True)
    batch = {"image_id": ids, "probabilities": torch.tensor(probabilities, dtype=torch.float32)}
    SubmissionWriter().write_on_epoch_end(trainer, None, [batch], [])


def test_every_written_submission_is_checked(tmp_path):
    writer_run(tmp_path, [[0.2, 0.8], [0.6, 0.4]], None)
    assert pd.read_csv(tmp_path / "submission_test.csv").shape == (2, 3)
    with pytest.raises(DataError, match=r"empty value\(s\) in row 3 \(ISIC_0000001\)"):  # a diverged model's NaN
        writer_run(tmp_path, [[0.2, 0.8], [float("nan"), 0.4]], None)
    with pytest.raises(DataError, match=r"no row for 1 image\(s\) of the truth: ISIC_0000009"):
        writer_run(tmp_path, [[0.2, 0.8], [0.6, 0.4]], ["ISIC_0000000", "ISIC_0000001", "ISIC_0000009"])


# --- case 5: the task 3 test truth as published with HAM10000 --------------------------------------------------

DX_COUNTS = {"NV": 909, "BKL": 217, "MEL": 171, "BCC": 93, "DF": 44, "AKIEC": 43, "VASC": 35}


@needs_ham_truth
def test_ham_layout_test_truth_is_read():
    truth = read_truth(HAM_TEST_TRUTH)
    assert truth.layout == "ham10000" and len(truth.labels) == 1512
    assert truth.labels.sum().to_dict() == DX_COUNTS
    assert truth.weights["ISIC_0035068"] == 0.0 and truth.weights.sum() == 1511  # its dataset is empty
    assert truth.groups[0] == "HAMTEST_0000000" and truth.extra["dx_type"][0] == "follow_up"


@needs_ham_truth
def test_task3_datamodule_reads_the_ham_layout_test_truth(tmp_path):
    shutil.copy(HAM_TEST_TRUTH, tmp_path / "ISIC2018_Task3_Test_GroundTruth.csv")
    (tmp_path / "ISIC2018_Task3_Test_Input").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ISIC2018_Task3_Test_Input" / "ISIC_0034524.jpg")
    table = ISIC2018Task3DataModule(str(tmp_path), num_workers=0).read_labelled("test")
    assert len(table) == 1512 and table.ids[0] == "ISIC_0034524"
    counts = np.bincount(table.labels, minlength=7)
    assert dict(zip(CATEGORIES, counts.tolist(), strict=True)) == DX_COUNTS
    assert table.groups[:2] == ["HAMTEST_0000000", "HAMTEST_0000001"]
    assert table.extra["score_weight"][table.ids.index("ISIC_0035068")] == 0.0
    assert sum(table.extra["score_weight"]) == 1511


@needs_ham_truth
def test_score_on_the_ham_layout_truth_equals_the_official_scorer(tmp_path):
    truth = read_truth(HAM_TEST_TRUTH)
    rng = np.random.default_rng(5)
    raw = rng.random((1512, 7)) + 1.5 * truth.labels.to_numpy()  # a made-up, better-than-chance submission
    submission = pd.DataFrame((raw / raw.sum(1, keepdims=True)).round(6), columns=CATEGORIES)
    submission.insert(0, "image", truth.labels.index)
    submission.to_csv(tmp_path / "pred.csv", index=False)
    # the official scorer reads only the challenge layout: the same truth, one-hot from dx
    truth.labels.rename_axis("image").reset_index().to_csv(tmp_path / "challenge_truth.csv", index=False)
    ours = score(HAM_TEST_TRUTH, tmp_path / "pred.csv")
    assert ours["layout"] == "ham10000" and ours["images"] == 1511
    assert_same_scores(ours, official(tmp_path / "challenge_truth.csv", tmp_path / "pred.csv"))
    submission.drop(index=truth.labels.index.get_loc("ISIC_0035068")).to_csv(tmp_path / "pred.csv", index=False)
    with pytest.raises(DataError, match="ISIC_0035068"):  # weight 0, but the official scorer still wants it
        score(HAM_TEST_TRUTH, tmp_path / "pred.csv")


# --- case 7: ISIC 2017 submissions hold both columns ------------------------------------------------------------

@needs_2017_truth
@pytest.mark.parametrize("task", ["melanoma", "seborrheic_keratosis"])
def test_isic2017_single_task_submission_has_both_columns(task, tmp_path):
    truth = pd.read_csv(ISIC2017_TEST_TRUTH)
    data = ISIC2017DataModule(str(tmp_path), task=task)
    probabilities = np.random.default_rng(7).dirichlet([1, 1], size=len(truth))
    submission = data.submission(truth.image_id.tolist(), probabilities)
    assert list(submission.columns) == ["image_id", "melanoma", "seborrheic_keratosis"]
    other = "seborrheic_keratosis" if task == "melanoma" else "melanoma"
    assert submission[other].eq(0.5).all() and np.allclose(submission[task], probabilities[:, 1])
    submission.to_csv(tmp_path / "pred.csv", index=False, float_format="%.6f")
    ours = score(ISIC2017_TEST_TRUTH, tmp_path / "pred.csv")
    # today's official scorer names the id column `image` (the 2017 files say `image_id`): renamed for it alone
    for name in ("pred", "truth"):
        source = tmp_path / "pred.csv" if name == "pred" else ISIC2017_TEST_TRUTH
        pd.read_csv(source).rename(columns={"image_id": "image"}).to_csv(tmp_path / f"{name}_image.csv", index=False)
    theirs = official(tmp_path / "truth_image.csv", tmp_path / "pred_image.csv")  # accepted: raises otherwise
    assert_same_scores(ours, theirs)
    assert ours["per_category"][other]["auc"] == 0.5


def test_in_run_metrics_leave_out_the_weight_0_image_as_the_official_scorer(tmp_path):
    """The dataset marks a score-weight-0 image (``scored`` False) and the module's test metrics leave it out,
    as ``isic-challenge-scoring`` does: three right rows and one wrong unscored row give balanced accuracy 1."""
    from datamodules.datasets.image_dataset import ImageTableDataset
    from datamodules.datasets.table import ImageTable
    from datamodules.transforms import build_transforms
    from lightning_modules.base import LesionClassifier

    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{name}.jpg")
    table = ImageTable(ids=["a", "b"], paths=[tmp_path / "a.jpg", tmp_path / "b.jpg"], labels=np.array([0, 1]),
                       source=tmp_path, extra={"score_weight": [1.0, 0.0]})
    dataset = ImageTableDataset(table, build_transforms("none", 8, train=False))
    assert [dataset[i]["scored"] for i in range(2)] == [True, False]

    module = LesionClassifier(backbone="test_resnet", num_classes=3, monitor=None)
    probabilities = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.1, 0.8, 0.1]])
    batch = {"image": torch.zeros(4, 3, 8, 8), "label": torch.tensor([0, 1, 2, 0]), "weight": torch.ones(4),
             "scored": torch.tensor([True, True, True, False])}
    module._evaluation_step(batch, "test", probabilities)
    assert module.metrics["test"].compute()["balanced_accuracy"] == pytest.approx(1.0)
    module.metrics["test"].reset()
    module._evaluation_step({k: v for k, v in batch.items() if k != "scored"}, "test", probabilities)
    assert module.metrics["test"].compute()["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
