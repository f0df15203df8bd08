"""Grid cells as submitit jobs: ``dermlab grid run TABLE.yaml --launcher slurm | submitit-local``.

Each unfinished cell becomes one job (:class:`CellJob`) that calls :func:`dermlab.grid.runner.run_one`, the function
the local runner calls: the job fits and tests the cell exactly as ``--launcher local`` does (resuming from its
``last.ckpt``) and writes the same files in the cell's folder (``cell.log``, ``result.json`` or ``failed.json``).
submitit's own files (the ``sbatch`` script ``<job id>_submission.sh``, the job's output ``<job id>_0_log.out|err``,
the pickled call) go to ``<cell>/submitit/``, and ``<cell>/job.json`` records the job id for ``grid status`` and
for the next submission.

- ``slurm``: one ``sbatch`` job per cell with the resources of :mod:`dermlab.grid.job_resources`; a cell that names
  another's run folder (``@cell(...)``, also of another table of the paper) is submitted with
  ``--dependency=afterok:<job ids>``, so a whole table — or a paper's tables, ``--paper`` — goes in one command,
  which returns once everything is queued. A cell with several GPUs gets one SLURM task per GPU and
  ``--trainer.devices N``: Lightning's SLURM environment makes the tasks one DDP run.
- ``submitit-local``: the same jobs through submitit's local executor on this machine, ``--parallel`` at a time,
  each started once the cells it names have finished; the command waits for them. It runs the cluster's code path
  (pickled job, requeue on a time-out signal) without a cluster.

Resubmitting skips finished cells and cells whose job is still queued or running, and submits the others again;
their jobs resume from ``last.ckpt``. A job that is preempted or reaches its time limit requeues itself
(submitit's :class:`~submitit.helpers.Checkpointable`: SLURM sends ``USR2`` 90 s before the limit; time-outs are
requeued at most 3 times, preemptions without limit, where the cluster lets jobs requeue) and resumes the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import submitit
from submitit.core.utils import FailedJobError, FailedSubmissionError

from dermlab.errors import DataError
from dermlab.grid import job_resources, runner
from dermlab.grid.spec import Cell, GridSpec

LAUNCHERS = ("local", "slurm", "submitit-local")
RECORD = "job.json"
# SLURM job states (sacct) of a job that is still to run, and of one that runs now; any other state has ended
QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SUSPENDED"}
RUNNING = {"RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT"}
POLL_S = 1.0  # how often the submitit-local launcher looks at its jobs
LOCAL_TIME_MIN = 30 * 24 * 60  # submitit's local executor stops a job at its time-out: none unless one is asked for

Entry = tuple[Cell, list[str], Path, set[Path]]  # a cell, its arguments, its run folder, the run folders it names


class CellJob(submitit.helpers.Checkpointable):
    """One grid cell as a submitit job, run in every task of the job (one task per GPU under SLURM).

    Calls :func:`~dermlab.grid.runner.run_one` with the task's global rank and raises when the cell failed, so that
    the job fails and the cells that start from it (``afterok``) do not run. On preemption or time-out, submitit calls
    :meth:`checkpoint` (rank 0 only) and requeues this same call, which resumes from ``last.ckpt``.
    """

    def __init__(self, cell_id: str, args: list[str], run_dir: Path, predict: bool = False,
                 val_predictions: bool = False) -> None:
        self.cell_id, self.args, self.run_dir = cell_id, list(args), Path(run_dir)
        self.predict, self.val_predictions = predict, val_predictions

    def __call__(self) -> str:
        """Run the cell in this task; ``"done"``.

        Raises:
            RuntimeError: the cell failed (its ``cell.log``, or ``cell.rank<N>.log`` of another rank, says why).
        """
        try:
            rank = submitit.JobEnvironment().global_rank
        except RuntimeError:  # called outside a submitit job
            rank = 0
        status = runner.run_one(self.args, self.run_dir, predict=self.predict, val_predictions=self.val_predictions,
                                rank=rank)
        if status != "done":
            log = self.run_dir / ("cell.log" if rank == 0 else f"cell.rank{rank}.log")
            raise RuntimeError(f"grid cell {self.cell_id} failed; see {log}")
        return status

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Note the preemption or time-out in ``cell.log`` and requeue this same call (submitit's
        :meth:`~submitit.helpers.Checkpointable.checkpoint`); the requeued job resumes from ``last.ckpt``."""
        with (self.run_dir / "cell.log").open("a") as log:
            log.write(f"[grid] {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: preempted or at the time limit; "
                      "the job is requeued and resumes from last.ckpt\n")
        return super().checkpoint(*args, **kwargs)


def read_record(run_dir: Path) -> dict | None:
    """The cell's ``job.json`` (launcher, job_id, after, host, submitted, stderr), or None."""
    path = run_dir / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def write_record(run_dir: Path, launcher: str, job: submitit.Job, after: list[str]) -> None:
    """Write the cell's ``job.json``: the launcher, the job id, the job ids it waits for (``after``), this host,
    the submission time (UTC) and the job's stderr file."""
    record = {"launcher": launcher, "job_id": str(job.job_id), "after": after, "host": socket.gethostname(),
              "submitted": datetime.now(UTC).isoformat(timespec="seconds"), "stderr": str(job.paths.stderr)}
    (run_dir / RECORD).write_text(json.dumps(record, indent=2))


def scheduler_states(records: dict[Path, dict]) -> dict[str, str]:
    """Job id → state of the jobs in ``records``: SLURM's (one ``sacct`` call through submitit's watcher; absent
    when ``sacct`` is not on PATH or does not know the job) and, for submitit-local jobs started on this host,
    ``RUNNING`` while their process lives, else ``ENDED``."""
    states: dict[str, str] = {}
    slurm = sorted({r["job_id"] for r in records.values() if r["launcher"] == "slurm"})
    if slurm and shutil.which("sacct"):
        from submitit.slurm.slurm import SlurmInfoWatcher

        watcher = SlurmInfoWatcher()
        for job in slurm:
            watcher.register_job(job)
        watcher.update()
        for job in slurm:
            state = watcher.get_state(job, mode="cache").split()[0].upper()  # "CANCELLED by 123" → CANCELLED
            if state != "UNKNOWN":
                states[job] = state
    for record in records.values():
        if record["launcher"] == "submitit-local" and record.get("host") == socket.gethostname():
            states[record["job_id"]] = "RUNNING" if _alive(int(record["job_id"])) else "ENDED"
    return states


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, ended but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: the state letter follows the parenthesised command name
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def in_order(entries: list[Entry]) -> list[Entry]:
    """``entries`` with every cell after the cells of ``entries`` whose run folders it names.

    Raises:
        DataError: cells that name each other in a cycle.
    """
    folders = {entry[2] for entry in entries}
    placed: set[Path] = set()
    ordered, rest = [], list(entries)
    while rest:
        ready = [entry for entry in rest if not (entry[3] & folders) - placed]
        if not ready:
            raise DataError(f"grid cells {', '.join(e[0].id for e in rest)} name each other's run folders in a cycle.")
        for entry in ready:
            ordered.append(entry)
            placed.add(entry[2])
            rest.remove(entry)
    return ordered


class Launcher:
    """``--launcher slurm`` or ``submitit-local`` for one ``dermlab grid run`` command.

    It remembers the jobs it submitted, so that a table submitted after another in the same command (``--paper``)
    waits for the runs it starts from.
    """

    def __init__(self, kind: str, options: dict[str, Any] | None = None) -> None:
        if kind not in LAUNCHERS[1:]:
            raise DataError(f"grid launcher {kind!r}: choose one of {list(LAUNCHERS)}.")
        if kind == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise DataError("--launcher slurm needs SLURM's sbatch and srun on PATH (run it on the cluster's login "
                            "node); --launcher submitit-local runs the same jobs on this machine.")
        job_resources.from_mapping(options, "dermlab grid run")  # bad options stop before anything runs
        self.kind, self.options = kind, options or {}
        self.submitted: dict[Path, str] = {}  # run folder → job id, this command

    @property
    def waits(self) -> bool:
        """Whether :meth:`run` returns only once the cells have run (submitit-local) or once they are queued."""
        return self.kind == "submitit-local"

    def resources(self, spec: GridSpec) -> job_resources.Resources:
        """The grid file's ``slurm:`` with this command's options over it."""
        grid = job_resources.from_mapping(spec.slurm, f"grid '{spec.path}': slurm")
        return job_resources.from_mapping(self.options, "dermlab grid run", grid)

    def live_jobs(self, paper_root: Path) -> dict[Path, str]:
        """Run folder → id of its job still queued or running: this command's and those recorded in the paper's
        cell folders. A recorded SLURM job that waits on a job that ended without its cell's ``result.json`` can never
        start (``afterok``): it is cancelled and left out."""
        records = {path.parent: record for path in sorted(paper_root.glob(f"*/*/{RECORD}"))
                   if (record := read_record(path.parent)) and path.parent not in self.submitted}
        states = scheduler_states(records)
        folder_of = {record["job_id"]: folder for folder, record in records.items()}
        live = {}
        for folder, record in records.items():
            if states.get(record["job_id"]) not in QUEUED | RUNNING:
                continue
            dead = [job for job in record.get("after", []) if job in folder_of and job in states
                    and states[job] not in QUEUED | RUNNING and not (folder_of[job] / "result.json").is_file()]
            if dead and record["launcher"] == "slurm" and states[record["job_id"]] in QUEUED:
                submitit.SlurmJob(folder / "submitit", record["job_id"]).cancel(check=False)
                print(f"[grid] {folder.name}: job {record['job_id']} waited on job(s) {', '.join(dead)}, which ended "
                      "without a result; cancelled, submitted again")
                continue
            live[folder] = record["job_id"]
        return {**live, **self.submitted}

    def run(self, spec: GridSpec, data_root: str | None = None, smoke: bool = False, parallel: int = 1,
            runs: Path = Path("runs")) -> dict[str, str]:
        """Submit (slurm) or run (submitit-local) every cell that has neither finished nor a job queued or running;
        returns {cell id: submitted | done | failed | blocked | queued | skipped}. ``blocked``: the cell names a
        run folder that has neither finished nor a job (run that table first, or in the same command)."""
        if spec.cells_of:
            print(f"[grid] {spec.table}: renders the cells of {spec.cells_of}; nothing to run")
            return {}
        resources = self.resources(spec)
        live = self.live_jobs(spec.run_root(runs, smoke).parent)
        status, todo = runner.prepare(spec, data_root, smoke, runs, defer_unfinished=True)
        entries = []
        for cell, args, run_dir in todo:
            if run_dir in live:
                status[cell.id] = "queued"
                print(f"[grid] {cell.id}: job {live[run_dir]} is queued or running; not submitted again")
                continue
            entries.append((cell, args, run_dir, runner.referenced_runs(args, run_dir)))
        entries = in_order(entries)
        if self.kind == "slurm":
            status.update(self._submit(spec, entries, live, resources))
        else:
            status.update(self._run_here(spec, entries, resources, parallel))
        return status

    def _job(self, spec: GridSpec, cell: Cell, args: list[str], run_dir: Path) -> CellJob:
        return CellJob(cell.id, args, run_dir, spec.predict, spec.fold_axis() is not None)

    def _submit(self, spec: GridSpec, entries: list[Entry], live: dict[Path, str],
                resources: job_resources.Resources) -> dict[str, str]:
        status = {}
        devices = ["--trainer.devices", str(resources.gpus_per_cell)] if resources.gpus_per_cell else []
        for cell, args, run_dir, named in entries:
            unfinished = [folder for folder in sorted(named) if not (folder / "result.json").is_file()]
            after = [self.submitted.get(f) or live[f] for f in unfinished if f in self.submitted or f in live]
            missing = [str(f) for f in unfinished if f not in self.submitted and f not in live]
            if missing:
                status[cell.id] = "blocked"
                print(f"[grid] {cell.id}: not submitted: it starts from {', '.join(missing)}, which has neither "
                      "finished nor a job (run that table first, or in the same command)")
                continue
            executor = submitit.AutoExecutor(folder=run_dir / "submitit", cluster="slurm")
            executor.update_parameters(**job_resources.slurm_parameters(resources, f"{spec.table}/{cell.id}", after))
            try:
                job = executor.submit(self._job(spec, cell, [*args, *devices], run_dir))
            except (FailedJobError, FailedSubmissionError) as error:  # sbatch said no, or something unreadable
                raise DataError(f"grid '{spec.path}' cell {cell.id}: sbatch refused the job ({error}); the cells "
                                "submitted before it stay queued — fix the option and run the command again.") from None
            write_record(run_dir, "slurm", job, after)
            self.submitted[run_dir] = str(job.job_id)
            status[cell.id] = "submitted"
            print(f"[grid] {cell.id}: submitted as job {job.job_id}" + (f" after {', '.join(after)}" if after else "")
                  + f" (log {run_dir / 'cell.log'})")
        return status

    def _run_here(self, spec: GridSpec, entries: list[Entry], resources: job_resources.Resources,
                  parallel: int) -> dict[str, str]:
        import torch

        gpus, count = resources.gpus_per_cell, torch.cuda.device_count()
        free = list(range(count)) if gpus and count >= gpus * max(1, parallel) else None  # a GPU set per job
        waiting, running, status = list(entries), {}, {}
        try:
            while waiting or running:
                for run_dir, (cell, job, ids) in list(running.items()):
                    if job.done():
                        del running[run_dir]
                        free = None if free is None else free + ids
                        status[cell.id] = self._outcome(cell, run_dir, job)
                for entry in list(waiting):
                    cell, args, run_dir, named = entry
                    pending = {f for f in named if not (f / "result.json").is_file()}
                    if pending - set(running) - {e[2] for e in waiting}:
                        waiting.remove(entry)
                        status[cell.id] = "blocked"
                        print(f"[grid] {cell.id}: not run: it starts from "
                              f"{', '.join(map(str, sorted(pending)))}, which has not finished")
                        continue
                    if pending or len(running) >= max(1, parallel):
                        continue
                    ids = [free.pop(0) for _ in range(gpus)] if free is not None else []
                    executor = submitit.LocalExecutor(folder=run_dir / "submitit")
                    executor.update_parameters(timeout_min=resources.time_min or LOCAL_TIME_MIN, tasks_per_node=1,
                                               gpus_per_node=gpus if free is not None else min(gpus, count),
                                               visible_gpus=tuple(ids))
                    job = executor.submit(self._job(spec, cell, args, run_dir))
                    write_record(run_dir, "submitit-local", job, [])
                    running[run_dir] = (cell, job, ids)
                    waiting.remove(entry)
                    print(f"[grid] {cell.id}: started as local job {job.job_id} (log {run_dir / 'cell.log'})")
                if waiting or running:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            for _, job, _ in running.values():
                job.cancel()
            raise
        return status

    @staticmethod
    def _outcome(cell: Cell, run_dir: Path, job: submitit.Job) -> str:
        """``done`` or ``failed`` of a finished submitit-local job; a job that died before its cell could write
        ``failed.json`` gets one naming submitit's log of the job."""
        if (run_dir / "result.json").is_file():
            print(f"[grid] {cell.id}: done")
            return "done"
        if not (run_dir / "failed.json").is_file():
            (run_dir / "failed.json").write_text(json.dumps({"returncode": None, "log": str(job.paths.stderr)}))
        log = json.loads((run_dir / "failed.json").read_text())["log"]
        print(f"[grid] {cell.id}: failed (log: {log})")
        return "failed"
