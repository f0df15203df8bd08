"""Fixtures of the grid tests (tests/dermlab/grid)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.slurm import FAKES


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    """A folder of fake ``sbatch``/``srun``/``sacct``/``scancel`` put first on PATH; write job states to its
    ``states`` file as ``<id>|<STATE>|`` lines."""
    folder = tmp_path / "slurm_bin"
    folder.mkdir()
    for name, body in FAKES.items():
        (folder / name).write_text(f'#!/bin/sh\nhere="$(dirname "$0")"\n{body}\n')
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder
