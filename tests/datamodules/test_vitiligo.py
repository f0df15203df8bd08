"""``datamodules/vitiligo.py``: class folders of other names, and an empty one."""

from __future__ import annotations

import pytest

from datamodules import VitiligoDataModule
from dermlab.errors import DataError
from tests.helpers.datamodules import make


def test_empty_class_folder(copy_of):
    root = copy_of("vitiligo")
    for path in (root / "val" / "Yes").iterdir():
        path.unlink()
    with pytest.raises(DataError, match="class folder '.*val/Yes' holds no images"):
        VitiligoDataModule(str(root)).table("val")


def test_vitiligo_other_class_names(synthetic, tmp_path):
    import shutil

    shutil.copytree(synthetic("vitiligo"), tmp_path / "v")
    for split in ("train", "val", "test"):
        (tmp_path / "v" / split / "Yes").rename(tmp_path / "v" / split / "vitiligo")
        (tmp_path / "v" / split / "No").rename(tmp_path / "v" / split / "other")
    renamed = make("vitiligo", tmp_path / "v", classes=("other", "vitiligo"))
    original = make("vitiligo", synthetic("vitiligo"))
    assert renamed.class_names == ("other", "vitiligo")
    assert renamed.table("train").labels.tolist() == original.table("train").labels.tolist()
