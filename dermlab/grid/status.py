"""``dermlab grid status TABLE.yaml``: per cell, finished / running / queued / failed / interrupted / not started.

Read from the cell folders (``result.json``, ``failed.json``, ``checkpoints/last.ckpt``, the ``job.json`` a
submitit launcher writes) and from the scheduler (SLURM's ``sacct``, through submitit; the process table for
``--launcher submitit-local`` jobs of this host). A job's scheduler state wins over the files while it is queued
or running (a cell submitted again after a failure still holds its old ``failed.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dermlab.grid import launcher
from dermlab.grid.spec import GridSpec


@dataclass
class CellStatus:
    """Where one cell stands: its id, its state and a detail (the job, its log) for the status table."""

    cell: str
    state: str  #: finished | running | queued | failed | interrupted | submitted | not started
    detail: str = ""


def describe(folder: Path, record: dict | None, states: dict[str, str]) -> CellStatus:
    """The status of the cell in ``folder`` given its ``job.json`` (or None) and the scheduler's job states."""
    job = record["job_id"] if record else None
    state = states.get(job, "") if job else ""
    log = folder / "cell.log"
    if (folder / "result.json").is_file():
        return CellStatus(folder.name, "finished")
    if state in launcher.QUEUED:
        after = f" after {', '.join(record['after'])}" if record.get("after") else ""
        return CellStatus(folder.name, "queued", f"job {job}{after}")
    if state in launcher.RUNNING:
        return CellStatus(folder.name, "running", f"job {job}; log {log}")
    ended = f"job {job} {state}; " if state else ""
    if (folder / "failed.json").is_file():
        failed = json.loads((folder / "failed.json").read_text())
        return CellStatus(folder.name, "failed", f"{ended}log {failed['log']}")
    resumable = (folder / "checkpoints" / "last.ckpt").is_file()
    if state:  # the job ended without result.json or failed.json: killed, cancelled, out of time or memory
        shown = log if log.is_file() else record.get("stderr", log)
        resumes = "; resumes from last.ckpt when submitted again" if resumable else ""
        return CellStatus(folder.name, "interrupted" if resumable else "failed", f"{ended}log {shown}{resumes}")
    if record:
        return CellStatus(folder.name, "submitted", f"job {job}; the scheduler does not report it (no sacct here?)")
    if resumable:
        return CellStatus(folder.name, "interrupted", "resumes from last.ckpt on the next grid run")
    return CellStatus(folder.name, "not started")


def cell_statuses(spec: GridSpec, runs: Path = Path("runs"), smoke: bool = False) -> list[CellStatus]:
    """One :class:`CellStatus` per cell of the grid, in file order."""
    folders = [spec.run_root(runs, smoke) / cell.id for cell in spec.cells()]
    records = {folder: record for folder in folders if (record := launcher.read_record(folder))}
    states = launcher.scheduler_states(records)
    return [describe(folder, records.get(folder), states) for folder in folders]


def render(spec: GridSpec, runs: Path = Path("runs"), smoke: bool = False) -> str:
    """A heading with the count per state, then one line per cell: id, state, detail (job, log path)."""
    statuses = cell_statuses(spec, runs, smoke)
    counts = {}
    for status in statuses:
        counts[status.state] = counts.get(status.state, 0) + 1
    width = max((len(s.cell) for s in statuses), default=0)
    lines = [f"{spec.paper}/{spec.table} ({spec.run_root(runs, smoke)}): {len(statuses)} cells, "
             + ", ".join(f"{n} {state}" for state, n in counts.items())]
    lines += [f"  {s.cell:<{width}}  {s.state}" + (f"  ({s.detail})" if s.detail else "") for s in statuses]
    return "\n".join(lines)
