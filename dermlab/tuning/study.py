"""A study's folder: ``<runs>/tuning/<name>/`` (``tuning-smoke/`` for ``--smoke``).

It holds everything a study is, so a study continues from its folder alone — from another process, another node
of the cluster, or after a crash::

    journal.log        Optuna's journal storage: every trial, its values per epoch and its outcome (appended by
                       each trial's process under a file lock; works on a shared file system, as SLURM jobs need)
    study.json         the search file it came from, its data root and every trial's base arguments
    search.yaml        the search file as the study started (a later edit of its space is refused)
    trial_0000/ ...    one `dermlab fit` run folder per trial (checkpoints, csv/, config.yaml, trial.log)
    jobs/              one job record per trial started by a submitit launcher
    best.yaml, trials.csv, history.png, importances.png, intermediate.png   (:mod:`dermlab.tuning.results`)
    final/             --final-test: the best config trained again and tested once (result.json)

Trial outcomes: ``COMPLETE`` (its value is the best validation value of the objective over its epochs),
``PRUNED`` (stopped by the pruner), ``FAIL`` (an error: its ``error`` attribute says which, and it is not
retried), and — found when a study starts — a trial left ``RUNNING`` by a process that no longer lives is
*interrupted*: recorded ``FAIL`` with ``interrupted`` set, and its values queued again as a new trial.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from dermlab.errors import DataError
from dermlab.tuning import search

if TYPE_CHECKING:
    import optuna

JOURNAL = "journal.log"
RECORD = "study.json"
LAUNCHER_ENV = "DERMLAB_TUNE_LAUNCHER"  # set by the launcher in a trial's environment


def storage(study_dir: Path) -> optuna.storages.BaseStorage:
    """Optuna's journal storage on ``<study_dir>/journal.log``: one file, appended under a lock file beside it,
    readable by every process that sees the folder (no database server)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = study_dir / JOURNAL
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def open_study(study_dir: Path, spec: search.SearchSpec, slot: int = 0) -> optuna.Study:
    """The study in ``study_dir`` (created on first use), with the search's sampler seeded for ``slot`` and its
    pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(study_name=spec.name, storage=storage(study_dir), direction=spec.direction,
                               sampler=spec.build_sampler(slot), pruner=spec.build_pruner(), load_if_exists=True)


def for_telling(the_study: optuna.Study) -> optuna.Study:
    """The same study (its storage, no file read again) with a plain random sampler, to tell outcomes through: a
    sampler's ``after_trial`` may stop the study (Grid and BruteForce samplers do once every value has run), which
    only an ``optimize`` loop allows; trials here run one per process, asked and told, and the count of trials is
    ``dermlab tune``'s."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.Study(the_study.study_name, the_study._storage, sampler=optuna.samplers.RandomSampler())


def record(study_dir: Path) -> dict:
    """``study.json``: ``search`` (its path), ``data_root``, ``smoke`` and ``base_args`` (every trial's arguments
    before its drawn values).

    Raises:
        DataError: the folder holds no study.
    """
    path = study_dir / RECORD
    if not path.is_file():
        raise DataError(f"'{study_dir}' holds no study ({RECORD} is missing); start one with "
                        "`dermlab tune SEARCH.yaml`.")
    return json.loads(path.read_text())


def start(study_dir: Path, spec: search.SearchSpec, data_root: str | None, smoke: bool, base_args: list[str]
          ) -> dict:
    """Write the study's record and a copy of its search file on first use; on later use check that the search,
    data root and smoke setting are the ones the study began with (only ``trials`` may change).

    Raises:
        DataError: the search file's other keys changed, or another data root or smoke setting is given; the message
            says what differs and to start another study (``name:`` or ``--runs``).
    """
    study_dir.mkdir(parents=True, exist_ok=True)
    text = spec.path.read_text()
    current = {"search": str(spec.path), "data_root": data_root, "smoke": smoke, "base_args": base_args,
               "config_files": config_files(base_args)}
    path = study_dir / RECORD
    if not path.is_file():
        (study_dir / "search.yaml").write_text(text)
        path.write_text(json.dumps(current, indent=2))
        return current
    earlier = json.loads(path.read_text())
    before = _compared((study_dir / "search.yaml").read_text())
    now = _compared(text)
    changed = [f"its {key}" for key in sorted(set(before) | set(now)) if before.get(key) != now.get(key)]
    changed += [f"config file {name}" for name, digest in current["config_files"].items()
                if earlier.get("config_files", {}).get(name, digest) != digest]
    if earlier["data_root"] != data_root:
        changed.append(f"the data root ({earlier['data_root'] or 'synthetic'} → {data_root or 'synthetic'})")
    if earlier["smoke"] != smoke:
        changed.append("--smoke")
    if changed:
        raise DataError(f"study '{study_dir}' began with another setting: {', '.join(changed)} changed since (its "
                        f"search file as it began: {study_dir / 'search.yaml'}). Its trials would not compare: give "
                        "the search another name or run it under another --runs folder (only trials and title may "
                        "change to continue a study).")
    return earlier


def config_files(args: list[str]) -> dict[str, str]:
    """The SHA-256 of every yaml file the arguments name (``-c`` configs, ``--data`` files, augmentation files): a
    study whose base configs changed is refused, as one whose search file changed."""
    import hashlib

    files = sorted({a for a in args if a.endswith((".yaml", ".yml")) and Path(a).is_file()})
    return {name: hashlib.sha256(Path(name).read_bytes()).hexdigest() for name in files}


def _compared(text: str) -> dict:
    raw = yaml.safe_load(text) or {}
    return {k: v for k, v in raw.items() if k not in ("trials", "title")} if isinstance(raw, dict) else {}


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards ``--trials``: complete, pruned, and failed with an error (not retried);
    an interrupted trial does not count (its values run again)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))]


def running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials a live process still runs (``RUNNING`` and not found interrupted)."""
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def mark_interrupted(study: optuna.Study, study_dir: Path) -> list[int]:
    """Find the trials left ``RUNNING`` by a process that has ended (a killed study, a node lost, a job cancelled):
    record each ``FAIL`` with ``interrupted`` set and queue its values again as a new trial (``retry_of``), so the
    study goes on with every trial it had. Liveness: a submitit job's state (SLURM's ``sacct``), else the process
    on this host; a process on another host without a job is taken as alive. Returns the interrupted numbers."""
    from dermlab.grid.launcher import QUEUED, RUNNING, _alive, scheduler_states

    trials = running(study)
    jobs = {Path(str(t.number)): {"launcher": t.user_attrs.get("launcher"), "job_id": t.user_attrs.get("job_id"),
                                  "host": t.user_attrs.get("host")}
            for t in trials if t.user_attrs.get("job_id")}
    states = scheduler_states(jobs) if jobs else {}
    interrupted = []
    for trial in trials:
        attrs = trial.user_attrs
        job = attrs.get("job_id")
        if job and job in states:
            alive = states[job] in QUEUED | RUNNING
        elif attrs.get("host") == socket.gethostname() and attrs.get("pid"):
            alive = _alive(int(attrs["pid"]))
        else:
            alive = True
        if alive:
            continue
        interrupt(study, study_dir, trial)
        interrupted.append(trial.number)
    return interrupted


def interrupt(study: optuna.Study, study_dir: Path, trial: optuna.trial.FrozenTrial) -> None:
    """Record a trial whose process was stopped (a signal, a lost node) ``FAIL`` with ``interrupted`` set, and queue
    its values again as a new trial (``retry_of``; the paper's trial stays the paper's)."""
    from optuna.trial import TrialState

    study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
    for_telling(study).tell(trial.number, state=TrialState.FAIL)
    marks = {"paper": True} if trial.user_attrs.get("paper") else {}
    study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, **marks})


def worker_identity() -> dict[str, str | int]:
    """What identifies the process running a trial: host and pid, and under ``--launcher slurm`` the SLURM job
    (whose state tells, from any node, whether the trial still runs)."""
    identity: dict[str, str | int] = {"host": socket.gethostname(), "pid": os.getpid()}
    if os.environ.get(LAUNCHER_ENV) == "slurm" and os.environ.get("SLURM_JOB_ID"):
        identity.update(launcher="slurm", job_id=os.environ["SLURM_JOB_ID"])
    return identity
