"""ISIC 2024 (SLICE-3D): images read from the official HDF5 file, patient-grouped folds, and its scoring."""

from __future__ import annotations

import json
import logging
import math
import os
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from datamodules import ISIC2024DataModule
from datamodules.cache import ImageCache
from datamodules.synthetic.isic2024 import TEST_COLUMNS, TRAIN_COLUMNS, write_hdf5
from dermlab.challenge.scoring import score
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from dermlab.errors import DataError
from dermlab.files.hdf5 import HDF5Image, handle, opened_here
from dermlab.files.io import image_size, load_rgb
from tests.conftest import REPO

CONTAINER = "train-image.hdf5"


def data(root, **kwargs) -> ISIC2024DataModule:
    return ISIC2024DataModule(str(root), n_folds=3, image_size=32, batch_size=4, num_workers=0, **kwargs)


def ids_of(root, part="train") -> list[str]:
    return pd.read_csv(root / f"{part}-metadata.csv").isic_id.tolist()


def test_synthetic_twin_has_the_official_layout(synthetic):
    root = synthetic("isic2024")
    train, test = pd.read_csv(root / "train-metadata.csv"), pd.read_csv(root / "test-metadata.csv")
    assert tuple(train.columns) == TRAIN_COLUMNS and len(TRAIN_COLUMNS) == 55 and len(train) == 24
    assert tuple(test.columns) == TEST_COLUMNS and len(TEST_COLUMNS) == 44 and len(test) == 12
    assert set(train.target) == {0, 1} and train.patient_id.value_counts().max() > 1  # patients of several crops
    assert not set(train.patient_id) & set(test.patient_id)
    assert list(pd.read_csv(root / "sample_submission.csv").columns) == ["isic_id", "target"]
    for part, ids in (("train", train.isic_id), ("test", test.isic_id)):
        with h5py.File(root / f"{part}-image.hdf5", "r") as file:
            assert sorted(file.keys()) == sorted(ids)
            stored = file[ids.iloc[0]]
            assert stored.shape == () and stored.dtype.kind == "S"  # one scalar byte string per image
    for image_id in train.isic_id:  # the HDF5 file holds the JPEG files' exact bytes
        jpeg = root / "train-image" / "image" / f"{image_id}.jpg"
        assert HDF5Image(root / CONTAINER, image_id).read_bytes() == jpeg.read_bytes()


def test_hdf5_images_give_the_pixels_of_the_jpeg_files_they_were_packed_from(synthetic, tmp_path):
    root = synthetic("isic2024")
    cache = ImageCache(tmp_path / "cache", max_side=20)
    for image_id in ids_of(root):
        stored, file = HDF5Image(root / CONTAINER, image_id), root / "train-image/image" / f"{image_id}.jpg"
        with Image.open(file) as reference:
            pixels = np.asarray(reference.convert("RGB"))  # Pillow alone, the file on disk
        assert pixels.shape == (32, 32, 3)
        assert np.array_equal(load_rgb(stored), pixels)
        assert np.array_equal(load_rgb(stored, max_side=20), load_rgb(file, max_side=20))
        assert np.array_equal(cache.image(stored), load_rgb(file, max_side=20))
        assert image_size(stored) == (32, 32)
    member = HDF5Image(root / CONTAINER, image_id)
    assert member.is_file() and member.name == image_id and member.parent == root / CONTAINER
    assert not HDF5Image(root / CONTAINER, "ISIC_9999999").is_file()
    assert not HDF5Image(tmp_path / "absent.hdf5", image_id).is_file()
    copy = pickle.loads(pickle.dumps(member))  # DataLoader workers started by spawn receive it pickled
    assert type(copy) is HDF5Image and copy == member and np.array_equal(load_rgb(copy), pixels)


class Reads(Dataset):
    """Each item: the process that read it, the HDF5 files that process holds a handle on, and the pixels."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        pixels = load_rgb(self.paths[index])
        return {"pid": os.getpid(), "opened": opened_here(), "pixels": pixels}


def test_each_dataloader_worker_opens_its_own_handle(synthetic):
    root = synthetic("isic2024")
    container = root / CONTAINER
    paths = [HDF5Image(container, i) for i in ids_of(root)]
    load_rgb(paths[0])  # the main process opens its handle before the workers start
    parent = handle(container)
    items = list(DataLoader(Reads(paths), batch_size=None, num_workers=2))
    workers = {item["pid"] for item in items}
    assert len(workers) == 2 and os.getpid() not in workers
    assert all(str(container) in item["opened"] for item in items)  # each worker opened its own
    for path, item in zip(paths, items, strict=True):
        assert np.array_equal(item["pixels"], load_rgb(root / "train-image/image" / f"{path.name}.jpg"))
    assert handle(container) is parent and parent.id.valid  # the main process's handle is untouched


def test_datamodule_batches_from_two_workers_hold_the_right_pixels(synthetic):
    root = synthetic("isic2024")
    module = data(root)
    module.num_workers = 2
    expected = torch.stack([module.dataset("test")[i]["image"] for i in range(len(module.table("test")))])
    batches = list(module.test_dataloader())
    assert torch.equal(torch.cat([b["image"] for b in batches]), expected)
    assert [i for b in batches for i in b["image_id"]] == module.table("test").ids


def test_patient_grouped_folds_share_no_patient(synthetic):
    root = synthetic("isic2024")
    metadata = pd.read_csv(root / "train-metadata.csv").set_index("isic_id")
    tested = []
    for fold in range(3):
        module = data(root, fold=fold)
        module.setup("fit")
        sides = {split: module.table(split) for split in ("train", "val", "test")}
        patients = {split: set(table.groups) for split, table in sides.items()}
        for table in sides.values():
            assert table.groups == metadata.loc[table.ids, "patient_id"].tolist()  # the groups are the patients
            assert table.labels.tolist() == metadata.loc[table.ids, "target"].tolist()
        assert not patients["train"] & patients["val"] and not patients["train"] & patients["test"]
        assert not patients["val"] & patients["test"]
        assert sorted(sum((t.ids for t in sides.values()), [])) == sorted(metadata.index)
        audit = module.split_audit
        assert not audit.leak and audit.lesion_ids == {"train": True, "val": True, "test": True}
        assert set(audit.shared_lesions.values()) == {0} and audit.fingerprinted == 24
        tested += sides["test"].ids
    assert sorted(tested) == sorted(metadata.index)  # every image tested once over the folds


def test_holdout_predicts_the_released_test_set(synthetic):
    root = synthetic("isic2024")
    module = data(root, split="holdout", val_size=6)
    test = module.table("test")
    assert test.ids == ids_of(root, "test") and set(test.labels) == {-1}
    assert all(p.parent == root / "test-image.hdf5" for p in test.paths)
    assert len(module.table("val")) == 6 and not set(module.table("val").groups) & set(module.table("train").groups)
    frame = module.submission(test.ids, np.tile([[0.25, 0.75]], (len(test), 1)))
    assert list(frame.columns) == ["isic_id", "target"] and frame.target.eq(0.75).all()
    with pytest.raises(DataError, match="has no labels"):
        module.ground_truth("test")
    metadata = module.metadata("test")
    source = pd.read_csv(root / "test-metadata.csv")
    assert metadata.sex.tolist() == source.sex.tolist()
    assert metadata.localization.tolist() == source.anatom_site_general.tolist()


def test_fit_predict_and_score_through_the_cli(synthetic, tmp_path):
    root, run = synthetic("isic2024"), tmp_path / "run"
    args = ["-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--data", str(REPO / "experiments" / "base" / "data" / "isic2024.yaml"),
            "--data.init_args.root", str(root), "--data.init_args.n_folds", "3", "--data.init_args.image_size", "32",
            "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "2",
            "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(run),
            "--run.wandb", "disabled"]
    fitted = build_cli(["fit", *args, "--trainer.max_epochs", "1"])
    steps = math.ceil(len(fitted.datamodule.table("train")) / 8)
    assert fitted.trainer.global_step == steps and (run / "checkpoints" / "last.ckpt").exists()
    assert fitted.model.class_names == ("benign", "malignant")
    audit = json.loads((run / "splits" / "audit.json").read_text())
    assert not audit["leak"] and audit["lesion_ids"] == {"train": True, "val": True, "test": True}
    main(["predict", *args, "--ckpt_path", str(run / "checkpoints" / "last.ckpt")])
    submission = pd.read_csv(run / "submission_test.csv")
    assert list(submission.columns) == ["isic_id", "target"] and submission.target.between(0, 1).all()
    truth = tmp_path / "solution.csv"
    fitted.datamodule.ground_truth("test").to_csv(truth, index=False)
    result = score(truth, run / "submission_test.csv")
    assert result["layout"] == "isic2024" and result["primary"] == "pauc_tpr80"
    assert result["images"] == len(submission) and 0 <= result["per_category"]["target"]["pauc_tpr80"] <= 0.2


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


# --- bad input --------------------------------------------------------------------------------------------------
def test_an_id_missing_from_the_hdf5_file_is_named(copy_of, caplog):
    root = copy_of("isic2024")
    ids = ids_of(root)
    victim = ids[5]
    jpegs = root / "train-image" / "image"
    write_hdf5(root / CONTAINER, {i: (jpegs / f"{i}.jpg").read_bytes() for i in ids if i != victim})
    with pytest.raises(DataError, match=f"1 image\\(s\\) listed in .*train-metadata.csv.* are missing .*{victim} in "
                                        f"'.*{CONTAINER}'.*on_bad_image: skip"):
        data(root).setup()
    with pytest.raises(DataError, match=f"'.*{CONTAINER}' holds no image '{victim}'"):
        load_rgb(HDF5Image(root / CONTAINER, victim))
    with caplog.at_level(logging.WARNING):
        pool = data(root, on_bad_image="skip").table("pool")
    assert len(pool) == 23 and victim not in pool.ids and victim in caplog.text


@pytest.mark.parametrize("column", ["isic_id", "target", "patient_id"])
def test_a_missing_column_is_named(copy_of, column):
    root = copy_of("isic2024")
    csv = root / "train-metadata.csv"
    pd.read_csv(csv).drop(columns=column).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"train-metadata.csv' lacks column\\(s\\) {column}; it has .*age_approx"):
        data(root).table("train")


def test_a_row_without_patient_or_with_a_bad_target_is_named(copy_of):
    root = copy_of("isic2024")
    csv = root / "train-metadata.csv"
    original = pd.read_csv(csv)
    original.assign(patient_id=original.patient_id.where(original.index != 3, "")).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"row 5 \\({original.isic_id[3]}\\) has no patient_id"):
        data(root).table("train")
    original.assign(target=original.target.where(original.index != 2, 2)).to_csv(csv, index=False)
    with pytest.raises(DataError, match=f"column 'target' row 4 \\({original.isic_id[2]}\\) holds '2'"):
        data(root).table("train")


def test_a_missing_or_damaged_hdf5_file_is_named(copy_of):
    root = copy_of("isic2024")
    (root / CONTAINER).unlink()
    with pytest.raises(DataError, match=f"'.*{CONTAINER}' does not exist.*kaggle.com/competitions/isic-2024"):
        data(root).table("train")
    (root / CONTAINER).write_bytes(b"not an HDF5 file")
    with pytest.raises(DataError, match=f"cannot open '.*{CONTAINER}' as an HDF5 file"):
        data(root).table("train")
