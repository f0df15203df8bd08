"""``datamodules/base.py``: what every datamodule does alike: split files and the audit in the run folder, data
folders named with spaces, ``é`` or not even UTF-8, empty or absent images found at set-up (a partial download of
the real HAM10000), and training splits too small for batch normalisation."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from datamodules import HAM10000DataModule, ISIC2017DataModule
from dermlab.cli import main
from dermlab.errors import DataError
from tests.conftest import HAM_METADATA, REPO
from tests.helpers.images import data
from tests.helpers.partial_download import HAM


def test_split_files_are_written_to_the_run_folder(synthetic, tmp_path):
    from dermlab.cli import main
    from tests.conftest import REPO

    main(["fit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
          "--data", str(REPO / "experiments" / "base" / "data" / "ham10000.yaml"),
          "--data.init_args.root", str(synthetic("ham10000")), "--data.init_args.n_folds", "3",
          "--data.init_args.image_size", "32", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
          "--model.init_args.backbone", "test_resnet", "--trainer.default_root_dir", str(tmp_path / "run"),
          "--run.wandb", "disabled", "--trainer.fast_dev_run", "true"])
    train = pd.read_csv(tmp_path / "run" / "splits" / "train.csv")
    val = pd.read_csv(tmp_path / "run" / "splits" / "val.csv")
    assert list(train.columns) == ["image_id", "label", "lesion_id", "dx_type"]
    assert not set(train.lesion_id) & set(val.lesion_id)
    audit = json.loads((tmp_path / "run" / "splits" / "audit.json").read_text())  # the test fold is the third
    assert audit["splits"]["train"] == len(train) and len(train) + len(val) + audit["splits"]["test"] == 24
    assert not audit["leak"] and set(audit["shared_lesions"].values()) == {0}


def test_datamodule_cache_and_audit_on_a_folder_named_with_a_space_and_e(spaced_root, tmp_path, capsys):
    module = data(spaced_root, cache_dir=str(tmp_path / "cache é x"), max_side=32)
    module.setup("fit")
    assert next(iter(module.val_dataloader()))["image"].shape == (8, 3, 32, 32)
    assert module.split_audit is not None and not module.split_audit.leak
    main(["audit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"), "--data.init_args.root", str(spaced_root),
          "--data.init_args.cache_dir", str(tmp_path / "cache é x"), "--near-duplicates"])
    report = json.loads(capsys.readouterr().out)
    assert report["root"] == str(spaced_root) and report["leak"] is False


@pytest.mark.skipif(sys.platform != "linux", reason="only Linux keeps file names that are not UTF-8")
def test_a_folder_whose_name_is_not_utf8_is_cached_and_audited(isic2017_root, tmp_path):
    """A folder unpacked from an archive made on a Latin-1 system: 'Donn\\xe9es' (bytes, not UTF-8)."""
    parent = tmp_path / os.fsdecode(b"Donn\xe9es")
    try:
        shutil.copytree(isic2017_root, parent / "isic2017")
    except (OSError, UnicodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    module = data(parent / "isic2017", cache_dir=str(tmp_path / "cache"), max_side=32, near_duplicates=True)
    module.setup("fit")  # the split audit fingerprints every image, keyed by its path
    assert not module.split_audit.leak
    assert next(iter(module.val_dataloader()))["image"].shape == (8, 3, 32, 32)


def test_an_empty_image_stops_set_up_naming_it_and_skip_leaves_it_out(copy_of):
    """A zero-byte file (a download that stopped) is found at set-up by the same stat that finds absent images,
    not when its batch loads mid-epoch."""
    root = copy_of("isic2017")
    victim = sorted((root / "ISIC-2017_Training_Data").glob("*.jpg"))[3]
    victim.write_bytes(b"")
    data = ISIC2017DataModule(str(root), image_size=32, num_workers=0)
    with pytest.raises(DataError, match=rf"1 image\(s\) listed in '.*ISIC-2017_Training_Part3_GroundTruth.csv' are "
                                        rf"empty \(0 bytes\), e.g. '.*{victim.name}'.*on_bad_image: skip"):
        data.setup("fit")
    skipping = ISIC2017DataModule(str(root), image_size=32, num_workers=0, on_bad_image="skip")
    skipping.setup("fit")
    assert victim.stem not in skipping.table("train").ids


def ham(**kwargs):
    return HAM10000DataModule(str(HAM), image_size=64, num_workers=0, **kwargs)


@pytest.mark.real_data
@pytest.mark.skipif(not HAM_METADATA.is_file(), reason="../shared/data not present")
def test_absent_images_stop_with_one_message_naming_the_count_and_the_option():
    with pytest.raises(DataError) as error:
        ham().setup("fit")
    message = str(error.value)
    assert message.startswith("9,940 image(s) listed in '") and "of 10,015 listed" in message
    assert "train 5,960 of 6,008, val 1,993 of 2,003, test 1,987 of 2,004" in message
    assert message.endswith("set on_bad_image: skip to go on with the 75 present ones.")


@pytest.mark.real_data
@pytest.mark.skipif(not HAM_METADATA.is_file(), reason="../shared/data not present")
def test_skip_goes_on_with_the_present_images_and_one_warning(caplog, tmp_path):
    data = ham(on_bad_image="skip", batch_size=48, cache_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="datamodules.base"):
        data.setup()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "left out 9,940 of 10,015 images" in warnings[0]
    assert "going on with the 75 present ones" in warnings[0] and len(warnings[0]) < 600
    sizes = {s: len(data.table(s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 48, "val": 10, "test": 17}
    assert data.split_audit.to_json()["leak"] is False
    batch = next(iter(data.train_dataloader()))  # the 48 training images hold all seven classes
    assert batch["image"].shape == (48, 3, 64, 64)
    assert np.bincount(batch["label"].numpy(), minlength=7).tolist() == [5, 8, 8, 7, 9, 5, 6]


def isic2016_fit(root, run, val_size: int) -> list[str]:
    return ["fit", "-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
            "--data", str(REPO / "experiments" / "base" / "data" / "isic2016.yaml"),
            "--data.init_args.root", str(root), "--data.init_args.val_size", str(val_size),
            "--data.init_args.image_size", "32", "--data.init_args.batch_size", "8", "--data.init_args.num_workers",
            "0", "--model.init_args.backbone", "test_resnet", "--trainer.max_epochs", "1", "--run.wandb",
            "disabled", "--trainer.default_root_dir", str(run)]


@pytest.mark.filterwarnings("ignore")
def test_a_last_training_batch_of_one_image_is_dropped_not_a_batchnorm_traceback(synthetic, tmp_path, capsys):
    """24 training images less 7 for validation: 17 = 2 × 8 + 1. Batch normalisation cannot train on the last
    batch of one image (PyTorch: "Expected more than 1 value per channel"); the loader drops it, saying so."""
    main(isic2016_fit(synthetic("isic2016"), tmp_path / "run", val_size=7))
    assert "INFO: training: 17 images per process make a last batch of one image" in capsys.readouterr().err
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.filterwarnings("ignore")
def test_a_training_split_of_one_image_is_refused_naming_it(synthetic, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(isic2016_fit(synthetic("isic2016"), tmp_path / "run", val_size=23))
    assert exit_info.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"dermlab: error: the training split of '.*ISBI2016_ISIC_Part3_Training_GroundTruth.csv' holds "
                    r"1 image\(s\): training needs at least 2", message), message
