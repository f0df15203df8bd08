"""Shared fixtures: tiny synthetic data sets in the official layout and CLI arguments for fast runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers.paths import SPACED

os.environ["WANDB_MODE"] = "disabled"  # no W&B in tests
# the preprocessing cache (resized copies, the split audit's fingerprints) of this test session only
os.environ.setdefault("DERMLAB_CACHE_DIR", tempfile.mkdtemp(prefix="dermlab-test-cache-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist worker per core: each keeps to one torch thread, so the workers do not
    # fight over the cores (subprocesses the tests start inherit the setting).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
# The real sample files (see its SOURCES.md), outside the repository. Tests reach them through this name only: a test
# that does carries the `real_data` mark (`pytest -m real_data` runs them all), which pytest_collection_modifyitems
# below checks.
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: every collected test is checked, whatever runs
def pytest_collection_modifyitems(config, items):
    """Exactly the tests that read the real files of ``SHARED_DATA`` (tests/helpers/real_data.py finds them by
    reading the tests) carry the ``real_data`` mark; collection fails naming any other."""
    from tests.helpers.real_data import reads_real_data

    tests_root = Path(__file__).resolve().parent
    unmarked, needless = [], []
    for item in items:
        function = getattr(item, "originalname", None)
        if function is None or not item.path.is_relative_to(tests_root):
            continue
        reads = reads_real_data(item.path, function, tests_root)
        marked = item.get_closest_marker("real_data") is not None
        if reads and not marked:
            unmarked.append(item.nodeid)
        elif marked and not reads:
            needless.append(item.nodeid)
    longest_first(items)
    if unmarked or needless:
        lines = [f"{n}: reads ../shared/data (SHARED_DATA) but lacks @pytest.mark.real_data" for n in unmarked]
        lines += [f"{n}: marked real_data but reads nothing of ../shared/data (SHARED_DATA)" for n in needless]
        raise pytest.UsageError("the real_data mark is wrong on:\n  " + "\n  ".join(lines))


@pytest.fixture(scope="session")
def isic2017_root(tmp_path_factory) -> Path:
    """24 training, 8 validation and 12 test images of 32 px (read-only: copy before breaking it)."""
    from datamodules.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("isic2017")
    write_synthetic("isic2017", root, n=24, size=32, seed=0)
    return root


def data_root_of(parent: Path, **data_sets: Path) -> Path:
    """A data root ``parent/data_root`` holding each data set's folder (:mod:`dermlab.files.data_folders` names) as a
    link to the given twin: ``data_root_of(tmp_path, ham10000=twin)`` -> a folder with ``ham10000/``."""
    from dermlab.files.data_folders import FOLDERS

    root = parent / "data_root"
    root.mkdir(parents=True, exist_ok=True)
    for name, folder in data_sets.items():
        (root / FOLDERS[name].folder).symlink_to(folder, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def isic2017_data_root(isic2017_root, tmp_path_factory) -> Path:
    """A data root as ``DATA_ROOT`` / ``--data-root`` take it: a folder holding ``isic2017/`` (the tiny set)."""
    return data_root_of(tmp_path_factory.mktemp("data"), isic2017=isic2017_root)


@pytest.fixture
def broken_root(isic2017_root, tmp_path) -> Path:
    """A private copy of the tiny set that a test may damage."""
    copy = tmp_path / "isic2017"
    shutil.copytree(isic2017_root, copy)
    return copy


def tiny_args(root: Path, run_dir: Path, *extra: str) -> list[str]:
    """Arguments that turn experiments/demo_synthetic.yaml into a seconds-long CPU run on ``root``."""
    return [
        "-c", str(REPO / "experiments" / "demo_synthetic.yaml"),
        "--data.init_args.root", str(root),
        "--data.init_args.image_size", "32",
        "--data.init_args.batch_size", "8",
        "--data.init_args.num_workers", "0",
        "--model.init_args.backbone", "test_resnet",
        "--trainer.default_root_dir", str(run_dir),
        "--run.wandb", "disabled",
        *extra,
    ]


@pytest.fixture
def copy_of(synthetic, tmp_path):
    """``copy_of(name)`` → a private copy of the tiny synthetic ``name`` set that a test may damage."""
    def make(name: str) -> Path:
        shutil.copytree(synthetic(name), tmp_path / name)
        return tmp_path / name
    return make


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """``synthetic(name)`` → a tiny synthetic copy of that data set (24 training images, 32 px), written once."""
    from datamodules.synthetic import write_synthetic

    roots: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name not in roots:
            roots[name] = tmp_path_factory.mktemp(name)
            write_synthetic(name, roots[name], n=24, size=32, seed=0)
        return roots[name]

    return make


def derm7pt_release(root: Path) -> Path:
    """``root/release_v0`` from the real derm7pt meta files in ../shared/data, each image an empty file (the
    datamodule indexes names; decoding is lazy). Returns the release folder."""
    import pandas as pd

    release = root / "release_v0"
    (release / "meta").mkdir(parents=True)
    for name in ("meta.csv", "train_indexes.csv", "valid_indexes.csv", "test_indexes.csv"):
        shutil.copy(SHARED_DATA / "derm7pt" / name, release / "meta")
    for path in pd.read_csv(release / "meta" / "meta.csv").derm:
        (release / "images" / path).parent.mkdir(parents=True, exist_ok=True)
        (release / "images" / path).write_bytes(b"x")  # a placeholder: decoding is lazy
    return release


HAM_METADATA = SHARED_DATA / "ham10000" / "HAM10000_metadata.csv"


def touch_images(folder: Path, ids) -> None:
    """Placeholder ``<id>.jpg`` files (one byte, not an image): the datamodules index names and refuse empty files
    at set-up, but decode lazily."""
    folder.mkdir(parents=True, exist_ok=True)
    for image_id in ids:
        (folder / f"{image_id}.jpg").write_bytes(b"x")


@pytest.fixture(scope="session")
def ham_root(tmp_path_factory) -> Path:
    """The real HAM10000 metadata (10,015 rows) with an empty file per image (read-only: copy before changing)."""
    import pandas as pd

    if not HAM_METADATA.is_file():
        pytest.skip("../shared/data (real HAM10000 metadata) not present")
    root = tmp_path_factory.mktemp("ham_meta")
    shutil.copy(HAM_METADATA, root)
    touch_images(root / "HAM10000_images_part_1", pd.read_csv(HAM_METADATA).image_id)
    return root


@pytest.fixture(autouse=True)
def _fresh_log_levels():
    """``dermlab``'s entry point turns the suite's INFO lines on (:func:`dermlab.cli.show_log_lines`); each test
    starts and ends without that, so what one test's command set does not change what the next one logs."""
    import logging

    from dermlab.cli import PACKAGES

    yield
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(logging.NOTSET)
        for handler in [h for h in logger.handlers if getattr(h, "dermlab", False)]:
            logger.removeHandler(handler)


# --- paths -------------------------------------------------------------------------------------------------------


@pytest.fixture
def spaced_root(isic2017_root, tmp_path) -> Path:
    """The tiny ISIC 2017 set in ``<tmp>/My Data é/isic2017`` (a data root named with a space and ``é``)."""
    root = tmp_path / SPACED / "isic2017"
    shutil.copytree(isic2017_root, root)
    return root


# The longest slow tests, longest first (as the CI's --durations report orders them). `make test-slow` hands the
# workers one test at a time (--maxschedchunk 1), so starting these first lets the other worker take the many short
# ones meanwhile, instead of one worker finishing alone on a long test at the end.
LONGEST_FIRST = (
    "test_learning.py::test_end_attention_model_learns_the_synthetic_ham_task",
    "test_make_targets.py::test_make_paper_smoke_runs_on_twins_in_the_documented_data_root[dds]",
    "test_docs.py::test_the_docs_build_without_a_warning",
    "test_docs.py::test_the_pages_commands_run_on_twins_in_the_documented_layout[docs/tuning.md]",
    "test_docs.py::test_the_pages_commands_run_on_twins_in_the_documented_layout[docs/models.md]",
    "test_docs.py::test_the_pages_commands_run_on_twins_in_the_documented_layout[docs/commands/index.md]",
    "test_docs.py::test_the_pages_commands_run_on_twins_in_the_documented_layout[docs/statistics.md]",
    "test_make_targets.py::test_make_paper_smoke_runs_on_twins_in_the_documented_data_root[metadata]",
    "test_make_targets.py::test_make_paper_smoke_runs_on_twins_in_the_documented_data_root[patch]",
    "test_make_targets.py::test_make_paper_smoke_runs_on_twins_in_the_documented_data_root[external]",
    "test_cross_dataset.py::test_the_cross_dataset_grid_renders_on_the_synthetic_default",
)


def longest_first(items: list) -> None:
    """Put :data:`LONGEST_FIRST` at the front of ``items``, in that order; every other test keeps its place."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}

    def place(item):
        file, _, test = item.nodeid.partition("::")
        return rank.get(f"{file.rsplit('/', 1)[-1]}::{test}", len(rank))

    items[:] = sorted(items, key=place)  # sorted() is stable
