"""Fixtures of the tuning tests: the fake SLURM commands of the grid launcher's tests, and trials in this process."""

import pytest

from dermlab.tuning import launch, trial
from tests.dermlab.grid.conftest import fake_slurm  # noqa: F401  (a fixture, used by name)


@pytest.fixture
def in_process(monkeypatch):
    """Trials in this process: the local launcher's worker calls run_trial instead of starting `dermlab tune _trial`."""
    def worker(study_dir, slot, devices=None, launcher=None):
        try:
            trial.run_trial(study_dir, slot)
        except Exception:
            return 1
        return 0

    monkeypatch.setattr(launch, "worker", worker)
