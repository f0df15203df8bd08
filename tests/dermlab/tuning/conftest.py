"""Fixtures of the tuning tests: the fake SLURM commands of the grid launcher's tests."""

from tests.dermlab.grid.conftest import fake_slurm  # noqa: F401  (a fixture, used by name)
