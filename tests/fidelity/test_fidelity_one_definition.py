"""One definition per number: a run's logged metrics, ``dermlab score``, the grid report, the subgroup table and the
reliability diagram's ECE give the same digits (to 1e-9) on shared fixtures that lack a class and hold ties.

The multi-class fixture is an ISIC 2019 test split with no AK image (a fold can lack it) and no UNK image (the
training truth marks none); five rows share their top probability between two classes (undecided: wrong for every
class). The binary fixture is an ISIC 2016 split with ties at the threshold and in score. Each path reads the numbers
as a user gets them: the run's torchmetrics collection, the score of the official CSVs, the grid's reading of the
run's predictions file, the subgroup table's ``all`` row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from dermlab.challenge.scoring import score
from dermlab.challenge.truth import ISIC2019_CATEGORIES
from dermlab.files.predictions import Predictions, read_predictions, write_predictions
from dermlab.grid.paired import PairedTest, run_test
from dermlab.grid.statistics import cell_interval, metric_function
from dermlab.metrics.logged import classification_metrics, metric_input, scalars
from dermlab.stats.calibration import expected_calibration_error
from dermlab.stats.subgroups import subgroup_table

AGREE = 1e-9
CLASSES = list(ISIC2019_CATEGORIES)  # MEL NV BCC AK BKL DF VASC SCC UNK
ABSENT = (CLASSES.index("AK"), CLASSES.index("UNK"))


def multiclass_fixture(n: int = 90) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(31)
    present = [c for c in range(len(CLASSES)) if c not in ABSENT]
    target = np.r_[present, rng.choice(present, n - len(present))]
    logits = rng.normal(size=(n, len(CLASSES))) + 1.5 * np.eye(len(CLASSES))[target]
    logits[:4, CLASSES.index("AK")] += 6  # the absent AK is predicted for some images
    probabilities = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 2)
    for row in range(10, 15):  # undecided rows: the top probability shared by two classes
        probabilities[row, :] = 0.0
        probabilities[row, [target[row], (target[row] + 1) % len(CLASSES)]] = 0.5
    return [f"ISIC_{i:07d}" for i in range(n)], target, probabilities


def binary_fixture(n: int = 80) -> tuple[list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(16)
    target = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    scores = np.round(np.clip(0.3 * target + 0.7 * rng.random(n), 0, 1), 1)  # many ties
    scores[2:5] = 0.5  # on the threshold: negative
    scores[5] = 1.0  # p = 1 has an ECE bin of its own
    return [f"ISIC_{i:07d}" for i in range(n)], target, np.column_stack([1 - scores, scores])


def logged(class_names, target, probabilities) -> dict[str, float]:
    """What a run logs (the collection of lightning_modules/base.py, fed per batch)."""
    collection = classification_metrics(class_names)
    for part in np.array_split(np.arange(len(target)), min(3, len(target))):
        collection.update(metric_input(torch.tensor(probabilities[part])), torch.tensor(target[part]))
    return scalars(collection.compute())


def grid_value(tmp_path, metric, images, target, probabilities, class_names) -> float:
    """The grid report's estimate, read from the run's predictions file as the report reads it."""
    path = write_predictions(tmp_path / f"{metric.replace('/', '_')}.csv", images, target, probabilities,
                             class_names)
    cell = Predictions.read(path)
    return cell_interval(cell, metric_function(metric, len(class_names)), n_boot=2).estimate


def paired_value(tmp_path, metric, images, target, probabilities, class_names) -> float:
    """The value the grid's paired-test table shows for a cell (DeLong for the AUC, McNemar otherwise)."""
    path = write_predictions(tmp_path / "paired.csv", images, target, probabilities, class_names)
    cell = Predictions.read(path)
    result = PairedTest(metric, {}, {}, "a", "b", "")
    run_test(result, cell, cell)
    assert result.value_a == result.value_b
    return result.value_a


def subgroup_all(tmp_path, images, target, probabilities, class_names, positive) -> pd.Series:
    path = write_predictions(tmp_path / "for_subgroups.csv", images, target, probabilities,
                             class_names)
    table = subgroup_table(read_predictions(path, class_names), pd.DataFrame(index=[]), class_names,
                           positive=positive, n_boot=2)
    return table.iloc[0]


def test_the_multiclass_fixture_has_what_it_claims():
    _, target, probabilities = multiclass_fixture()
    assert set(np.unique(target)).isdisjoint(ABSENT)
    assert (probabilities.argmax(1) == CLASSES.index("AK")).any()
    assert ((probabilities == probabilities.max(1, keepdims=True)).sum(1) > 1).sum() >= 5


def test_macro_auc_and_balanced_accuracy_agree_on_every_path_with_absent_classes(tmp_path):
    images, target, probabilities = multiclass_fixture()
    run = logged(CLASSES, target, probabilities)
    # by hand (scikit-learn): the mean over the seven classes present; undecided rows count wrong
    present = sorted(set(target))
    by_hand_auc = np.mean([roc_auc_score(target == c, probabilities[:, c]) for c in present])
    decided = np.where((probabilities == probabilities.max(1, keepdims=True)).sum(1) == 1, probabilities.argmax(1), -1)
    by_hand_balanced = balanced_accuracy_score(target, decided)
    assert run["auc"] == pytest.approx(by_hand_auc, abs=AGREE)
    assert run["balanced_accuracy"] == pytest.approx(by_hand_balanced, abs=AGREE)
    assert run["auc_AK"] != run["auc_AK"] and run["recall_AK"] != run["recall_AK"]  # NaN: no AK image

    truth = pd.DataFrame(np.eye(len(CLASSES))[target], columns=CLASSES).assign(image=images)
    submission = pd.DataFrame(probabilities, columns=CLASSES).assign(image=images)
    truth[["image", *CLASSES]].to_csv(tmp_path / "truth.csv", index=False)
    submission[["image", *CLASSES]].to_csv(tmp_path / "submission.csv", index=False)
    scored = score(tmp_path / "truth.csv", tmp_path / "submission.csv")
    assert scored["macro"]["auc"] == pytest.approx(run["auc"], abs=AGREE)
    assert scored["balanced_accuracy"] == pytest.approx(run["balanced_accuracy"], abs=AGREE)
    assert scored["per_category"]["MEL"]["auc"] == pytest.approx(run["auc_MEL"], abs=AGREE)
    for name in ("balanced_accuracy", "accuracy", "auc", "specificity", "ece"):  # the run's names, the run's numbers
        assert scored["multiclass"][name] == pytest.approx(run[name], abs=AGREE), name

    assert grid_value(tmp_path, "test/auc", images, target, probabilities, CLASSES) == pytest.approx(
        run["auc"], abs=AGREE)
    assert grid_value(tmp_path, "test/balanced_accuracy", images, target, probabilities, CLASSES) == pytest.approx(
        run["balanced_accuracy"], abs=AGREE)

    assert paired_value(tmp_path, "test/balanced_accuracy", images, target, probabilities, CLASSES) == pytest.approx(
        run["balanced_accuracy"], abs=AGREE)
    assert paired_value(tmp_path, "test/accuracy", images, target, probabilities, CLASSES) == pytest.approx(
        run["accuracy"], abs=AGREE)

    macro_row = subgroup_all(tmp_path, images, target, probabilities, CLASSES, "macro")
    assert macro_row["auc"] == pytest.approx(run["auc"], abs=AGREE)
    assert macro_row["sensitivity"] == pytest.approx(run["balanced_accuracy"], abs=AGREE)
    assert macro_row["specificity"] == pytest.approx(run["specificity"], abs=AGREE)
    mel_row = subgroup_all(tmp_path, images, target, probabilities, CLASSES, "MEL")
    assert mel_row["auc"] == pytest.approx(run["auc_MEL"], abs=AGREE)
    assert mel_row["sensitivity"] == pytest.approx(run["recall_MEL"], abs=AGREE)

    assert expected_calibration_error(torch.tensor(probabilities), torch.tensor(target)) == pytest.approx(
        run["ece"], abs=AGREE)


def test_binary_metrics_agree_on_every_path_with_ties(tmp_path):
    images, target, probabilities = binary_fixture()
    names = ["benign", "malignant"]
    run = logged(names, target, probabilities)
    pd.DataFrame({"image": images, "label": target.astype(float)}).to_csv(tmp_path / "truth.csv", index=False,
                                                                          header=False)
    pd.DataFrame({"image": images, "malignant": probabilities[:, 1]}).to_csv(tmp_path / "submission.csv",
                                                                             index=False)
    scored = score(tmp_path / "truth.csv", tmp_path / "submission.csv")["per_category"]["malignant"]
    for name in ("auc", "accuracy", "sensitivity", "specificity", "average_precision", "pauc_tpr80", "ece"):
        assert scored[name] == pytest.approx(run[name], abs=AGREE), name
    assert run["auc"] == pytest.approx(roc_auc_score(target, probabilities[:, 1]), abs=AGREE)
    assert run["sensitivity"] == pytest.approx(((probabilities[:, 1] > 0.5) & (target == 1)).sum()
                                               / (target == 1).sum(), abs=AGREE)

    assert grid_value(tmp_path, "test/auc", images, target, probabilities, names) == pytest.approx(
        run["auc"], abs=AGREE)
    for metric in ("auc", "accuracy"):
        assert paired_value(tmp_path, f"test/{metric}", images, target, probabilities, names) == pytest.approx(
            run[metric], abs=AGREE), metric
    row = subgroup_all(tmp_path, images, target, probabilities, names, "auto")
    for name in ("auc", "sensitivity", "specificity"):
        assert row[name] == pytest.approx(run[name], abs=AGREE), name
    assert expected_calibration_error(torch.tensor(probabilities), torch.tensor(target)) == pytest.approx(
        run["ece"], abs=AGREE)


def test_an_undecided_row_is_wrong_for_the_ece_too():
    """One image of class 0 with probabilities (0.4, 0.4, 0.2): the top probability is shared, so the row is
    undecided and wrong; the top-label ECE is |0.4 − 0| = 0.4 (taking the first argmax, right, would give 0.6)."""
    values = logged(["a", "b", "c"], np.array([0]), np.array([[0.4, 0.4, 0.2]]))
    assert values["ece"] == pytest.approx(0.4, abs=AGREE)
    assert values["accuracy"] == 0.0 and values["balanced_accuracy"] == 0.0
    assert expected_calibration_error(torch.tensor([[0.4, 0.4, 0.2]]), torch.tensor([0])) == pytest.approx(0.4)


def test_the_bootstrap_of_dermlab_score_takes_a_split_without_some_classes(tmp_path):
    """An ISIC 2019 test split without AK and UNK images: ``--bootstrap`` gives every defined metric its interval,
    the absent classes' AUC none (null in the printed JSON), and the macro AUC interval around the macro AUC over
    the classes present."""
    images, target, probabilities = multiclass_fixture()
    truth = pd.DataFrame(np.eye(len(CLASSES))[target], columns=CLASSES).assign(image=images)
    submission = pd.DataFrame(probabilities, columns=CLASSES).assign(image=images)
    truth[["image", *CLASSES]].to_csv(tmp_path / "truth.csv", index=False)
    submission[["image", *CLASSES]].to_csv(tmp_path / "submission.csv", index=False)
    scored = score(tmp_path / "truth.csv", tmp_path / "submission.csv", n_boot=200, seed=0)
    low, high = scored["macro"]["auc_ci95"]
    assert low <= scored["macro"]["auc"] <= high and high - low > 0.01
    assert all(v != v for v in scored["per_category"]["AK"]["auc_ci95"])  # NaN: no AK image, no AUC
    assert scored["per_category"]["AK"]["specificity_ci95"][0] == scored["per_category"]["AK"]["specificity_ci95"][0]


def test_dermlab_score_prints_strict_json_with_null_for_an_undefined_metric(tmp_path, capsys):
    import json

    from dermlab.cli import main

    images, target, probabilities = multiclass_fixture()
    truth = pd.DataFrame(np.eye(len(CLASSES))[target], columns=CLASSES).assign(image=images)
    submission = pd.DataFrame(probabilities, columns=CLASSES).assign(image=images)
    truth[["image", *CLASSES]].to_csv(tmp_path / "truth.csv", index=False)
    submission[["image", *CLASSES]].to_csv(tmp_path / "submission.csv", index=False)
    main(["score", "--truth", str(tmp_path / "truth.csv"), "--pred", str(tmp_path / "submission.csv")])

    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant}")

    printed = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert printed["per_category"]["AK"]["auc"] is None and "auc" in printed["undefined"]["AK"]


def test_a_submission_keeps_every_probability_so_its_score_is_the_runs():
    """Submissions are written with the shortest exact decimal: probabilities near 0 that differ in the run stay
    different in the file (6 decimals tied 1.6e-6 and 1.8e-8 at 0.000000 and moved the AUC), and a column never
    holds integers only (the official scorer refuses that)."""
    import numpy as np

    from callbacks.submission import exact_decimal

    values = [0.0, 1.0, 1.6e-6, 1.8e-8, float(np.float32(0.1)), 0.5]
    written = [exact_decimal(v) for v in values]
    assert [float(w) for w in written] == values
    assert all("." in w and "e" not in w.lower() for w in written)
    assert written[:2] == ["0.0", "1.0"]
