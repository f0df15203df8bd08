"""``dermlab/grid/job_resources.py``: a grid's job resources from the grid file and the command line."""

from __future__ import annotations

import pytest

from dermlab.errors import DataError
from dermlab.grid import job_resources, spec
from tests.helpers.grids import write_grid


def test_job_resources_from_the_grid_file_and_the_command_line(tmp_path):
    assert job_resources.minutes(90, "x") == 90
    assert job_resources.minutes("45:30", "x") == 46          # MM:SS, seconds round up
    assert job_resources.minutes("2:30:00", "x") == 150       # HH:MM:SS
    assert job_resources.minutes("1-12", "x") == 36 * 60      # D-HH
    assert job_resources.minutes("2-00:30:01", "x") == 2 * 1440 + 31
    assert job_resources.gigabytes("64G", "x") == 64 and job_resources.gigabytes("512M", "x") == 0.5
    assert job_resources.gigabytes("1TB", "x") == 1024 and job_resources.gigabytes(16, "x") == 16
    grid = job_resources.from_mapping({"gpus_per_cell": 4, "cpus_per_cell": 32, "time": "12:00:00", "mem": "256G",
                                       "partition": "gpu", "sbatch": {"account": "lab"}, "setup": ["module load a"]},
                                      "grid")
    both = job_resources.from_mapping({"partition": "long", "sbatch": {"qos": "high", "requeue": True},
                                       "setup": ["source env"]}, "cli", grid)
    assert (both.gpus_per_cell, both.tasks, both.time_min, both.mem_gb, both.partition) == (4, 4, 720, 256, "long")
    assert both.sbatch == {"account": "lab", "qos": "high", "requeue": True}
    assert both.setup == ("module load a", "source env")
    parameters = job_resources.slurm_parameters(both, "t/c", ["7", "8"])
    assert parameters["cpus_per_task"] == 8 and parameters["tasks_per_node"] == 4
    assert parameters["slurm_dependency"] == "afterok:7:8"
    assert parameters["slurm_additional_parameters"]["kill-on-invalid-dep"] == "yes"
    assert job_resources.slurm_parameters(job_resources.Resources(gpus_per_cell=0), "c", [])["gpus_per_node"] is None
    for raw, message in [({"time": "noon"}, "time 'noon' is not minutes"), ({"mem": "lots"}, "mem 'lots'"),
                         ({"gpus": 1}, "unknown key"), ({"gpus_per_cell": -1}, "gpus_per_cell must be an integer"),
                         ({"gpus_per_cell": 2, "cpus_per_cell": 5}, "must split evenly over the cell's 2"),
                         ({"sbatch": {"dependency": "afterok:1"}}, "'dependency' is set by dermlab"),
                         ({"sbatch": {"time": "1:00:00"}}, "use time")]:
        with pytest.raises(DataError, match=message):
            job_resources.from_mapping(raw, "grid 'g.yaml': slurm")
    with pytest.raises(DataError, match="grid '.*g.yaml': slurm: unknown key"):
        spec.load(write_grid(tmp_path / "g.yaml", slurm={"nodes": 2}))
