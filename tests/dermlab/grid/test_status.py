"""``dermlab grid status`` (``dermlab/grid/status.py``): the cell folders and the scheduler read together."""

from __future__ import annotations

import json
import subprocess
import sys

from dermlab.grid import spec, status
from tests.conftest import REPO
from tests.helpers.grids import write_grid
from tests.helpers.slurm import states


def test_status_reads_the_cell_folders_and_the_scheduler(tmp_path, fake_slurm):
    grid = spec.load(write_grid(tmp_path / "g.yaml", axes={"seed_everything": list(range(8))}, rows=[]))
    base = grid.run_root(tmp_path / "runs", False)
    folders = [base / cell.id for cell in grid.cells()]
    for index, folder in enumerate(folders[:7]):
        folder.mkdir(parents=True)
        if index in (1, 2, 3, 4, 5):
            (folder / "job.json").write_text(json.dumps({"launcher": "slurm", "job_id": str(10 + index), "after": [],
                                                          "stderr": str(folder / "submitit" / "x_0_log.err")}))
    (folders[0] / "result.json").write_text("{}")
    (folders[3] / "failed.json").write_text(json.dumps({"returncode": 1, "log": str(folders[3] / "cell.log")}))
    for index in (5, 6):
        (folders[index] / "checkpoints").mkdir()
        (folders[index] / "checkpoints" / "last.ckpt").write_bytes(b"")
    states(fake_slurm, j11="RUNNING", j12="PENDING", j13="FAILED", j14="OUT_OF_MEMORY", j15="TIMEOUT")
    found = [(s.state, s.detail) for s in status.cell_statuses(grid, tmp_path / "runs")]
    assert [state for state, _ in found] == ["finished", "running", "queued", "failed", "failed", "interrupted",
                                             "interrupted", "not started"]
    assert found[3][1] == f"job 13 FAILED; log {folders[3] / 'cell.log'}"
    assert found[4][1] == f"job 14 OUT_OF_MEMORY; log {folders[4] / 'submitit' / 'x_0_log.err'}"  # no cell.log yet
    assert "job 15 TIMEOUT" in found[5][1] and "resumes from last.ckpt" in found[5][1]
    assert "1 finished, 1 running, 1 queued, 2 failed, 2 interrupted, 1 not started" in status.render(
        grid, tmp_path / "runs")
    done = subprocess.run([sys.executable, "-m", "dermlab", "grid", "status", str(tmp_path / "g.yaml"), "--runs",
                           str(tmp_path / "runs")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and "seed_everything=2  queued  (job 12)" in done.stdout, done.stderr[-2000:]
