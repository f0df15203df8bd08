"""Checkpoint files read with a clear error and written atomically.

Every reader of a Lightning ``.ckpt`` in the suite goes through :func:`read_checkpoint` (``--ckpt_path`` of
``dermlab fit|validate|test|predict``, a grid cell resuming from ``last.ckpt``, ``pretrained_weights`` pointing at a
run's checkpoint): a file that cannot be used — truncated by a killed job or a full disk, empty, not a PyTorch
file, a bare state dict — stops with one line that names the file, the reason and the other checkpoints in its
folder, instead of PyTorch's ``PytorchStreamReader failed reading zip archive`` traceback.

:func:`atomic_save` writes a checkpoint to a hidden temporary file in the checkpoint's own folder, flushes it to
disk, then renames it over the target (``os.replace``): a job killed mid-write leaves the previous checkpoint whole.
Lightning 2.6's own save stages the file in the system temporary folder and moves it, which is a plain copy (not
atomic) when that folder is on another file system than the run folder, as on clusters with a node-local ``/tmp``.

Plain torch and the standard library only: :class:`callbacks.checkpoint.AtomicCheckpointIO` plugs these into
Lightning.
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path
from typing import Any

import torch

from dermlab.errors import DataError

#: What to do next, in the message of an unreadable ``--ckpt_path`` checkpoint.
CKPT_PATH_ADVICE = "pass one of them as --ckpt_path instead"


def read_checkpoint(path: str | Path, *, map_location: Any = "cpu", weights_only: bool | None = False,
                    mmap: bool = False, advice: str = CKPT_PATH_ADVICE) -> dict[str, Any]:
    """The checkpoint dictionary saved at ``path`` (Lightning's layout: it holds a ``state_dict``).

    ``map_location``, ``weights_only`` and ``mmap`` go to :func:`torch.load` (``mmap=True`` checks the file
    without reading the tensors: cheap). ``advice`` ends the error message (what to pass instead).

    Raises:
        DataError: the file is missing, empty, truncated, not a PyTorch file, not a Lightning checkpoint, or holds
            objects that ``weights_only`` loading refuses; the message names the file, the reason and the other
            checkpoints of its folder (see :func:`checkpoint_error`).
    """
    path = Path(path)
    if not path.is_file():
        raise checkpoint_error(path, "it does not exist" if not path.exists() else "it is a folder, not a file",
                               advice)
    size = path.stat().st_size
    if size == 0:
        raise checkpoint_error(path, "it is empty (0 bytes): its save never wrote anything", advice)
    if not zipfile.is_zipfile(path):  # Lightning saves zip archives; their directory is the last thing written
        raise checkpoint_error(path, f"it is truncated or not a PyTorch file ({size:,} bytes without the zip "
                                     "directory a checkpoint ends with); a save that was interrupted (a killed "
                                     "job, a full disk) leaves such a file", advice)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except Exception as error:  # noqa: BLE001  (whatever torch.load raises, the file is unusable)
        raise checkpoint_error(path, _load_failure(error, size), advice) from None
    if not isinstance(checkpoint, dict):
        raise checkpoint_error(path, f"it holds a {type(checkpoint).__name__}, not a Lightning checkpoint", advice)
    if "state_dict" not in checkpoint:
        keys = ", ".join(map(str, list(checkpoint)[:3])) + (", ..." if len(checkpoint) > 3 else "")
        raise checkpoint_error(path, "it is not a Lightning checkpoint (no 'state_dict'; it holds "
                                     f"{keys or 'nothing'}): a bare weights file goes to pretrained_weights", advice)
    return checkpoint


def _load_failure(error: Exception, size: int) -> str:
    """Why :func:`torch.load` failed, in words."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    if "weights only load failed" in first.lower():
        return ("it holds Python objects that a safe (weights-only) load refuses: not a checkpoint of this "
                "suite's Lightning runs?")
    if isinstance(error, EOFError) or "zip archive" in first or "locating file" in first:
        return f"it is damaged or not a PyTorch checkpoint ({size:,} bytes; PyTorch says: {first})"
    return f"PyTorch cannot load it ({type(error).__name__}: {first})"


def checkpoint_error(path: str | Path, reason: str, advice: str = CKPT_PATH_ADVICE) -> DataError:
    """The one-line error for checkpoint ``path``: the file, ``reason``, the other checkpoints of its folder
    (newest first; damaged ones named apart) and ``advice`` (what to do with them)."""
    path = Path(path)
    usable, damaged = other_checkpoints(path)
    if usable:
        listed = ", ".join(usable[:6]) + (f" and {len(usable) - 6} more" if len(usable) > 6 else "")
        tail = f"Other checkpoints in '{path.parent}': {listed}; {advice}."
    else:
        tail = f"There is no other usable checkpoint in '{path.parent}'."
    if damaged:
        tail += f" Damaged too: {', '.join(damaged[:6])}."
    return DataError(f"checkpoint '{path}' cannot be used: {reason}. {tail}")


def other_checkpoints(path: str | Path) -> tuple[list[str], list[str]]:
    """The ``*.ckpt`` files beside ``path`` (not ``path`` itself), newest first, as (usable, damaged) lists: each
    usable one as ``name (saved YYYY-mm-dd HH:MM)``, each damaged one (no zip directory at its end: truncated or
    not a PyTorch file) by name."""
    path = Path(path)
    try:
        found = [p for p in path.parent.glob("*.ckpt") if p.is_file() and p.name != path.name]
    except OSError:
        return [], []
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    usable = [f"{p.name} (saved {time.strftime('%Y-%m-%d %H:%M', time.localtime(p.stat().st_mtime))})"
              for p in found if zipfile.is_zipfile(p)]
    return usable, [p.name for p in found if not zipfile.is_zipfile(p)]


def atomic_save(checkpoint: dict[str, Any], path: str | Path) -> None:
    """:func:`torch.save` ``checkpoint`` to ``path`` atomically: into ``.<name>.<pid>.tmp`` in the same folder,
    flushed to disk (``fsync``), then renamed over ``path`` (``os.replace``, atomic within a file system). On any
    error (or interrupt) the temporary file is removed and ``path`` keeps its previous content; a process killed
    outright leaves at most the hidden temporary file, removed by the next save of the same name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _remove_stale_temporaries(path)


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.tmp`` files of ``path`` left by processes that no longer run (killed mid-save)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        pid = stale.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def resume_arguments(last: str | Path) -> list[str]:
    """``["--ckpt_path", last]`` when ``last`` (a grid cell's ``checkpoints/last.ckpt``) exists and can be read,
    ``[]`` when it does not exist (a fresh start).

    Raises:
        DataError: ``last`` exists but cannot be read (see :func:`read_checkpoint`).
    """
    last = Path(last)
    if not last.exists():
        return []
    read_checkpoint(last, mmap=True,  # mmap: the tensors are not read
                    advice=f"copy one of them over {last.name} to resume from it, or delete {last.name} to start "
                           "the cell over")
    return ["--ckpt_path", str(last)]


def weights_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """The SHA-256 of a model's weights: every tensor's name, dtype, shape and values in memory order of a
    contiguous copy (so a channels-last copy, a GPU copy and the checkpoint file's tensors agree), keys sorted.

    Unlike a checkpoint file's hash it does not change when a grid strips the optimiser state from the file, and a
    model tested in memory right after training has the fingerprint of the checkpoint holding the same weights.
    """
    import hashlib

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
