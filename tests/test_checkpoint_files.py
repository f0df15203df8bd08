"""Checkpoints are checked before they are trusted (dermlab.files.checkpoints.read_checkpoint: ``--ckpt_path`` of fit,
test and predict, a grid cell's resume, ``pretrained_weights``) and written atomically (callbacks.checkpoint.
AtomicCheckpointIO, also under AsyncCheckpointIO): a save killed midway leaves the previous ``last.ckpt`` readable."""

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
from dermlab.cli import main
from dermlab.commands.trainer import build_cli
from dermlab.errors import DataError
from dermlab.files.checkpoints import read_checkpoint
from dermlab.grid.cell import run_cell_command
from lightning_modules.nets.backbone import create_backbone
from tests.conftest import REPO, tiny_args

pytestmark = pytest.mark.filterwarnings("ignore")
ASYNC = ["-c", str(REPO / "experiments" / "base" / "trainer" / "async_checkpoint.yaml")]


@pytest.fixture(scope="module")
def fitted(isic2017_root, tmp_path_factory) -> Path:
    """A one-epoch run folder (checkpoints/best-epoch00.ckpt and last.ckpt); copy it before damaging it."""
    run = tmp_path_factory.mktemp("fitted") / "run"
    build_cli(["fit", *tiny_args(isic2017_root, run, "--trainer.max_epochs", "1")])
    return run


@pytest.fixture
def damaged(fitted, tmp_path) -> Path:
    """A copy of the fitted run whose last.ckpt is cut to its first 100,000 bytes (a save killed midway)."""
    run = tmp_path / "run"
    shutil.copytree(fitted, run)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100_000])
    return run


def error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_resuming_from_a_truncated_last_ckpt_names_it_the_reason_and_the_other_checkpoints(isic2017_root, damaged,
                                                                                          capsys):
    last = damaged / "checkpoints" / "last.ckpt"
    for ckpt_path in ("last", str(last)):  # Lightning resolves "last"; a file is checked at parse time
        message = error_line(capsys, ["fit", *tiny_args(isic2017_root, damaged, "--trainer.max_epochs", "2"),
                                      "--ckpt_path", ckpt_path])
        assert message.startswith(f"dermlab: error: checkpoint '{last}' cannot be used: it is truncated or not a "
                                  "PyTorch file (100,000 bytes")
        assert f"Other checkpoints in '{last.parent}': best-epoch00.ckpt (saved " in message
        assert message.endswith("pass one of them as --ckpt_path instead.")


@pytest.mark.parametrize("verb", ["test", "predict"])
def test_test_and_predict_refuse_a_damaged_or_foreign_file(isic2017_root, damaged, verb, capsys):
    folder = damaged / "checkpoints"
    (folder / "notes.ckpt").write_text("not a checkpoint\n")
    torch.save(torch.load(folder / "best-epoch00.ckpt", weights_only=False)["state_dict"], folder / "bare.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "lightning_modules.LesionSegmenter"}},
               folder / "segmenter.ckpt")
    args = [verb, *tiny_args(isic2017_root, damaged), "--ckpt_path"]
    message = error_line(capsys, [*args, str(folder / "notes.ckpt")])
    assert "notes.ckpt' cannot be used: it is truncated or not a PyTorch file (17 bytes" in message
    assert "Damaged too: last.ckpt." in message and "best-epoch00.ckpt (saved " in message
    message = error_line(capsys, [*args, str(folder / "bare.ckpt")])
    assert "bare.ckpt' cannot be used: it is not a Lightning checkpoint (no 'state_dict'; it holds " in message
    message = error_line(capsys, [*args, str(folder / "segmenter.ckpt")])
    assert ("segmenter.ckpt' cannot be used: it is another model's: it was saved by a "
            "lightning_modules.LesionSegmenter run (LesionSegmenter), this config builds a "
            "lightning_modules.LesionClassifier (LesionClassifier)") in message


def test_a_grid_cell_does_not_resume_from_a_damaged_last_ckpt(isic2017_root, damaged):
    last = damaged / "checkpoints" / "last.ckpt"
    with pytest.raises(DataError, match=rf"checkpoint '{last}' cannot be used: it is truncated .* best-epoch00.ckpt "
                                        r"\(saved .*\); copy one of them over last.ckpt to resume from it, or "
                                        r"delete last.ckpt to start the cell over\."):
        run_cell_command([str(damaged / "result.json"), "--", *tiny_args(isic2017_root, damaged)])


def test_pretrained_weights_from_a_damaged_run_checkpoint(damaged):
    last = damaged / "checkpoints" / "last.ckpt"
    with pytest.raises(DataError, match=rf"checkpoint '{last}' cannot be used: it is truncated .*; give one of them "
                                        r"as pretrained_weights instead\."):
        create_backbone("test_resnet", 2, str(last))


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
