"""``callbacks/checkpoint.py``: ``AtomicCheckpointIO`` (also under AsyncCheckpointIO) writes beside the target and
renames, so a save that fails or is killed midway leaves the previous ``last.ckpt`` readable."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from callbacks.checkpoint import AtomicCheckpointIO
from dermlab.files.checkpoints import read_checkpoint
from tests.conftest import REPO, tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")
ASYNC = ["-c", str(REPO / "experiments" / "base" / "trainer" / "async_checkpoint.yaml")]


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    io, last = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.zeros(100)}, "epoch": 0}, last)
    real_save = torch.save

    def disk_full(obj, file, *args, **kwargs):  # half the bytes reach the file, then the disk is full
        real_save(obj, buffer := __import__("io").BytesIO())
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"state_dict": {"w": torch.ones(100)}, "epoch": 1}, last)
    monkeypatch.undo()
    assert read_checkpoint(last)["epoch"] == 0 and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


CHILD = r"""
import io, os, sys, time
from pathlib import Path
import torch
from dermlab.commands.trainer import build_cli

*args, last, marker = sys.argv[1:]
checkpoint_io = build_cli(args, run=False).trainer.strategy.checkpoint_io  # what `dermlab fit` saves with
checkpoint_io.save_checkpoint({"state_dict": {"w": torch.zeros(10_000)}, "epoch": 0}, last)
checkpoint_io.teardown()  # the first save is complete (also when asynchronous)
real_save, real_sendfile = torch.save, os.sendfile

def stall():
    Path(marker).write_text("half written")
    time.sleep(600)  # killed here

def half_save(obj, file, *a, **k):  # into a file: half of the bytes, then stall (into memory: as usual)
    if isinstance(file, io.BytesIO):
        return real_save(obj, file, *a, **k)
    real_save(obj, buffer := io.BytesIO())
    file = open(file, "wb") if isinstance(file, (str, os.PathLike)) else file
    file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    file.flush()
    stall()

def half_sendfile(out_fd, in_fd, offset, count):  # a copy between file systems: half of it, then stall
    real_sendfile(out_fd, in_fd, offset, os.fstat(in_fd).st_size // 2)
    stall()

torch.save, os.sendfile = half_save, half_sendfile
checkpoint_io.save_checkpoint({"state_dict": {"w": torch.ones(10_000)}, "epoch": 1}, last)
checkpoint_io.teardown()
"""


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_save_killed_midway_leaves_the_previous_last_ckpt_readable(isic2017_root, tmp_path, asynchronous):
    """``kill -9`` in the middle of writing last.ckpt, with the system temporary folder on another file system than
    the run (as with a node-local /tmp on a cluster): Lightning's own save copies its staged file over last.ckpt
    there, which the kill truncates; the suite's writes beside the target and renames."""
    other = Path("/dev/shm")
    if not other.is_dir() or not os.access(other, os.W_OK) or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs a writable /dev/shm on another file system than the test's folder")
    run, marker = tmp_path / "run", tmp_path / "stalled"
    last = run / "checkpoints" / "last.ckpt"
    args = [*tiny_args(isic2017_root, run), *(ASYNC if asynchronous else [])]
    scratch = Path(__import__("tempfile").mkdtemp(dir=other))
    env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args, str(last), str(marker)], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), f"the save never started: {child.poll()} {child.stderr.read()[-2000:]}"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        child.kill()
        shutil.rmtree(scratch, ignore_errors=True)
    assert read_checkpoint(last)["epoch"] == 0  # the previous last.ckpt, whole
    leftover = [p.name for p in last.parent.iterdir() if p.name != "last.ckpt"]
    assert leftover == [f".last.ckpt.{child.pid}.tmp"]  # the killed write, hidden beside it
    AtomicCheckpointIO().save_checkpoint({"state_dict": {}, "epoch": 2}, last)  # the next save removes it
    assert [p.name for p in last.parent.iterdir()] == ["last.ckpt"] and read_checkpoint(last)["epoch"] == 2
