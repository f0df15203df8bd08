"""The code of the "Add a data set" tutorial runs as printed: its reader, ``Dataset``, datamodule and synthetic
writer, taken from the page, read the twin they write, with whole patients on one side of every split."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

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


def test_the_tutorial_code_passes_the_package_lint(tmp_path):
    """Placed where the page says, the code passes ruff as the repository configures it (docstrings and types
    included), so a data set added by the tutorial keeps `make lint` and the lint test green."""
    places = {"datamodules/datasets/clinic.py": "ClinicReader", "datamodules/clinic.py": "ClinicDataModule",
              "datamodules/synthetic/clinic.py": "write_clinic"}
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    for package in ("dermlab", "datamodules", "lightning_modules", "callbacks"):  # ruff sorts imports by them
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    for place, defined in places.items():
        (tmp_path / place).write_text(block_defining(defined))
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run([str(ruff), "check", "--no-cache", *places], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_registrations_the_tutorial_names_make_synth_write_the_twin(tutorial_modules, tmp_path, monkeypatch,
                                                                        capsys):
    """With the writer in ``WRITERS`` and its entry in ``SIZES`` (the page's example values), ``dermlab synth
    --dataset clinic`` writes the twin; a wrong folder is named by ``OFFICIAL_FILES``."""
    import datamodules.synthetic as synthetic
    from dermlab.cli import main
    from dermlab.files import data_folders

    page = PAGE.read_text()
    size = re.search(r'`"clinic": (Size\(.*?\))`', page, flags=re.S).group(1).replace("\n", " ")
    official = re.search(r'`"clinic": (OfficialFiles\(.*?\))`', page, flags=re.S).group(1)
    monkeypatch.setitem(synthetic.WRITERS, "clinic", tutorial_modules["write_clinic"].write_clinic)
    monkeypatch.setitem(synthetic.SIZES, "clinic", eval(size, {"Size": synthetic.Size}))  # noqa: S307
    monkeypatch.setitem(data_folders.OFFICIAL_FILES, "clinic",
                        eval(official, {"OfficialFiles": data_folders.OfficialFiles}))  # noqa: S307
    main(["synth", "--dataset", "clinic", "--out", str(tmp_path / "clinic"), "--n", "20", "--size", "32"])
    assert (tmp_path / "clinic" / "labels.csv").is_file() and '"dataset": "clinic"' in capsys.readouterr().out
    assert "clinic" in data_folders.recognise(tmp_path / "clinic")
