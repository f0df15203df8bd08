"""``datamodules/ham10000.py``: the HAM10000 pool, its metadata and bad input, and every split scheme on the real
metadata (10,015 rows; images stand in as empty files)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from datamodules import HAM10000DataModule
from dermlab.errors import DataError
from dermlab.files.metadata import age_band
from tests.conftest import SHARED_DATA, touch_images
from tests.helpers.datamodules import make
from tests.helpers.leakage import HAM, needs_shared
from tests.helpers.real_metadata import HAM_COUNTS


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
@pytest.mark.parametrize("variant", ["dataverse_8col", "kaggle_7col"])
def test_ham10000_metadata_variants(tmp_path, variant):
    source = HAM if variant == "dataverse_8col" else SHARED_DATA / "ham10000" / "legacy_7col" / "HAM10000_metadata.csv"
    shutil.copy(source, tmp_path)
    touch_images(tmp_path / "HAM10000_images_part_1", pd.read_csv(source).image_id)
    data = HAM10000DataModule(str(tmp_path))
    pool = data.table("pool")
    assert len(pool) == 10015 and len(set(pool.groups)) == 7470
    assert dict(zip(data.class_names, np.bincount(pool.labels).tolist(), strict=True)) == HAM_COUNTS


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
def test_kfold_is_lesion_grouped_and_stratified(ham_root):
    pool = HAM10000DataModule(str(ham_root)).table("pool")
    overall = np.bincount(pool.labels, minlength=7) / len(pool)
    seen = []
    for fold in range(5):
        data = HAM10000DataModule(str(ham_root), split="kfold", fold=fold, n_folds=5)
        train, val, test = data.table("train"), data.table("val"), data.table("test")
        assert not set(train.groups) & set(test.groups) and not set(val.groups) & set(test.groups)
        assert len(train) + len(val) + len(test) == 10015
        assert np.abs(np.bincount(test.labels, minlength=7) / len(test) - overall).max() < 0.01
        seen += test.ids
    assert sorted(seen) == sorted(pool.ids)  # every image is tested exactly once


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
def test_patch_four_stratified_lesion_grouped_parts(ham_root):
    """Four parts of ~2,504 images, each with the pool's class shares (±1 percentage point), no lesion in two."""
    parts = []
    for fold in range(3):
        data = HAM10000DataModule(str(ham_root), split="patch", fold=fold)
        train, val, test = (data.table(s) for s in ("train", "val", "test"))
        assert len(set(train.ids) | set(val.ids) | set(test.ids)) == 10015
        assert not (set(train.ids) & set(val.ids)) and not (set(val.ids) & set(test.ids))
        parts.append(val)
    parts.append(test)
    counts = np.array(list(HAM_COUNTS.values()))
    for part in parts:
        share = np.bincount(part.labels, minlength=7) / len(part)
        assert np.abs(share - counts / counts.sum()).max() < 0.01 and abs(len(part) - 10015 / 4) < 100


@pytest.mark.real_data
@pytest.mark.skipif(not HAM.is_file(), reason="../shared/data not present")
def test_weighting_two_grouped_80_20_splits(ham_root):
    tests = []
    for fold in (0, 1):
        data = HAM10000DataModule(str(ham_root), split="weighting", fold=fold)
        train, val, test = (data.table(s) for s in ("train", "val", "test"))
        groups = [set(t.groups) for t in (train, val, test)]
        assert not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
        assert 0.18 < len(test) / 10015 < 0.22 and len(train) + len(val) + len(test) == 10015
        tests.append(set(test.ids))
    assert tests[0] != tests[1]


def ham(root, **kwargs):
    return HAM10000DataModule(str(root), split="kfold", n_folds=3, image_size=32, num_workers=0, **kwargs)


def test_renamed_column(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    csv.write_text(csv.read_text().replace("lesion_id,image_id,dx,", "lesion_id,image_id,diagnosis,", 1))
    with pytest.raises(DataError, match="HAM10000_metadata.csv' lacks column\\(s\\) dx"):
        ham(root).table("train")


def test_duplicate_ids(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DataError, match=f"lists image_id {lines[1].split(',')[1]} more than once"):
        ham(root).table("train")


def test_missing_image_stops_or_is_skipped_with_a_log(copy_of, caplog):
    root = copy_of("ham10000")
    victim = next((root / "HAM10000_images_part_1").glob("*.jpg"))
    victim.unlink()
    with pytest.raises(DataError, match=f"1 image\\(s\\) listed in .* are missing .*{victim.name}.*on_bad_image: skip"):
        ham(root).table("pool")
    with caplog.at_level(logging.WARNING):
        pool = ham(root, on_bad_image="skip").table("pool")
    assert len(pool) == 23 and victim.stem not in pool.ids
    assert "left out 1 of 24 images" in caplog.text and victim.stem in caplog.text


def test_corrupt_image_is_skipped_with_a_log(copy_of, caplog):
    root = copy_of("ham10000")
    victim = next((root / "HAM10000_images_part_2").glob("*.jpg"))
    victim.write_bytes(victim.read_bytes()[:100])
    with caplog.at_level(logging.WARNING):
        pool = ham(root, on_bad_image="skip").table("pool")
    assert victim.stem not in pool.ids and len(pool) == 23 and victim.stem in caplog.text


def test_unknown_diagnosis(copy_of):
    root = copy_of("ham10000")
    csv = root / "HAM10000_metadata.csv"
    text = csv.read_text().splitlines()
    fields = text[1].split(",")
    fields[2] = "scc"
    csv.write_text("\n".join([text[0], ",".join(fields), *text[2:]]) + "\n")
    with pytest.raises(DataError, match="column 'dx' holds \\['scc'\\]"):
        ham(root).table("pool")


def test_ham10000_pool_labels_groups_and_dx_type(synthetic):
    root = synthetic("ham10000")
    meta = pd.read_csv(root / "HAM10000_metadata.csv")
    data = make("ham10000", root)
    pool = data.table("pool")
    codes = ["mel", "nv", "bcc", "akiec", "bkl", "df", "vasc"]
    assert [codes[i] for i in pool.labels] == meta.dx.tolist()
    assert pool.groups == meta.lesion_id.tolist() and pool.extra["dx_type"] == meta.dx_type.tolist()
    assert meta.lesion_id.duplicated().any()  # the generator repeats lesions, like HAM
    assert {p.parent.name for p in pool.paths} == {"HAM10000_images_part_1", "HAM10000_images_part_2"}


def test_ham10000_flat_folder_is_accepted(synthetic, tmp_path):
    source = synthetic("ham10000")
    (tmp_path / "images").mkdir()
    for path in source.glob("HAM10000_images_part_*/*.jpg"):
        (tmp_path / "images" / path.name).write_bytes(path.read_bytes())
    (tmp_path / "HAM10000_metadata.csv").write_bytes((source / "HAM10000_metadata.csv").read_bytes())
    assert len(make("ham10000", tmp_path).table("pool")) == 24


def test_diagnosis_guided_weights_reach_the_batch(synthetic):
    weights = {"consensus": 1.0, "follow_up": 2.0, "confocal": 3.0, "histo": 4.0}
    data = make("ham10000", synthetic("ham10000"), dx_type_weights=weights, dx_type_weights_on="all")
    table = data.table("train")
    assert table.weights.tolist() == [weights[t] for t in table.extra["dx_type"]]
    sample = data.dataset("train")[0]
    assert sample["weight"] == weights[table.extra["dx_type"][0]]


ROLES = ("train", "val", "test")


def assert_no_shared_lesion(data):
    tables = {s: data.table(s) for s in ROLES}
    for i, a in enumerate(ROLES):
        for b in ROLES[i + 1:]:
            assert not set(tables[a].ids) & set(tables[b].ids), f"{a}/{b} share images"
            if len(tables[a]) and len(tables[b]):
                assert not set(tables[a].groups) & set(tables[b].groups), f"{a}/{b} share lesions"
    return tables


# --- the schemes on the real HAM10000 metadata ------------------------------------------------------------
SCHEMES = [("kfold", f) for f in range(5)] + [("patch", f) for f in range(3)] + [("weighting", f) for f in (0, 1)]


@pytest.mark.real_data
@needs_shared
@pytest.mark.parametrize(("scheme", "fold"), SCHEMES)
def test_every_scheme_and_fold_keeps_lesions_on_one_side(ham_root, scheme, fold):
    data = HAM10000DataModule(str(ham_root), split=scheme, fold=fold, audit_pixels=False)  # images are empty files
    tables = assert_no_shared_lesion(data)
    assert sum(len(t) for t in tables.values()) == 10015
    audit = data.audit(screened=False)
    assert not audit.leak and audit.shared_lesions.get("train/test", 0) == 0
    if scheme == "weighting":  # the paper's protocol: the whole 80 % trains, nothing validates
        assert len(tables["val"]) == 0 and 0.18 < len(tables["test"]) / 10015 < 0.22


@pytest.mark.real_data
@needs_shared
def test_kfold_tests_each_image_once_and_validates_on_other_images(ham_root):
    tested, validated = [], []
    for fold in range(5):
        data = HAM10000DataModule(str(ham_root), split="kfold", fold=fold)
        tested += data.table("test").ids
        validated += data.table("val").ids
        assert set(data.table("val").ids) == set(HAM10000DataModule(str(ham_root), split="kfold",
                                                                     fold=(fold + 1) % 5).table("test").ids)
    assert sorted(tested) == sorted(validated) and len(set(tested)) == 10015


@pytest.mark.real_data
@needs_shared
def test_patch_parts_hold_the_pools_class_proportions(ham_root):
    pool = HAM10000DataModule(str(ham_root)).table("pool")
    overall = np.bincount(pool.labels, minlength=7) / len(pool)
    data = [HAM10000DataModule(str(ham_root), split="patch", fold=f) for f in range(3)]
    parts = [d.table("val") for d in data] + [data[0].table("test")]
    assert sorted(i for p in parts for i in p.ids) == sorted(pool.ids)  # four parts cover the pool once
    for part in parts:
        share = np.bincount(part.labels, minlength=7) / len(part)
        assert np.abs(share - overall).max() < 0.01, (share, overall)  # within 1 percentage point
        assert 0.23 < len(part) / len(pool) < 0.27
    lesion_sets = [set(p.groups) for p in parts]
    assert all(not (a & b) for i, a in enumerate(lesion_sets) for b in lesion_sets[i + 1:])


# --- the datamodules' metadata hooks ------------------------------------------------------------------------------
def test_ham10000_metadata_of_the_synthetic_twin(synthetic):
    from datamodules import HAM10000DataModule

    root = synthetic("ham10000")
    data = HAM10000DataModule(str(root), split="patch", num_workers=0)
    frame = data.metadata("test")
    csv = pd.read_csv(root / "HAM10000_metadata.csv").set_index("image_id")
    assert list(frame.index) == data.table("test").ids and list(frame.columns) == ["age_band", "sex", "localization"]
    for image_id, found in frame.iterrows():
        assert found.sex == csv.sex[image_id] and found.localization == csv.localization[image_id]
        assert found.age_band == age_band(csv.age[image_id])
    assert data.lesion_masks("test") == {}  # the synthetic twin ships no HAM10000 masks
