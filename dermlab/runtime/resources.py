"""What a run takes from the machine: CPU threads, DataLoader workers, and how freed memory is kept.

The cores are those this process may run on (``os.sched_getaffinity``: a SLURM or container CPU limit counts,
the host's core count does not). Figures: ``benchmarks/threads_and_workers.py`` and README *Performance*.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

# glibc mallopt(3) parameters
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_BYTES = 2**31 - 1  # the largest trim threshold mallopt takes (an int): free heap above 2 GiB is returned


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory in the process instead of returning it to the OS.

    By default glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
    unmaps it when freed, so a CPU training step that frees and re-allocates its activations page-faults them back
    in every step: measured on the 2-core machine, EfficientNet-Lite0 at 192 px, batch 32, spent 13.5 s of 24.8 s
    in the kernel (7.0 M page faults) and trained at 13.2 images/s; with ``mallopt(M_MMAP_MAX, 0)`` (no mmap
    allocations) and a trim threshold above any RAM, 1.8 s (0.7 M faults) and 20.6 images/s. The process then
    keeps its peak memory until it ends, as a training process does anyway. PyTorch's CPU tuning guide reaches
    the same end with jemalloc / tcmalloc preloaded (``LD_PRELOAD``), which also works and is left alone.

    Returns whether the setting took (False off glibc, e.g. on macOS or musl).
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, KEEP_BYTES) == 1
    if not done:
        log.debug("mallopt refused; freed memory goes back to the OS as glibc decides")
    return done


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def default_threads(processes: int = 1) -> int:
    """The torch intra-op threads per training process: the cores shared out among the ``processes`` of one machine
    (e.g. DDP ranks on one node), at least 1."""
    return max(1, available_cores() // max(1, processes))


def default_workers(on_cpu: bool, processes: int = 1) -> int:
    """DataLoader worker processes per training process.

    ``on_cpu`` (the model trains on the CPU, so workers take cores from the compute threads): a quarter of the
    cores, at least 1 (none on a 1-core machine), so that decoding overlaps the step. On the 2-core machine, with
    the shipped sample's small JPEGs, 0, 1 and 2 workers trained equally fast within the noise
    (``benchmarks/threads_and_workers.py``: 23.6, 22.9 and 23.5 images/s); full-size originals take ~50 ms each to
    decode, which one worker hides and none does not. Otherwise (GPU): the cores per process less one for the
    process itself, at most 8.
    """
    cores = available_cores() // max(1, processes)
    if on_cpu:
        return 0 if cores < 2 else max(1, cores // 4)
    return max(1, min(8, cores - 1))
