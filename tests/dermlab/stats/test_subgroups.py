"""Subgroup metrics (dermlab.stats.subgroups): a hand-made 12-image case, missing metadata, too-small groups, the
multi-class modes and the vectorised intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dermlab.errors import DataError
from dermlab.stats.subgroups import subgroup_table

# 12 test images of a binary task (other / melanoma): label, P(melanoma), sex, site. Image 5 is absent from the
# metadata (so it is "unknown" for every attribute); site holds NaN, "" and "unknown" for images 6, 7 and 10.
CASE = [  # image, target, P(melanoma), sex, site
    ("i00", 1, 0.9, "female", "back"), ("i01", 1, 0.4, "female", "back"), ("i02", 0, 0.6, "female", "back"),
    ("i03", 0, 0.3, "female", "face"), ("i04", 0, 0.2, "female", "face"), ("i05", 0, 0.1, None, None),
    ("i06", 1, 0.8, "male", np.nan), ("i07", 1, 0.7, "male", ""), ("i08", 1, 0.2, "male", "back"),
    ("i09", 0, 0.5, "male", "back"), ("i10", 0, 0.3, "male", "unknown"), ("i11", 0, 0.2, "male", "back"),
]


MEMBERS = {("all", "all"): [c[0] for c in CASE], ("sex", "female"): ["i00", "i01", "i02", "i03", "i04"],
           ("sex", "male"): ["i06", "i07", "i08", "i09", "i10", "i11"],
           ("site", "back"): ["i00", "i01", "i02", "i08", "i09", "i11"],
           ("site", "unknown"): ["i05", "i06", "i07", "i10"]}


def case_frames():
    predictions = pd.DataFrame({"image": [c[0] for c in CASE], "target": [c[1] for c in CASE],
                                "other": [1 - c[2] for c in CASE], "melanoma": [c[2] for c in CASE]})
    metadata = pd.DataFrame({"sex": [c[3] for c in CASE], "site": [c[4] for c in CASE]},
                            index=[c[0] for c in CASE]).drop(index="i05")
    return predictions, metadata


def row(table, attribute, group):
    found = table[(table.attribute == attribute) & (table.group == group)]
    assert len(found) == 1, (attribute, group)
    return found.iloc[0]


def test_twelve_image_case_by_hand():
    predictions, metadata = case_frames()
    table = subgroup_table(predictions, metadata, ("other", "melanoma"), n_boot=200, seed=0)
    assert [(r.attribute, r.group) for r in table.itertuples()] == [
        ("all", "all"), ("sex", "female"), ("sex", "male"), ("sex", "unknown"),
        ("site", "back"), ("site", "face"), ("site", "unknown")]
    # AUC = (pairs positive > negative, ties ½) / (positives · negatives); predicted positive when P > 0.5
    expected = {
        # all: positives .9 .8 .7 .4 .2, negatives .6 .5 .3 .3 .2 .2 .1: 7 + 7 + 7 + 5 + (1 + ½ + ½) = 28 of 35;
        # sensitivity 3/5 (.9 .8 .7); specificity 6/7 (only .6 > .5)
        ("all", "all"): (12, 5, 28 / 35, 3 / 5, 6 / 7),
        # female (i00–i04): positives .9 .4, negatives .6 .3 .2: 3 + 2 = 5 of 6; sens 1/2; spec 2/3
        ("sex", "female"): (5, 2, 5 / 6, 1 / 2, 2 / 3),
        # male (i06–i11): positives .8 .7 .2, negatives .5 .3 .2: 3 + 3 + ½ = 6.5 of 9; sens 2/3;
        # spec 3/3 (.5 is not > .5)
        ("sex", "male"): (6, 3, 6.5 / 9, 2 / 3, 1.0),
        # back (i00 i01 i02 i08 i09 i11): positives .9 .4 .2, negatives .6 .5 .2: 3 + 1 + ½ = 4.5 of 9; sens 1/3;
        # spec 2/3
        ("site", "back"): (6, 3, 4.5 / 9, 1 / 3, 2 / 3),
        # unknown (i05 absent, i06 NaN, i07 "", i10 "unknown"): positives .8 .7, negatives .3 .1: 4 of 4
        ("site", "unknown"): (4, 2, 1.0, 1.0, 1.0),
    }
    for (attribute, group), (n, positives, auc, sensitivity, specificity) in expected.items():
        found = row(table, attribute, group)
        assert (found.n, found.positives) == (n, positives)
        assert found.auc == pytest.approx(auc) and found.sensitivity == pytest.approx(sensitivity)
        assert found.specificity == pytest.approx(specificity)
        for metric in ("auc", "sensitivity", "specificity"):
            assert found[f"{metric}_low"] <= found[metric] + 1e-12 <= found[f"{metric}_high"] + 2e-12
        # fewer than 5 positives or negatives: the stratified bootstrap cannot vary them much, and the note says so
        assert ("too narrow to trust" in found.note) == (min(positives, n - positives) < 5)
        members = predictions[predictions.image.isin(MEMBERS[attribute, group])]
        assert roc_auc_score(members.target, members.melanoma) == pytest.approx(auc)  # independent reference


def test_groups_without_both_classes_get_no_auc_and_say_why():
    predictions, metadata = case_frames()
    table = subgroup_table(predictions, metadata, ("other", "melanoma"), n_boot=100)
    face, nobody = row(table, "site", "face"), row(table, "sex", "unknown")
    for found, n in ((face, 2), (nobody, 1)):  # .3 .2 and .1: negatives only, all ≤ 0.5
        assert found.n == n and found.positives == 0
        assert np.isnan(found.auc) and np.isnan(found.auc_low) and np.isnan(found.sensitivity)
        assert found.specificity == 1.0 and "no positives" in found.note and "too narrow" in found.note
    only_positives = subgroup_table(predictions.iloc[[0, 6]], pd.DataFrame(index=[]), ("other", "melanoma"), n_boot=10)
    assert np.isnan(only_positives.auc[0]) and "no negatives" in only_positives.note[0]
    assert only_positives.sensitivity[0] == 1.0 and np.isnan(only_positives.specificity[0])


def test_unscored_rows_are_left_out_and_bad_tables_refused():
    predictions, metadata = case_frames()
    predictions["scored"] = [1] * 11 + [0]
    assert row(subgroup_table(predictions, metadata, ("other", "melanoma"), n_boot=10), "all", "all").n == 11
    with pytest.raises(DataError, match="lacks the column"):
        subgroup_table(predictions.drop(columns="melanoma"), metadata, ("other", "melanoma"))
    with pytest.raises(DataError, match="more than once"):
        subgroup_table(pd.concat([predictions, predictions.iloc[:1]]), metadata, ("other", "melanoma"))
    bad = predictions.assign(target=[2] + [0] * 11)
    with pytest.raises(DataError, match="row 2 .i00.: target 2"):
        subgroup_table(bad, metadata, ("other", "melanoma"))
    with pytest.raises(ValueError, match="positive class 'MEL'"):
        subgroup_table(predictions, metadata, ("other", "melanoma"), positive="MEL")


# 3 classes, 6 images: rows of probabilities and the true class
THREE = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4]])
THREE_TARGETS = [0, 0, 1, 1, 2, 2]


def test_multiclass_macro_and_positive_class_by_hand():
    predictions = pd.DataFrame(THREE, columns=["a", "b", "c"]).assign(image=[f"j{i}" for i in range(6)],
                                                                       target=THREE_TARGETS)
    macro = subgroup_table(predictions, pd.DataFrame(index=[]), ("a", "b", "c"), n_boot=50).iloc[0]
    # one-vs-rest AUCs: a: positives .7 .4 vs .2 .5 .1 .3 → (4 + 3)/8; b: .6 .3 vs .2 .5 .2 .3 → (4 + 2.5)/8;
    # c: .7 .4 vs .1 .1 .2 .2 → 8/8; macro (7/8 + 6.5/8 + 1)/3 = 0.895833
    assert macro.auc == pytest.approx((7 / 8 + 6.5 / 8 + 1) / 3)
    assert macro.auc == pytest.approx(roc_auc_score(THREE_TARGETS, THREE, multi_class="ovr", average="macro"))
    # argmax a b b a c c: recall a 1/2, b 1/2, c 2/2 → 2/3; specificity a 3/4 (j3 taken for a), b 3/4 (j1), c 1
    assert macro.sensitivity == pytest.approx(2 / 3) and macro.specificity == pytest.approx((0.75 + 0.75 + 1) / 3)
    assert np.isnan(macro.positives) and "macro over 3 classes" in macro.note
    assert "fewer than 5 images of a, b, c" in macro.note  # classes by name, not index
    only_c = subgroup_table(predictions.iloc[4:], pd.DataFrame(index=[]), ("a", "b", "c"), n_boot=50).iloc[0]
    assert only_c.note.startswith("one class only (c): no AUC or specificity")
    one = subgroup_table(predictions, pd.DataFrame(index=[]), ("a", "b", "c"), positive="b", n_boot=50).iloc[0]
    # b against the rest: AUC 6.5/8; positives j2 (argmax b) and j3 (argmax a) → sens 1/2; j1's argmax is b → spec 3/4
    assert (one.positives, one.auc, one.sensitivity, one.specificity) == (2, pytest.approx(6.5 / 8), 0.5, 0.75)


def test_vectorised_intervals_are_those_of_dermlab_intervals(monkeypatch):
    from dermlab.stats.intervals import binary_auc, stratified_bootstrap

    predictions, metadata = case_frames()
    table = subgroup_table(predictions, metadata, ("other", "melanoma"), n_boot=300, seed=7)
    for (attribute, group), members in MEMBERS.items():
        rows = predictions[predictions.image.isin(members)]
        labels, scores = rows.target.to_numpy(), rows.melanoma.to_numpy()
        reference = stratified_bootstrap(binary_auc, labels, scores, n_boot=300, seed=7)
        sensitivity = stratified_bootstrap(lambda y, s: (s[y == 1] > 0.5).mean(), labels, scores, n_boot=300, seed=7)
        found = row(table, attribute, group)
        assert (found.auc, found.auc_low, found.auc_high) == pytest.approx(
            (reference.estimate, reference.low, reference.high), abs=1e-12)
        assert (found.sensitivity_low, found.sensitivity_high) == pytest.approx((sensitivity.low, sensitivity.high))
    from dermlab.stats.intervals import stratified_resamples

    strata = np.random.default_rng(3).integers(0, 7, 300)  # the one-call draws are the per-class loop's draws:
    rng = np.random.default_rng(11)  # per resample, per class in sorted order, rng.choice of the class's rows
    by_class = [np.flatnonzero(strata == c) for c in np.unique(strata)]
    loop = np.stack([np.concatenate([rng.choice(m, size=len(m), replace=True) for m in by_class]) for _ in range(50)])
    np.testing.assert_array_equal(stratified_resamples(strata, 50, seed=11), loop)
    monkeypatch.setattr("dermlab.stats.subgroups.CHUNK_VALUES", 10)  # a few replicates per call: the same table
    pd.testing.assert_frame_equal(subgroup_table(predictions, metadata, ("other", "melanoma"), n_boot=300, seed=7),
                                  table)
