"""What one grid cell's cluster job asks for: GPUs, CPUs, time, memory, partition, extra ``sbatch`` options.

A grid file may carry them under ``slurm:``; ``dermlab grid run --launcher slurm`` options override them::

    slurm:
      gpus_per_cell: 1          # GPUs of one cell; > 1 runs Lightning DDP, one SLURM task per GPU
      cpus_per_cell: 8          # CPUs of one cell, split evenly over its tasks (sbatch --cpus-per-task)
      time: "12:00:00"          # minutes, or SLURM's [D-]HH:MM[:SS] (default 24:00:00 on SLURM, none locally)
      mem: 64G                  # memory of the cell's node: a number is GB; text takes a unit K, M, G or T
      partition: gpu
      sbatch: {account: lab, qos: normal, requeue: true}   # any other sbatch option (true: a bare flag)
      setup: [module load cuda/12.4]                       # shell lines before the job's srun

Units follow SLURM's ``sbatch`` manual (https://slurm.schedmd.com/sbatch.html: ``--time``, ``--mem``); the job
itself is written by submitit (:mod:`dermlab.grid.launcher`).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from dermlab.errors import DataError

KEYS = ("gpus_per_cell", "cpus_per_cell", "time", "mem", "partition", "sbatch", "setup")
DEFAULT_TIME_MIN = 24 * 60
#: sbatch options dermlab sets itself (a cell's job, its logs, its dependencies) or that have their own key
RESERVED = {"dependency": "set from the grid's @cell(...) references", "output": "the job's log in the cell folder",
            "error": "the job's log in the cell folder", "array": "one job per cell", "job-name": "the cell's id",
            "nodes": "one node per cell", "ntasks-per-node": "one task per GPU", "ntasks": "one task per GPU",
            "signal": "submitit's requeue signal", "open-mode": "logs are appended across requeues",
            "partition": "use partition", "time": "use time", "mem": "use mem", "gpus-per-node": "use gpus_per_cell",
            "gres": "use gpus_per_cell", "cpus-per-task": "use cpus_per_cell"}


@dataclass(frozen=True)
class Resources:
    """One cell's request. ``time_min`` in minutes (None: 24 h on SLURM, no limit on this machine), ``mem_gb`` in
    GB (None: the partition's default)."""

    gpus_per_cell: int = 1
    cpus_per_cell: int | None = None
    time_min: int | None = None
    mem_gb: float | None = None
    partition: str | None = None
    sbatch: dict[str, Any] = field(default_factory=dict)
    setup: tuple[str, ...] = ()

    @property
    def tasks(self) -> int:
        """SLURM tasks of the cell's job, one per GPU (Lightning's SLURM environment makes each a DDP rank)."""
        return max(1, self.gpus_per_cell)


def minutes(value: Any, where: str) -> int:
    """``value`` as whole minutes (seconds round up): an integer is minutes; text is SLURM's ``MM``, ``MM:SS``,
    ``HH:MM:SS``, ``D-HH``, ``D-HH:MM`` or ``D-HH:MM:SS``.

    Raises:
        DataError: another form, or no time at all, naming ``where``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        total_s = value * 60
    else:
        match = re.fullmatch(r"(?:(\d+)-)?(\d+(?::\d+){0,2})", str(value).strip())
        if not match:
            raise DataError(f"{where}: time {value!r} is not minutes or [D-]HH:MM[:SS] (e.g. 90, 12:00:00, 2-00:00).")
        parts = [int(p) for p in match.group(2).split(":")]
        if match.group(1) is not None:  # days-hours[:minutes[:seconds]]
            hours, mins, secs = (parts + [0, 0])[:3]
            hours += 24 * int(match.group(1))
        else:  # minutes, minutes:seconds, hours:minutes:seconds
            hours, mins, secs = {1: (0, parts[0], 0), 2: (0, *parts), 3: tuple(parts)}[len(parts)]
        total_s = (hours * 60 + mins) * 60 + secs
    if total_s <= 0:
        raise DataError(f"{where}: time {value!r} must be more than zero.")
    return math.ceil(total_s / 60)


def gigabytes(value: Any, where: str) -> float:
    """``value`` in GB: a number is GB; text is a number with a unit K, M, G or T (an optional B; 1 G = 1024 M).

    Raises:
        DataError: another form, naming ``where``.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT])B?", str(value).strip(), flags=re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise DataError(f"{where}: mem {value!r} is not a size such as 64G, 500M or 64 (GB).")
    return float(match.group(1)) * {"K": 1 / 1024**2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[match.group(2).upper()]


def sbatch_options(raw: Any, where: str) -> dict[str, Any]:
    """Extra ``sbatch`` options as ``{name: value}`` (``true``: a bare flag such as ``--requeue``).

    Raises:
        DataError: not a mapping of option names, or an option dermlab sets itself (:data:`RESERVED`), naming it.
    """
    if not isinstance(raw, dict):
        raise DataError(f"{where}: sbatch maps option names to values (e.g. {{account: lab, requeue: true}}); "
                        f"got {raw!r}.")
    options = {}
    for key, value in raw.items():
        name = str(key).lstrip("-").replace("_", "-")
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            raise DataError(f"{where}: sbatch option {key!r} is not an option name (e.g. account, qos, constraint).")
        if name in RESERVED:
            raise DataError(f"{where}: sbatch option {key!r} is set by dermlab ({RESERVED[name]}).")
        if value is False or value is None:
            continue
        options[name] = True if value is True else str(value)
    return options


def from_mapping(raw: Any, where: str, base: Resources = Resources()) -> Resources:
    """``base`` with the keys of ``raw`` (a grid file's ``slurm:`` or the command line's options) applied: ``sbatch``
    options are added to the base's, ``setup`` lines appended, the others replaced.

    Raises:
        DataError: an unknown key, a count that is not a positive integer (``gpus_per_cell`` may be 0), CPUs that do
            not split evenly over the cell's tasks, or a bad time, size or option — naming ``where`` and the key.
    """
    raw = raw or {}
    if not isinstance(raw, dict) or set(raw) - set(KEYS):
        unknown = sorted(set(raw) - set(KEYS)) if isinstance(raw, dict) else raw
        raise DataError(f"{where}: unknown key(s) {unknown}; a cell's job takes {list(KEYS)}.")
    changes: dict[str, Any] = {}
    for key, least in (("gpus_per_cell", 0), ("cpus_per_cell", 1)):
        if raw.get(key) is not None:
            value = raw[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise DataError(f"{where}: {key} must be an integer ≥ {least}; got {value!r}.")
            changes[key] = value
    if raw.get("time") is not None:
        changes["time_min"] = minutes(raw["time"], where)
    if raw.get("mem") is not None:
        changes["mem_gb"] = gigabytes(raw["mem"], where)
    if raw.get("partition") is not None:
        changes["partition"] = str(raw["partition"])
    if raw.get("sbatch") is not None:
        changes["sbatch"] = {**base.sbatch, **sbatch_options(raw["sbatch"], where)}
    if raw.get("setup") is not None:
        lines = raw["setup"] if isinstance(raw["setup"], list) else [raw["setup"]]
        changes["setup"] = (*base.setup, *(str(line) for line in lines))
    resources = replace(base, **changes)
    if resources.cpus_per_cell is not None and resources.cpus_per_cell % resources.tasks:
        raise DataError(f"{where}: cpus_per_cell ({resources.cpus_per_cell}) must split evenly over the cell's "
                        f"{resources.tasks} GPU processes (gpus_per_cell {resources.gpus_per_cell}).")
    return resources


def slurm_parameters(resources: Resources, name: str, after: list[str]) -> dict[str, Any]:
    """The submitit ``AutoExecutor.update_parameters`` keywords of one cell's SLURM job.

    One node; one task per GPU, so that ``srun`` starts the DDP ranks that Lightning's SLURM environment reads;
    ``--dependency=afterok:<ids>`` on the jobs of the cells it starts from, with ``--kill-on-invalid-dep=yes`` so
    that a job whose dependency failed leaves the queue instead of waiting for ever.
    """
    extra = dict(resources.sbatch)
    if after:
        extra["kill-on-invalid-dep"] = "yes"
    return {"name": name, "timeout_min": resources.time_min or DEFAULT_TIME_MIN, "nodes": 1,
            "tasks_per_node": resources.tasks,
            "gpus_per_node": resources.gpus_per_cell or None, "mem_gb": resources.mem_gb,
            "cpus_per_task": None if resources.cpus_per_cell is None else resources.cpus_per_cell // resources.tasks,
            "slurm_partition": resources.partition, "slurm_setup": list(resources.setup) or None,
            "slurm_dependency": f"afterok:{':'.join(after)}" if after else None,
            "slurm_additional_parameters": extra or None}


def add_job_arguments(parser: argparse.ArgumentParser, unit: str, gpus: bool = True, slurm_note: str = "") -> None:
    """``--launcher`` and the options of one ``unit``'s job (``cell`` of ``grid run``, ``trial`` of ``tune``):
    ``--gpus-per-<unit>`` (with ``gpus``), ``--cpus-per-<unit>``, ``--time``, ``--mem``, ``--partition``, ``--sbatch``,
    ``--setup``. :func:`job_options` reads them back as a ``slurm:`` mapping."""
    parser.add_argument("--launcher", default="local", choices=("local", "slurm", "submitit-local"),
                        help=f"local: {unit}s as processes here (default); slurm: one sbatch job per {unit}"
                             f"{slurm_note} (returns once queued); submitit-local: the same jobs on this machine")
    if gpus:
        parser.add_argument(f"--gpus-per-{unit}", type=int, help=f"GPUs of a {unit}'s job; > 1 runs DDP, one task "
                                                                 "per GPU (default 1; overrides the file's slurm:)")
    parser.add_argument(f"--cpus-per-{unit}", type=int, help=f"CPUs of a {unit}'s job, split over its tasks")
    parser.add_argument("--time", help=f"a {unit}'s time limit: minutes or [D-]HH:MM[:SS] (SLURM default 24:00:00)")
    parser.add_argument("--mem", help=f"memory of a {unit}'s job, e.g. 64G")
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument("--sbatch", action="append", default=[], metavar="OPTION[=VALUE]",
                        help="any other sbatch option, e.g. --sbatch account=lab --sbatch requeue (repeatable)")
    parser.add_argument("--setup", action="append", default=[], metavar="LINE",
                        help=f"a shell line the job runs before the {unit}, e.g. 'module load cuda' (repeatable)")


def job_options(args: argparse.Namespace, unit: str) -> dict[str, Any]:
    """The job options given on the command line (:func:`add_job_arguments`), as a ``slurm:`` mapping."""
    flags = {f"gpus_per_{unit}": "gpus_per_cell", f"cpus_per_{unit}": "cpus_per_cell", "time": "time", "mem": "mem",
             "partition": "partition"}
    options = {key: getattr(args, flag) for flag, key in flags.items() if getattr(args, flag, None) is not None}
    if args.sbatch:
        options["sbatch"] = dict(o.split("=", 1) if "=" in o else (o, True) for o in args.sbatch)
    if args.setup:
        options["setup"] = list(args.setup)
    return options
