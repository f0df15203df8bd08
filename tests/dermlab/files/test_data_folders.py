"""``dermlab/files/data_folders.py``: every data set's folder under a data root, and the folder a datamodule was
given recognised and named when it is another data set's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datamodules import DATAMODULES, HAM10000DataModule, ISIC2016DataModule, ISIC2017DataModule
from dermlab.errors import DataError
from dermlab.files.data_folders import FOLDERS, OFFICIAL_FILES, data_set_folder, recognise, require_data_set_folder
from tests.conftest import REPO

TWINS = [name for name in DATAMODULES if name != "isic2018_task2"]  # task 2's twin is task 1's folder with masks


def setup_error(cls, root, **fixed) -> str:
    with pytest.raises(DataError) as caught:
        cls(str(root), num_workers=0, **fixed).setup("fit")
    return str(caught.value)


def test_an_isic_2018_task_3_folder_given_to_isic_2017(synthetic):
    message = setup_error(ISIC2017DataModule, synthetic("isic2018_task3"))
    assert "ISIC-2017_Training_Part3_GroundTruth.csv' does not exist" in message
    assert ("This folder looks like ISIC 2018 Task 3 (it holds ISIC2018_Task3_Training_GroundTruth.csv); its config "
            "is isic2018_task3.") in message
    assert ("ISIC 2017 (Part 3) expects ISIC-2017_Training_Part3_GroundTruth.csv, "
            "ISIC-2017_Validation_Part3_GroundTruth.csv, ISIC-2017_Test_v2_Part3_GroundTruth.csv") in message


def test_a_ham10000_folder_given_to_isic_2016(synthetic):
    message = setup_error(ISIC2016DataModule, synthetic("ham10000"))
    assert "ISBI2016_ISIC_Part3_Training_GroundTruth.csv' does not exist" in message
    assert "looks like HAM10000 (it holds HAM10000_metadata.csv); its config is ham10000." in message


def test_a_harvard_dataverse_tab_file_counts_as_its_csv(synthetic, tmp_path):
    root = tmp_path / "ham"
    shutil.copytree(synthetic("ham10000"), root)
    (root / "HAM10000_metadata.csv").rename(root / "HAM10000_metadata.tab")
    shutil.rmtree(root / "HAM10000_images_part_1")
    shutil.rmtree(root / "HAM10000_images_part_2")
    assert recognise(root) == {"ham10000": "HAM10000_metadata.tab"}


@pytest.mark.parametrize("twin", TWINS)
def test_each_twin_is_recognised_as_itself_and_named_by_every_other_datamodule(synthetic, twin):
    root = synthetic(twin)
    assert twin in recognise(root)
    for name, (cls, fixed) in DATAMODULES.items():
        if name in recognise(root):
            continue
        message = setup_error(cls, root, **fixed)
        assert f"); its config is {twin}" in message, (name, message)
        assert f"{OFFICIAL_FILES[name].title} expects {OFFICIAL_FILES[name].files[0]}" in message, (name, message)


def test_a_data_root_given_as_the_data_sets_folder(isic2017_data_root):
    message = setup_error(ISIC2017DataModule, isic2017_data_root)
    assert (f"This folder holds ISIC 2017 (Part 3) one folder down ('{isic2017_data_root / 'isic2017'}' holds "
            "ISIC-2017_Training_Part3_GroundTruth.csv): give that folder as the data set's root.") in message


def test_the_right_folder_with_a_file_missing_adds_nothing(broken_root):
    (broken_root / "ISIC-2017_Validation_Part3_GroundTruth.csv").unlink()
    message = setup_error(ISIC2017DataModule, broken_root)
    assert "ISIC-2017_Validation_Part3_GroundTruth.csv' does not exist" in message and "looks like" not in message


def test_a_folder_that_looks_like_nothing_adds_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert recognise(tmp_path) == {} and recognise(tmp_path / "absent") == {}
    assert "looks like" not in setup_error(HAM10000DataModule, tmp_path)


def test_every_config_name_has_a_folder_a_config_and_a_synthetic_twin():
    from datamodules.synthetic import WRITERS

    assert set(FOLDERS) <= set(WRITERS)
    for name in FOLDERS:
        assert (REPO / "experiments" / "base" / "data" / f"{name}.yaml").is_file(), name
    # the three ISIC 2018 tasks come in one download, so they share one folder
    assert {FOLDERS[f"isic2018_task{t}"].folder for t in (1, 2, 3)} == {"isic2018"}
    assert data_set_folder("/data", "isic2018_task3") == Path("/data/isic2018")
    with pytest.raises(DataError, match="isic_sample"):
        data_set_folder("/data", "isic_sample")  # the shipped sample is not under a data root


def test_a_missing_data_set_folder_names_the_folder_and_the_download_page(tmp_path):
    (tmp_path / "isic2017").mkdir()
    with pytest.raises(DataError) as error:
        require_data_set_folder(tmp_path, "ham10000")
    text = str(error.value)
    assert str(tmp_path / "ham10000") in text and "https://doi.org/10.7910/DVN/DBW86T" in text
    assert "isic2017" in text  # what is there instead
    with pytest.raises(DataError, match="does not exist"):
        require_data_set_folder(tmp_path / "nowhere", "isic2017")


def test_a_misnamed_folder_or_a_data_set_given_as_the_root_is_named_with_the_fix(tmp_path):
    (tmp_path / "a" / "HAM10000").mkdir(parents=True)
    with pytest.raises(DataError, match=r"Did you mean 'HAM10000'\? Rename it to ham10000"):
        require_data_set_folder(tmp_path / "a", "ham10000")
    own = tmp_path / "b" / "ham10000"
    (own / "HAM10000_images_part_1").mkdir(parents=True)  # the data set's own folder given as the data root
    with pytest.raises(DataError, match=rf"give its parent as the data root \(DATA_ROOT={tmp_path / 'b'}"):
        require_data_set_folder(own, "ham10000")
