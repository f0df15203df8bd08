"""Start a study's trials: as processes here (``--parallel N``, one GPU each when there are N), or one submitit job
per trial (``--launcher slurm``: queued, returns at once; ``submitit-local``: the same jobs on this machine). Every
launcher runs the same ``dermlab tune _trial`` process (:mod:`dermlab.tuning.trial`), and every trial's process
asks the study for its values when it starts — so a SLURM trial that starts late draws from the trials finished
before it, and the study's journal on the shared file system is the only thing the jobs share.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from dermlab.errors import DataError
from dermlab.grid import job_resources
from dermlab.grid.launcher import LOCAL_TIME_MIN, POLL_S, QUEUED, RUNNING, read_record, scheduler_states, write_record
from dermlab.tuning import study

if TYPE_CHECKING:
    import optuna

JOBS = "jobs"  # <study>/jobs/slot_NNNN/: a submitit job's files and its job.json


def worker(study_dir: Path, slot: int, devices: queue.Queue | None = None, launcher: str | None = None) -> int:
    """Run one trial's process (``python -m dermlab tune _trial``) and wait for it; returns its exit code. Its
    output goes to ``<study>/workers/slot_NNNN.log`` until it knows its trial, then to ``trial_NNNN/trial.log``."""
    logs = study_dir / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if launcher:
        env[study.LAUNCHER_ENV] = launcher
    device = devices.get() if devices else None
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device)
    try:
        with (logs / f"slot_{slot:04d}.log").open("a") as log:
            return subprocess.run([sys.executable, "-m", "dermlab", "tune", "_trial", str(study_dir), "--slot",
                                   str(slot)], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    finally:
        if device is not None:
            devices.put(device)


class TrialJob:
    """One trial as a submitit job (SLURM or local): :func:`worker` in the job's task.

    Not requeued on preemption: the next ``dermlab tune`` finds the trial interrupted and runs its values again."""

    def __init__(self, study_dir: Path, slot: int, launcher: str) -> None:
        self.study_dir, self.slot, self.launcher = Path(study_dir), slot, launcher

    def __call__(self) -> int:
        """Run the trial; raises when its process failed, so the job is marked failed."""
        code = worker(self.study_dir, self.slot, launcher=self.launcher)
        if code != 0:
            raise RuntimeError(f"trial of slot {self.slot} failed (exit code {code}); see {self.study_dir} "
                               f"trials.csv and the trial's trial.log")
        return code


def queued_slots(study_dir: Path, the_study: optuna.Study) -> list[int]:
    """Slots of submitit jobs still queued or running whose process has not yet asked for its trial."""
    records = {path.parent: record for path in sorted((study_dir / JOBS).glob("slot_*/job.json"))
               if (record := read_record(path.parent))}
    if not records:
        return []
    states = scheduler_states(records)
    asked = {t.user_attrs.get("slot") for t in the_study.get_trials(deepcopy=False)}
    return [int(folder.name.split("_")[1]) for folder, record in records.items()
            if states.get(record["job_id"]) in QUEUED | RUNNING and int(folder.name.split("_")[1]) not in asked]


def run_here(study_dir: Path, the_study: optuna.Study, slots: list[int], parallel: int) -> None:
    """Run one trial process per slot here, ``parallel`` at a time (each on its own GPU when there are that many).
    A process that ended without recording its trial (killed, out of memory) leaves the trial ``FAIL`` with the
    exit code and its log named."""
    import torch

    count = torch.cuda.device_count()
    devices = None
    if count and parallel > 1:  # one GPU per trial; with fewer GPUs than trials side by side, trials share them
        devices = queue.Queue()
        for index in range(max(count, parallel)):
            devices.put(index % count)
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        codes = dict(zip(slots, pool.map(lambda slot: worker(study_dir, slot, devices), slots), strict=True))
    record_crashes(study_dir, the_study, codes)


def record_crashes(study_dir: Path, the_study: optuna.Study, codes: dict[int, int]) -> None:
    """Settle the trials still ``RUNNING`` whose process (by slot) has exited with ``codes[slot]``: one stopped by a
    signal (exit code 130, or killed by SIGINT / SIGTERM) is interrupted and runs again; any other is ``FAIL``."""
    from optuna.trial import TrialState

    from dermlab.tuning.trial import INTERRUPTED

    for trial in study.running(the_study):
        slot = trial.user_attrs.get("slot")
        if slot in codes and codes[slot] in (INTERRUPTED, -2, -15):
            study.interrupt(the_study, study_dir, trial)
            print(f"[tune] trial {trial.number}: interrupted; its values run again")
        elif slot in codes:
            log = trial.user_attrs.get("run_dir", str(study_dir))
            message = f"the trial's process ended (exit code {codes[slot]}) before recording it; see {log}/trial.log"
            the_study._storage.set_trial_user_attr(trial._trial_id, "error", message)
            study.for_telling(the_study).tell(trial.number, state=TrialState.FAIL)
            print(f"[tune] trial {trial.number}: {message}")


def submit(study_dir: Path, the_study: optuna.Study, slots: list[int], kind: str, options: dict, parallel: int,
           resources_of_search: dict, name: str) -> dict[int, str]:
    """One submitit job per slot: SLURM (queued; returns at once) or submitit-local (run here, ``parallel`` at a time,
    waiting for them). Returns slot → job id."""
    import shutil

    import submitit

    if kind == "slurm" and not (shutil.which("sbatch") and shutil.which("srun")):
        raise DataError("--launcher slurm needs SLURM's sbatch and srun on PATH (run it on the cluster's login node); "
                        "--launcher submitit-local runs the same jobs on this machine.")
    resources = job_resources.from_mapping(resources_of_search, f"search '{name}': slurm")
    resources = job_resources.from_mapping(options, "dermlab tune", resources)
    if resources.gpus_per_cell > 1:
        raise DataError("dermlab tune: a trial trains on one GPU (trials run side by side instead); "
                        f"got {resources.gpus_per_cell} GPUs per trial.")
    jobs: dict[int, str] = {}
    running: dict[int, submitit.Job] = {}
    for slot in slots:
        folder = study_dir / JOBS / f"slot_{slot:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if kind == "slurm":
            executor = submitit.AutoExecutor(folder=folder / "submitit", cluster="slurm")
            executor.update_parameters(**job_resources.slurm_parameters(resources, f"tune/{name}/{slot}", []))
        else:
            while len([j for j in running.values() if not j.done()]) >= max(1, parallel):
                time.sleep(POLL_S)
            executor = submitit.LocalExecutor(folder=folder / "submitit")
            executor.update_parameters(timeout_min=resources.time_min or LOCAL_TIME_MIN, tasks_per_node=1)
        try:
            job = executor.submit(TrialJob(study_dir, slot, kind))
        except Exception as error:  # sbatch refused the job (an option, a partition)
            raise DataError(f"dermlab tune: sbatch refused the trial job ({' '.join(str(error).split())[:300]}); the "
                            "jobs submitted before it stay queued — fix the option and run the command again."
                            ) from None
        write_record(folder, kind, job, [])
        jobs[slot] = str(job.job_id)
        running[slot] = job
        print(f"[tune] slot {slot}: {'submitted as job' if kind == 'slurm' else 'started as local job'} {job.job_id}")
    if kind == "submitit-local":
        while not all(job.done() for job in running.values()):
            time.sleep(POLL_S)
        codes = {slot: 0 if job.state == "DONE" else 1 for slot, job in running.items()}
        record_crashes(study_dir, the_study, codes)
    return jobs

