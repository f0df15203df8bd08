"""Statistics in grid reports (``dermlab/grid/statistics.py``): pooled intervals, paired tests with Holm, out-of-fold
predictions and fold ensembles, on fabricated cells whose numbers are checked by hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dermlab.errors import DataError
from dermlab.files.predictions import Predictions, write_predictions
from dermlab.grid import report as reporting
from dermlab.grid import spec
from dermlab.grid.statistics import auc, balanced_accuracy, fold_ensemble, out_of_fold, pooled_interval
from dermlab.stats.intervals import binary_auc, stratified_bootstrap
from dermlab.stats.paired_tests import delong
from tests.conftest import REPO, data_root_of
from tests.helpers.grids import write_grid
from tests.helpers.predictions import IMAGES, P_A, TARGET, binary

P_B = [0.2, 0.6, 0.1, 0.7, 0.5, 0.15]


def cell(folder, metrics, test=None, val=None, splits=None, images=IMAGES, target=TARGET):
    """A finished cell: result.json, and predictions_test.csv / predictions_val.csv / splits/*.csv if given."""
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"metrics": metrics}))
    if test is not None:
        write_predictions(folder / "predictions_test.csv", images, target, test, ("benign", "melanoma"))
    if val is not None:
        write_predictions(folder / "predictions_val.csv", *val, ("benign", "melanoma"))
    for split, ids in (splits or {}).items():
        (folder / "splits").mkdir(exist_ok=True)
        pd.DataFrame({"image_id": ids, "label": ""}).to_csv(folder / "splits" / f"{split}.csv", index=False)


def test_recomputed_metrics_by_hand_and_against_scikit_learn():
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    assert auc(np.array(TARGET), binary(P_A)) == pytest.approx(7 / 9)
    target = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.array([[.6, .3, .1], [.2, .5, .3], [.1, .8, .1], [.5, .4, .1], [.1, .2, .7], [.3, .3, .4]])
    # argmax: 0, 1, 1, 0, 2, 2 → recalls 1/2, 1/2, 2/2 → balanced accuracy 2/3
    assert balanced_accuracy(target, probabilities) == pytest.approx(2 / 3)
    assert balanced_accuracy(target, probabilities) == pytest.approx(balanced_accuracy_score(target,
                                                                                             probabilities.argmax(1)))
    assert auc(target, probabilities) == pytest.approx(roc_auc_score(target, probabilities, multi_class="ovr"))


def test_recomputed_metrics_equal_the_logged_ones_also_with_absent_classes():
    """The report's numbers must be the logged ones: 5 classes, class 3 never occurs but is predicted, class 4
    neither occurs nor is predicted. Both absent classes are left out of the macro AUC and of the recall mean (an
    earlier report counted their AUC as 0, as torchmetrics' ``average="macro"`` does, and disagreed with the run)."""
    import torch
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    from dermlab.metrics.logged import multiclass_metrics, scalars

    rng = np.random.default_rng(0)
    target = rng.choice([0, 1, 2], size=40)
    logits = rng.normal(size=(40, 5)) + 2 * np.eye(5)[target]
    logits[:, 4] -= 10
    logits[:3, 3] += 10  # three images predicted as the absent class 3
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    present_mean = np.mean([roc_auc_score(target == c, probabilities[:, c]) for c in (0, 1, 2)])
    assert auc(target, probabilities) == pytest.approx(present_mean, abs=1e-12)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        expected_recall = balanced_accuracy_score(target, probabilities.argmax(1))
    assert balanced_accuracy(target, probabilities) == pytest.approx(expected_recall, abs=1e-12)
    logged = multiclass_metrics(list("abcde"))
    logged.update(torch.tensor(probabilities), torch.tensor(target))
    values = scalars(logged.compute())
    assert auc(target, probabilities) == pytest.approx(values["auc"], abs=1e-12)
    assert balanced_accuracy(target, probabilities) == pytest.approx(values["balanced_accuracy"], abs=1e-12)


def predictions(p, images=IMAGES, target=TARGET):
    from dermlab.files.predictions import Predictions

    return Predictions(np.array(images), np.array(target), binary(p), ("benign", "melanoma"),
                       np.ones(len(images), bool), "fixture")


def test_pooled_interval_shares_one_resample_per_replicate_among_cells_on_the_same_images():
    one = pooled_interval([predictions(P_A)], auc, n_boot=200, seed=3)
    reference = stratified_bootstrap(binary_auc, TARGET, P_A, n_boot=200, seed=3)  # dermlab.stats.intervals
    assert (one.estimate, one.low, one.high) == (reference.estimate, reference.low, reference.high)
    both = pooled_interval([predictions(P_A), predictions(P_B)], auc, n_boot=200, seed=3)
    assert both.estimate == pytest.approx((7 / 9 + 2 / 3) / 2)  # the row's mean, 13/18
    # the definition: one stratified resample per replicate, both cells scored on it, their mean
    mean_of_two = lambda y, s: (binary_auc(y, s[:, 0]) + binary_auc(y, s[:, 1])) / 2  # noqa: E731
    expected = stratified_bootstrap(mean_of_two, TARGET, np.stack([P_A, P_B], 1), n_boot=200, seed=3)
    assert (both.low, both.high) == (pytest.approx(expected.low), pytest.approx(expected.high))


def test_pooled_resampling_keeps_every_tasks_class_counts_on_shared_images():
    """Two tasks on the same 6 images (the arl average over tasks): strata are the joint targets, so every
    replicate keeps 3 positives in task 1 and 2 in task 2."""
    seen = []

    def counting(target, probabilities):
        seen.append(int(target.sum()))
        return 0.5

    task_2 = [0, 1, 0, 1, 0, 0]
    pooled_interval([predictions(P_A), predictions(P_B, target=task_2)], counting, n_boot=50, seed=0)
    assert set(seen[0::2]) == {3} and set(seen[1::2]) == {2} and len(seen) == 2 * 51  # 50 replicates + estimates


def test_fold_ensemble_is_the_mean_of_the_folds_probabilities_by_image():
    two = [predictions(p, images=i, target=t) for p, i, t in (([0.2, 0.6], ["im1", "im2"], [0, 1]),
                                                              ([0.2, 0.6], ["im2", "im1"], [1, 0]),
                                                              ([0.1, 0.3], ["im1", "im2"], [0, 1]))]
    ensemble = fold_ensemble(two)
    # im1: (0.2 + 0.6 + 0.1) / 3 = 0.3; im2: (0.6 + 0.2 + 0.3) / 3 = 1.1 / 3
    assert ensemble.probabilities[:, 1] == pytest.approx([0.3, 1.1 / 3]) and list(ensemble.images) == ["im1", "im2"]
    with pytest.raises(DataError, match="does not hold the same images"):
        fold_ensemble([two[0], predictions([0.5, 0.5], images=["im1", "im9"], target=[0, 1])])


def test_out_of_fold_concatenates_and_refuses_a_missing_or_repeated_image():
    fold = {k: predictions(p, images=i, target=t) for k, p, i, t in (
        ("0", [0.1, 0.9], ["im1", "im4"], [0, 1]), ("1", [0.3, 0.6], ["im2", "im5"], [0, 1]),
        ("2", [0.2, 0.7], ["im3", "im6"], [0, 1]))}
    oof = out_of_fold(fold, IMAGES)
    assert list(oof.images) == ["im1", "im4", "im2", "im5", "im3", "im6"] and list(oof.target) == [0, 1] * 3
    assert auc(oof.target, oof.probabilities) == 1.0  # every positive (0.9, 0.6, 0.7) above every negative
    with pytest.raises(DataError, match="miss 1 image\\(s\\) of the CV set \\(e.g. \\['im7'\\]\\)"):
        out_of_fold(fold, [*IMAGES, "im7"])
    fold["2"] = predictions([0.2, 0.7], images=["im3", "im1"], target=[0, 0])
    with pytest.raises(DataError, match="im1 \\(fixture and fixture\\)"):
        out_of_fold(fold, IMAGES)


def paired_grid(tmp_path, **overrides):
    return spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a", "b"],
                                                           "seed_everything": [0, 1]},
                                metrics=["test/auc", "test/accuracy"], **overrides))


@pytest.mark.parametrize("entry,message", [
    ({"metric": "test/f1", "a": {"backbone": "a"}, "b": {"backbone": "b"}}, "key 'metric' names 'test/f1'"),
    ({"metric": "test/auc", "a": {"colour": "a"}, "b": {"backbone": "b"}}, "key a.colour is not an axis"),
    ({"metric": "test/auc", "a": {"backbone": "a"}, "b": {"backbone": "c"}}, "key b.backbone has value 'c'"),
    ({"metric": "test/auc", "a": {"backbone": "a"}, "b": {"seed_everything": 1}}, "must set the same axes"),
    ({"metric": "test/auc", "a": {"backbone": "a"}}, "needs exactly the keys metric, a and b"),
])
def test_paired_tests_naming_a_metric_axis_or_value_the_grid_lacks_are_refused(tmp_path, entry, message):
    with pytest.raises(DataError, match=message):
        paired_grid(tmp_path, paired_tests=[entry])


def test_statistics_settings_default_and_refuse_bad_values(tmp_path):
    assert paired_grid(tmp_path).statistics == {"n_boot": 2000, "seed": 0}
    assert paired_grid(tmp_path, statistics={"n_boot": 50}).statistics == {"n_boot": 50, "seed": 0}
    with pytest.raises(DataError, match="statistics.n_boot must be an integer ≥ 1"):
        paired_grid(tmp_path, statistics={"n_boot": 0})
    with pytest.raises(DataError, match="statistics takes"):
        paired_grid(tmp_path, statistics={"replicates": 10})


def test_report_with_cell_and_pooled_intervals_paired_tests_and_holm_across_the_table(tmp_path):
    grid = paired_grid(tmp_path, statistics={"n_boot": 100, "seed": 0},
                       ttests=[{"metric": "test/auc", "greater": {"model.init_args.backbone": "a"},
                                "than": {"model.init_args.backbone": "b"}}],
                       paired_tests=[{"metric": "test/auc", "a": {"backbone": "a"}, "b": {"backbone": "b"}},
                                     {"metric": "test/accuracy", "a": {"backbone": "a"}, "b": {"backbone": "b"}}])
    runs = tmp_path / "runs"
    root = grid.run_root(runs, False)
    # seed 1 repeats seed 0's predictions; its logged AUC is 0.01 higher, so the t-test has a variance
    for backbone, p, logged in (("a", P_A, 7 / 9), ("b", P_B, 2 / 3)):
        for seed in (0, 1):
            cell(root / f"backbone={backbone}__seed_everything={seed}", {"test/auc": logged + seed * 0.01,
                                                                        "test/accuracy": 0.5}, test=binary(p))
    text = reporting.report(grid, runs)
    raw = reporting.collect(grid, runs, average=False)
    # t-test: a = 77.78, 78.78 vs b = 66.67, 67.67 (×100), both variances 0.5 → t = 11.11 / sqrt(0.5) = 15.71
    (ttest,) = reporting.ttests(grid, raw)
    assert ttest.t == pytest.approx((7 / 9 - 2 / 3) * 100 / np.sqrt(0.5))  # s_p² = 0.5, √(1/2 + 1/2) = 1
    from dermlab.grid.paired import holm_adjust, paired_tests
    pairs = paired_tests(grid, raw, lambda c: root / c)
    assert [(p.cell_a, p.cell_b, p.test) for p in pairs] == [
        ("backbone=a__seed_everything=0", "backbone=b__seed_everything=0", "DeLong"),
        ("backbone=a__seed_everything=1", "backbone=b__seed_everything=1", "DeLong"),
        ("backbone=a__seed_everything=0", "backbone=b__seed_everything=0", "McNemar"),
        ("backbone=a__seed_everything=1", "backbone=b__seed_everything=1", "McNemar")]
    assert pairs[0].paired_on == "seed_everything=0"
    assert (pairs[0].value_a, pairs[0].value_b) == (pytest.approx(7 / 9), pytest.approx(2 / 3))
    assert pairs[0].p == pytest.approx(delong(TARGET, P_A, P_B).p)
    # McNemar: A predicts 0,0,0,1,0,1 (5 right), B 0,1,0,1,0,0 (3 right); only A right on im2 and im6: b = 2,
    # c = 0 → exact two-sided binomial p = 2 · ½² = 0.5; accuracies 5/6 and 3/6
    assert (pairs[2].value_a, pairs[2].value_b, pairs[2].p) == (pytest.approx(5 / 6), pytest.approx(0.5), 0.5)
    assert pairs[2].detail == "b=2, c=0, exact"
    # Holm over the table's 5 p-values (1 t-test + 4 paired), by hand: sort, multiply by 5, 4, ..., running max
    assert holm_adjust([ttest], pairs) == 5
    ps = [ttest.p, *(p.p for p in pairs)]
    order = np.argsort(ps, kind="stable")
    running, by_hand = 0.0, [0.0] * 5
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (5 - rank) * ps[index]))
        by_hand[index] = running
    assert [ttest.p_holm, *(p.p_holm for p in pairs)] == pytest.approx(by_hand)
    assert f"| {_fmt(ttest.p)} | {_fmt(by_hand[0])} |" in text
    assert "adjusted across the table's 5 p-values" in text
    assert "| test/accuracy | backbone=a | backbone=b | seed_everything=0 | McNemar | 0.8333 | 0.5000 | 0.000 " \
           "(b=2, c=0, exact) | 0.5000 |" in text
    # pooled interval of row a: two cells with identical predictions → the single cell's interval
    single = stratified_bootstrap(binary_auc, TARGET, P_A, n_boot=100, seed=0)
    assert f"| a | test/auc | 78.28 ± 0.71 | 77.78 [{single.low * 100:.2f}, {single.high * 100:.2f}] | 2 |" in text
    csv = pd.read_csv(grid.report_root(runs, False) / "report.csv")
    csv["cell"] = csv.cell.fillna("")
    row_a = csv[(csv.row == "a") & (csv.metric == "test/auc") & (csv.cell == "")].iloc[0]
    assert row_a.estimate == pytest.approx(700 / 9) and row_a.low == pytest.approx(single.low * 100)
    per_cell = csv[csv.cell == "backbone=b__seed_everything=0"].iloc[0]
    assert per_cell.estimate == pytest.approx(200 / 3) and per_cell["mean"] == pytest.approx(200 / 3)
    assert list(csv.columns[:3]) == ["row", "chosen", "metric"]  # the leading columns readers rely on


def _fmt(value):
    return f"{value:.4f}"


def test_report_of_a_cross_validation_writes_out_of_fold_and_fold_ensemble_files(tmp_path):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"model.init_args.backbone": ["a"],
                                                           "data.init_args.fold": [0, 1, 2]},
                                metrics=["test/auc"], statistics={"n_boot": 50, "seed": 0}))
    runs = tmp_path / "runs"
    root = grid.run_root(runs, False)
    cv = ["c1", "c2", "c3", "c4", "c5", "c6"]  # fold k holds out c(k+1) (negative) and c(k+4) (positive)
    held = {0: (["c1", "c4"], [0.1, 0.9]), 1: (["c2", "c5"], [0.3, 0.6]), 2: (["c3", "c6"], [0.2, 0.7])}
    tests = {0: P_A, 1: P_B, 2: [0.3, 0.3, 0.3, 0.6, 0.6, 0.6]}  # the third fold is perfect on the test set
    for fold, (ids, p) in held.items():
        cell(root / f"backbone=a__fold={fold}", {"test/auc": auc(np.array(TARGET), binary(tests[fold]))},
             test=binary(tests[fold]), val=(ids, [0, 1], binary(p)),
             splits={"train": [c for c in cv if c not in ids], "val": ids})
    text = reporting.report(grid, runs)
    report_folder = grid.report_root(runs, False)
    oof = Predictions.read(report_folder / "oof_a.csv")
    assert list(oof.images) == ["c1", "c4", "c2", "c5", "c3", "c6"]
    ensemble = Predictions.read(report_folder / "ensemble_test_a.csv")
    # P(melanoma) per image: mean of the three folds' test probabilities, e.g. im1 (0.1 + 0.2 + 0.3) / 3 = 0.2
    assert ensemble.probabilities[:, 1] == pytest.approx(np.mean([P_A, P_B, tests[2]], axis=0), abs=1e-6)
    # ensemble P(melanoma): negatives 0.2, 0.433, 0.25; positives 0.7, 0.467, 0.55 → every positive above every
    # negative → AUC 1; folds' AUCs 7/9, 2/3, 1 → mean 0.8148 (81.48), std 0.1697 (16.97)
    assert "| a | test/auc | 81.48 ± 16.97 | 100.00 [100.00, 100.00] | 100.00 [100.00, 100.00] |" in text
    assert "`ensemble_test_a.csv`, `oof_a.csv`" in text
    csv = pd.read_csv(report_folder / "report.csv")
    assert set(csv.cell) >= {"out-of-fold", "fold ensemble"}
    # a repeated held-out image stops the report, naming it
    write_predictions(root / "backbone=a__fold=2" / "predictions_val.csv", ["c3", "c1"], [0, 0],
                      binary([0.2, 0.1]), ("benign", "melanoma"))
    with pytest.raises(DataError, match="held out by more than one fold, e.g. \\['c1 "):
        reporting.report(grid, runs)


def test_real_tables_with_paired_tests_load():
    for table in ("experiments/arl/tables/table7_seeds.yaml", "experiments/patch/tables/table2_strategies.yaml"):
        grid = spec.load(REPO / table)
        assert grid.paired_tests and grid.statistics["n_boot"] == 2000


@pytest.mark.slow
def test_a_tiny_cross_validation_grid_writes_its_predictions_and_reports_them(tmp_path, synthetic):
    """Three folds of the patch scheme on the tiny synthetic HAM10000 through `dermlab grid run`: each cell
    writes predictions_test.csv and predictions_val.csv; the report's out-of-fold file covers the CV set."""
    grid_file = write_grid(tmp_path / "g.yaml", config=[str(REPO / "experiments" / "demo_synthetic.yaml")],
                           dataset="ham10000", args=[*TINY_HAM], axes={"model.init_args.backbone": ["test_resnet"],
                                                   "data.init_args.fold": [0, 1, 2]},
                           metrics=["test/balanced_accuracy"], statistics={"n_boot": 50, "seed": 0})
    command = [sys.executable, "-m", "dermlab", "grid", "run", str(grid_file), "--data-root",
               str(data_root_of(tmp_path, ham10000=synthetic("ham10000"))), "--runs", str(tmp_path / "runs")]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "WANDB_MODE": "disabled"}, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    root = tmp_path / "runs" / "grids" / "demo" / "tiny"
    for fold in (0, 1, 2):
        folder = root / f"backbone=test_resnet__fold={fold}"
        val = Predictions.read(folder / "predictions_val.csv")
        assert set(val.images) == set(pd.read_csv(folder / "splits" / "val.csv").image_id)
        assert len(Predictions.read(folder / "predictions_test.csv")) == len(pd.read_csv(folder / "splits" /
                                                                                         "test.csv"))
    oof = Predictions.read(root / "oof_test_resnet.csv")
    splits = root / "backbone=test_resnet__fold=0" / "splits"
    assert sorted(oof.images) == sorted([*pd.read_csv(splits / "train.csv").image_id,
                                         *pd.read_csv(splits / "val.csv").image_id])
    assert "fold ensemble" in (root / "report.md").read_text()


TINY_HAM = ["--data", "experiments/base/data/ham10000.yaml", "--data.init_args.split", "patch",
            "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8",
            "--data.init_args.num_workers", "0", "--trainer.max_epochs", "1",
            "--model.init_args.scheduler.init_args.T_max", "1", "--model.init_args.monitor", "val/balanced_accuracy",
            "--run.wandb", "disabled"]
