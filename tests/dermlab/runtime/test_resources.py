"""What a run takes from the machine (dermlab.runtime.resources): worker and thread counts, and freed memory kept."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dermlab.runtime import resources


@pytest.mark.parametrize("cores, on_cpu, processes, expected", [
    (1, True, 1, 0),    # one core: decode between steps
    (2, True, 1, 1),    # the CI machine: one worker
    (16, True, 1, 4),   # a quarter of the cores on a CPU run
    (16, False, 1, 8),  # GPU: cores less one, at most 8
    (16, False, 4, 3),  # 4 GPUs on 16 cores: 4 per process less one
    (2, False, 4, 1),   # never fewer than one on a GPU
])
def test_default_workers_from_the_cores(monkeypatch, cores, on_cpu, processes, expected):
    monkeypatch.setattr(resources, "available_cores", lambda: cores)
    assert resources.default_workers(on_cpu, processes) == expected


def test_the_datamodule_takes_the_machines_default_unless_told(monkeypatch, isic2017_root):
    from datamodules import ISIC2017DataModule

    monkeypatch.setattr(resources, "available_cores", lambda: 8)
    assert ISIC2017DataModule(str(isic2017_root)).loader_workers() == 2  # no trainer, no CUDA: a CPU run
    assert ISIC2017DataModule(str(isic2017_root), num_workers=3).loader_workers() == 3


def test_run_threads_sets_torchs_thread_count(isic2017_root, tmp_path):
    import torch

    from dermlab.commands.trainer import build_cli
    from tests.conftest import tiny_args

    before = torch.get_num_threads()
    try:
        build_cli(tiny_args(isic2017_root, tmp_path / "run", "--run.threads", "1"), run=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


MAPPINGS = textwrap.dedent("""
    import sys
    import torch
    from dermlab.runtime.resources import keep_freed_memory

    def mappings():  # (size of the [heap], sizes of anonymous mappings of 64 MiB or more), in MiB
        heap, anonymous = 0, []
        for line in open("/proc/self/maps"):
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            size = (high - low) >> 20
            if fields[-1] == "[heap]":
                heap = size
            elif len(fields) == 5 and size >= 64:
                anonymous.append(size)
        return heap, anonymous

    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    before = mappings()
    x = torch.empty(64 << 20, dtype=torch.uint8).fill_(1)  # 64 MiB: above glibc's largest mmap threshold
    during = mappings()
    del x
    print((before, during, mappings()))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's; /proc/self/maps is Linux's")
def test_kept_memory_comes_from_the_heap_and_stays_there():
    """glibc serves a 64 MiB tensor with its own mmap (unmapped when freed, so the next step page-faults it back);
    with keep_freed_memory it comes from the heap, which keeps it after the tensor is freed."""
    import ast

    def run(mode: str):
        return ast.literal_eval(subprocess.run([sys.executable, "-c", MAPPINGS, mode], capture_output=True,
                                               text=True, check=True).stdout)

    seen = {mode: run(mode) for mode in ("glibc", "keep")}
    glibc_before, glibc_during, glibc_after = seen["glibc"]
    keep_before, keep_during, keep_after = seen["keep"]
    # (the kernel may merge a new anonymous mapping with a neighbour, so sizes are summed)
    assert sum(glibc_during[1]) >= sum(glibc_before[1]) + 64 and glibc_during[0] < glibc_before[0] + 64  # own mmap
    assert sum(glibc_after[1]) == sum(glibc_before[1])  # unmapped when freed
    assert sum(keep_during[1]) < sum(keep_before[1]) + 64  # no new mapping for it: the heap grew instead
    assert keep_during[0] >= keep_before[0] + 64 and keep_after[0] >= keep_before[0] + 64  # and keeps it


def test_workers_load_batches_after_the_parent_used_opencvs_threads(isic2017_root):
    """A forked worker must not reconfigure OpenCV's thread pool (cv2.setNumThreads hangs there once the parent
    has used the pool); run in a child process so a hang ends in a timeout, not a stuck suite."""
    code = textwrap.dedent(f"""
        import cv2, numpy as np
        from datamodules import ISIC2017DataModule
        cv2.GaussianBlur(np.zeros((2000, 2000, 3), np.uint8), (31, 31), 5)  # starts OpenCV's worker threads
        data = ISIC2017DataModule({str(isic2017_root)!r}, image_size=32, batch_size=4, num_workers=1,
                                  audit_pixels=False)
        data.setup("fit")
        print(next(iter(data.train_dataloader()))["image"].shape[0])
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "4", done.stderr[-2000:]


@pytest.mark.parametrize("flush", [True, False])
def test_run_flush_denormal_treats_denormal_floats_as_zero(isic2017_root, tmp_path, flush):
    """1e-39 is below float32's smallest normal number (1.18e-38): with flushing, arithmetic on it gives 0."""
    import torch

    from dermlab.commands.trainer import build_cli
    from tests.conftest import tiny_args

    torch.set_flush_denormal(False)  # torch's default (an earlier CLI test in this process may have set it)
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # made after: with flushing on, even the conversion gives 0
    assert float(tiny * 1.0) != 0.0
    try:
        build_cli(tiny_args(isic2017_root, tmp_path / "run", "--run.flush_denormal", str(flush).lower()), run=False)
        assert (float(tiny * 1.0) == 0.0) is flush
    finally:
        torch.set_flush_denormal(False)
