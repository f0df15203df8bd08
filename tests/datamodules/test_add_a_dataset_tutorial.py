"""The code of the "Add a data set" tutorial runs as printed: its reader, ``Dataset``, datamodule and synthetic
writer, taken from the page, read the twin they write, with whole patients on one side of every split."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest
from torch.utils.data import DataLoader

from tests.conftest import REPO

PAGE = REPO / "docs" / "tutorials" / "add-a-dataset.md"
PYTHON_BLOCK = re.compile(r"^```python\n(?P<body>.*?)^```\s*$", flags=re.S | re.M)


def block_defining(name: str) -> str:
    """The page's one Python block that defines ``name``."""
    found = [m.group("body") for m in PYTHON_BLOCK.finditer(PAGE.read_text()) if f" {name}(" in m.group("body")]
    assert len(found) == 1, f"{PAGE.name}: {len(found)} Python blocks define {name}"
    return found[0]


@pytest.fixture
def tutorial_modules():
    """The page's modules, loaded under the names the page gives them; removed again afterwards."""
    names = {"datamodules.datasets.clinic": "ClinicReader", "datamodules.clinic": "ClinicDataModule",
             "datamodules.synthetic.clinic": "write_clinic"}
    loaded = {}
    for module_name, defined in names.items():
        module = types.ModuleType(module_name)
        module.__file__ = str(PAGE)
        sys.modules[module_name] = module
        exec(compile(block_defining(defined), f"{PAGE}:{defined}", "exec"), module.__dict__)  # noqa: S102
        loaded[defined] = module
    yield loaded
    for module_name in names:
        sys.modules.pop(module_name, None)


def test_the_tutorial_data_set_reads_its_twin_in_both_forms(tutorial_modules, tmp_path):
    root = tmp_path / "clinic"
    counts = tutorial_modules["write_clinic"].write_clinic(root, n=60, size=32, seed=0)
    reader_module, module_module = tutorial_modules["ClinicReader"], tutorial_modules["ClinicDataModule"]
    data = module_module.ClinicDataModule(str(root), batch_size=4, num_workers=0)
    reader = reader_module.ClinicReader(root)
    tables = {split: data.table(split) for split in ("train", "val", "test")}
    assert sum(len(t) for t in tables.values()) == counts["pool"]
    for split, table in tables.items():
        assert table.ids == reader.table(split).ids and len(table) > 0, split
    patients = {split: set(t.groups) for split, t in tables.items()}
    assert not patients["train"] & patients["test"] and not patients["train"] & patients["val"]
    assert not patients["val"] & patients["test"]
    assert set(np.concatenate([t.labels for t in tables.values()]).tolist()) == {0, 1}
    plain = reader_module.ClinicDataset(root, "test", image_size=32)
    batch = next(iter(DataLoader(plain, batch_size=3)))
    assert tuple(batch["image"].shape) == (3, 3, 32, 32) and batch["image_id"] == tables["test"].ids[:3]
