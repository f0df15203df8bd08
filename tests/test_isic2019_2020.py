"""ISIC 2019 and ISIC 2020 (issue #22): the real truth files parse with their published counts, the folds keep
lesions / patients whole, the duplicates list removes one of each pair, ``dermlab score`` agrees with
``isic-challenge-scoring`` and a run on each synthetic twin goes through ``dermlab fit`` / ``predict``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from isic_challenge_scoring import metrics as isic_metrics
from isic_challenge_scoring.classification import ClassificationMetric, ClassificationScore
from isic_challenge_scoring.types import ScoreError

from datamodules import ISIC2019DataModule, ISIC2020DataModule
from datamodules.audit import read_duplicate_pairs
from datamodules.datasets.isic2020 import copies_to_drop
from dermlab.challenge.scoring import score
from dermlab.challenge.truth import ISIC2019_CATEGORIES, read_truth
from dermlab.errors import DataError
from tests.conftest import REPO, SHARED_DATA

TRUTH_2019 = SHARED_DATA / "isic2019" / "ISIC_2019_Training_GroundTruth.csv"
TRUTH_2020 = SHARED_DATA / "isic2020" / "ISIC_2020_Training_GroundTruth.csv"
DUPLICATES_2020 = SHARED_DATA / "isic2020" / "ISIC_2020_Training_Duplicates.csv"
needs_2019 = pytest.mark.skipif(not TRUTH_2019.is_file(), reason=f"real truth absent: {TRUTH_2019}")
needs_2020 = pytest.mark.skipif(not (TRUTH_2020.is_file() and DUPLICATES_2020.is_file()),
                                reason=f"real truth or duplicates list absent: {TRUTH_2020.parent}")
COUNTS_2019 = {"MEL": 4522, "NV": 12875, "BCC": 3323, "AK": 867, "BKL": 2624, "DF": 239, "VASC": 253, "SCC": 628}
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


def one_image(folder) -> None:
    """The folder exists and holds an image (the loaders refuse an empty folder; tables are read, not decoded)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "placeholder.jpg").touch()


# --- copies_to_drop: one of each group of copies stays ----------------------------------------------------------

def test_copies_to_drop_keeps_the_first_listed_image_of_each_group():
    ids = ["a", "b", "c", "d", "e", "f"]
    # b = a and c = b chain into one group {a, b, c}; e = d; x is not in the table; f has no copy
    pairs = [("b", "a"), ("c", "b"), ("e", "d"), ("x", "a")]
    assert copies_to_drop(ids, pairs) == [1, 2, 4]
    assert copies_to_drop(ids, [("c", "b"), ("b", "a")]) == [1, 2]  # the order of the pairs does not matter
    assert copies_to_drop(ids, []) == []


# --- the real truth files -----------------------------------------------------------------------------------------

@needs_2019
def test_isic2019_real_truth_parses_with_the_published_class_counts(tmp_path):
    truth = read_truth(TRUTH_2019)
    assert truth.layout == "isic2019" and len(truth.labels) == 25331
    assert truth.labels.sum().astype(int).to_dict() == {**COUNTS_2019, "UNK": 0}
    assert truth.labels.index.str.endswith("_downsampled").sum() == 2074
    shutil.copy(TRUTH_2019, tmp_path)
    one_image(tmp_path / "ISIC_2019_Training_Input")
    data = ISIC2019DataModule(str(tmp_path))
    pool = data.raw_table("pool")
    assert data.class_names == tuple(COUNTS_2019) and data.num_classes == 8
    assert dict(zip(data.class_names, np.bincount(pool.labels).tolist(), strict=True)) == COUNTS_2019
    assert pool.paths[pool.ids.index("ISIC_0000017_downsampled")].name == "ISIC_0000017_downsampled.jpg"
    assert pool.groups is None  # the released copy here has no metadata CSV: the folds refuse to run without it
    with pytest.raises(DataError, match="ISIC_2019_Training_Metadata.csv' .*is missing"):
        data.raw_table("train")


@needs_2020
def test_isic2020_real_truth_patient_folds_and_duplicates(tmp_path):
    truth = read_truth(TRUTH_2020)
    assert truth.layout == "isic2020" and len(truth.labels) == 33126
    assert int(truth.labels.target.sum()) == 584 and len(set(truth.groups)) == 2056
    pairs = read_duplicate_pairs(DUPLICATES_2020)
    assert len(pairs) == 425
    for name in (TRUTH_2020, DUPLICATES_2020):
        shutil.copy(name, tmp_path)
    one_image(tmp_path / "train")
    data = ISIC2020DataModule(str(tmp_path), audit_pixels=False)
    pool = data.raw_table("pool")
    left_out = set(truth.labels.index) - set(pool.ids)
    assert len(pool) == 33126 - 425 and len(left_out) == 425  # no image is in two pairs: one of each pair goes
    kept = set(pool.ids)
    assert all((a in kept) != (b in kept) for a, b in pairs) and not {b for _, b in pairs} - left_out
    assert int(pool.labels.sum()) == 581  # 3 of the pairs are melanoma images
    tables = {split: data.raw_table(split) for split in ("train", "val", "test")}
    patients = {split: set(t.groups) for split, t in tables.items()}
    assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
    assert not patients["val"] & patients["test"]
    assert sum(len(t) for t in tables.values()) == len(pool)
    assert sum(int(t.labels.sum()) for t in tables.values()) == int(pool.labels.sum())
    audit = data.audit(screened=False)
    assert not audit.leak and audit.known_duplicates and audit.duplicate_images == 0
    # keeping both images of each pair: the audit applies the list, and no pair straddles two splits (each pair's
    # images belong to one patient, which the folds keep on one side)
    everything = ISIC2020DataModule(str(tmp_path), audit_pixels=False, drop_duplicates=False)
    assert len(everything.raw_table("pool")) == 33126
    audit = everything.audit(screened=False)
    assert not audit.leak and audit.duplicate_images == 0 and sum(audit.splits[s] for s in tables) == 33126


# --- the synthetic twins ----------------------------------------------------------------------------------------

def test_isic2019_twin_official_layout_and_lesion_grouped_folds(synthetic):
    root = synthetic("isic2019")
    raw = (root / "ISIC_2019_Training_GroundTruth.csv").read_bytes()
    assert raw.startswith(b"image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK\r\n") and b",1.0," in raw
    truth = pd.read_csv(root / "ISIC_2019_Training_GroundTruth.csv")
    metadata = pd.read_csv(root / "ISIC_2019_Training_Metadata.csv", dtype=str)
    assert list(metadata.columns) == ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"]
    assert truth.UNK.eq(0).all() and metadata.image.tolist() == truth.image.tolist()
    downsampled = truth.image.str.endswith("_downsampled")
    assert downsampled.sum() == 3  # ids 1, 11 and 21 of 24
    assert all((root / "ISIC_2019_Training_Input" / f"{i}.jpg").is_file() for i in truth.image)
    assert metadata.lesion_id[downsampled].isna().all() and metadata.lesion_id.dropna().duplicated().any()
    data = ISIC2019DataModule(str(root), n_folds=3, image_size=32, num_workers=0)
    tables = [data.table(s) for s in ("train", "val", "test")]
    assert sorted(i for t in tables for i in t.ids) == sorted(truth.image)
    lesions = [{g for g in t.groups if g} for t in tables]
    assert not lesions[0] & lesions[1] and not lesions[0] & lesions[2] and not lesions[1] & lesions[2]
    pool = data.table("pool")
    assert [data.class_names[k] for k in pool.labels] == truth.iloc[:, 1:9].idxmax(axis=1).tolist()
    assert list(data.metadata("test").columns) == ["sex", "age_band", "localization"]


def test_isic2020_twin_lists_its_copies_and_the_datamodule_drops_them(synthetic):
    root = synthetic("isic2020")
    truth = pd.read_csv(root / "ISIC_2020_Training_GroundTruth.csv", dtype=str).set_index("image_name")
    pairs = read_duplicate_pairs(root / "ISIC_2020_Training_Duplicates.csv")
    assert pairs and truth.target.eq("1").sum() >= 3
    for a, b in pairs:  # byte-identical copies of the same patient's image
        assert (root / "train" / f"{a}.jpg").read_bytes() == (root / "train" / f"{b}.jpg").read_bytes()
        assert truth.patient_id[a] == truth.patient_id[b] and truth.target[a] == truth.target[b]
    data = ISIC2020DataModule(str(root), n_folds=3, image_size=32, num_workers=0)
    kept = data.table("pool").ids
    assert len(kept) == 24 - len({b for _, b in pairs}) and not {b for _, b in pairs} & set(kept)
    patients = [set(data.table(s).groups) for s in ("train", "val", "test")]
    assert not patients[0] & patients[1] and not patients[0] & patients[2] and not patients[1] & patients[2]
    everything = ISIC2020DataModule(str(root), n_folds=3, drop_duplicates=False).table("pool")
    assert len(everything) == 24 and data.class_names == ("benign", "melanoma")


# --- bad input ----------------------------------------------------------------------------------------------------

def test_isic2019_refuses_unk_rows_missing_metadata_rows_and_schemes_without_a_test_truth(copy_of):
    root = copy_of("isic2019")
    csv = root / "ISIC_2019_Training_GroundTruth.csv"
    truth = pd.read_csv(csv, dtype=str)
    with pytest.raises(DataError, match="has no official test set"):
        ISIC2019DataModule(str(root), split="holdout").table("test")
    metadata = pd.read_csv(root / "ISIC_2019_Training_Metadata.csv", dtype=str)
    metadata.drop(index=5).to_csv(root / "ISIC_2019_Training_Metadata.csv", index=False)
    with pytest.raises(DataError, match=rf"no row for 1 image\(s\) .*e\.g\. {truth.image[5]}"):
        ISIC2019DataModule(str(root)).table("pool")
    truth.iloc[3, 1:] = ["0.0"] * 8 + ["1.0"]
    truth.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row 5 \({truth.image[3]}\) is marked UNK"):
        ISIC2019DataModule(str(root)).table("pool")


def test_isic2020_refuses_contradicting_rows_empty_patients_and_a_missing_duplicates_list(copy_of):
    root = copy_of("isic2020")
    csv = root / "ISIC_2020_Training_GroundTruth.csv"
    truth = pd.read_csv(csv, dtype=str)
    (root / "ISIC_2020_Training_Duplicates.csv").unlink()
    with pytest.raises(DataError, match="drop_duplicates needs .*ISIC_2020_Training_Duplicates.csv"):
        ISIC2020DataModule(str(root)).table("pool")
    assert len(ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")) == 24
    broken = truth.copy()
    broken.loc[2, "patient_id"] = ""
    broken.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row 4 \({truth.image_name[2]}\) has no patient_id"):
        ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")
    broken = truth.copy()
    row = int(np.flatnonzero(truth.target.eq("0"))[0])
    broken.loc[row, "target"] = "1"
    broken.to_csv(csv, index=False)
    with pytest.raises(DataError, match=rf"row {row + 2} \({truth.image_name[row]}\) has target 1 but "
                                        "benign_malignant 'benign'"):
        ISIC2020DataModule(str(root), drop_duplicates=False).table("pool")


# --- dermlab fit and predict on each synthetic twin ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["isic2019", "isic2020"])
def test_fit_and_predict_through_the_cli_on_the_synthetic_twin(name, synthetic, tmp_path):
    from dermlab.cli import main

    root, run = synthetic(name), tmp_path / "run"
    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--data", str(REPO / "experiments" / "base" / "data" / f"{name}.yaml"),
            "--data.init_args.root", str(root), "--data.init_args.n_folds", "3", "--data.init_args.image_size", "32",
            "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
            "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(run),
            "--run.wandb", "disabled"]
    main(["fit", *args, "--trainer.fast_dev_run", "true"])
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert not audit["leak"] and set(audit["shared_lesions"].values()) == {0}
    assert audit["lesion_ids"] == {"train": True, "val": True, "test": True}
    assert audit["fingerprinted"] == sum(n for n in audit["splits"].values() if n)  # the pixel check ran
    main(["predict", *args])
    test_ids = pd.read_csv(run / "splits" / "test.csv", dtype=str).image_id.tolist()  # written by predict's set-up
    submission = pd.read_csv(run / "submission_test.csv", dtype={0: str})
    truth = pd.read_csv(root / ("ISIC_2019_Training_GroundTruth.csv" if name == "isic2019"
                                else "ISIC_2020_Training_GroundTruth.csv"), dtype=str)
    id_column = truth.columns[0]
    assert sorted(submission[id_column]) == sorted(test_ids)
    if name == "isic2019":
        assert list(submission.columns) == ["image", *ISIC2019_CATEGORIES] and submission.UNK.eq(0.0).all()
        assert np.allclose(submission.iloc[:, 1:9].sum(axis=1), 1.0, atol=1e-4)
    else:
        assert list(submission.columns) == ["image_name", "target"] and submission.target.between(0, 1).all()
    truth[truth[id_column].isin(test_ids)].to_csv(tmp_path / "test_truth.csv", index=False)  # the fold's truth
    result = score(tmp_path / "test_truth.csv", run / "submission_test.csv")
    assert result["layout"] == name and result["images"] == len(test_ids)


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
