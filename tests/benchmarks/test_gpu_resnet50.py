"""``benchmarks/gpu_resnet50.py``: the prepared GPU benchmark, smoke-run on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


# --- the prepared GPU benchmark ----------------------------------------------------------------------------------
def test_gpu_benchmark_runs_on_the_cpu(tmp_path):
    """``benchmarks/gpu_resnet50.py --device cpu --steps 3 --batch-size 4 --size 64``: the bare loop and
    ``dermlab fit`` rows both measure ResNet-50, and the table gives their ratios (a smoke test of the script the
    lent GPU will run; CPU numbers mean little). 18 s on the 2-core development machine."""
    command = [sys.executable, str(REPO / "benchmarks" / "gpu_resnet50.py"), "--device", "cpu", "--steps", "3",
               "--batch-size", "4", "--size", "64", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "WANDB_MODE": "disabled"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = {line.split("|")[0].strip(): [cell.strip() for cell in line.split("|")[1:]]
            for line in done.stdout.splitlines() if line.count("|") == 4}
    assert set(rows) == {"variant", "bare", "fit"}
    assert float(rows["bare"][0]) > 0 and float(rows["fit"][0]) > 0
    assert float(rows["bare"][1]) == 1.0  # the fit row's ratio, from numbers printed to 0.1 images/s:
    assert float(rows["fit"][1]) == pytest.approx(float(rows["fit"][0]) / float(rows["bare"][0]), rel=0.1)
    assert "2,470 images/s on one A100" in done.stdout
