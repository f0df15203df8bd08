"""One trial of a study, in its own process (``dermlab tune _trial STUDY_DIR --slot K``): ask the study for the
next values, train them as a ``dermlab fit`` run in ``<study>/trial_NNNN/`` with Optuna's Lightning pruning callback,
and tell the study the outcome.

Every launcher runs a trial this way — the local one as a subprocess, a submitit job (SLURM or local) in its task —
so a trial is a ``dermlab fit`` run like any other: the split audit, the seed, the run folder with its resolved
``config.yaml``, CSV metrics and checkpoints. The trial's value is the best validation value of the search's
objective over its epochs (what the pruner saw epoch by epoch); the test split is never set up.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dermlab.grid.spec import cli_value
from dermlab.tuning import search, study

if TYPE_CHECKING:
    import optuna

#: The arguments that keep a trial on one device (trials run side by side instead, ``--parallel`` or one job per
#: trial; and a trial's process asks the study for its values once, which a DDP launch would repeat per process).
ONE_DEVICE = ["--trainer.devices", "1", "--trainer.num_nodes", "1"]
INTERRUPTED = 130  #: the exit code of a trial's process that was stopped by a signal (the shell's 128 + SIGINT)


def trial_dir(study_dir: Path, number: int) -> Path:
    """The run folder of trial ``number``: ``<study>/trial_NNNN``."""
    return study_dir / f"trial_{number:04d}"


def trial_args(base_args: list[str], values: dict[str, Any], run_dir: Path, name: str) -> list[str]:
    """The ``dermlab fit`` arguments of one trial: the study's base arguments, the drawn values (one
    ``--key value`` each, as the CLI reads them), its run folder and W&B names (group = study, job type = trial)."""
    args = list(base_args)
    for key, value in values.items():
        args += [f"--{key}", cli_value(value)]
    return [*args, *ONE_DEVICE, "--trainer.default_root_dir", str(run_dir), "--run.name",
            f"tuning/{name}/{run_dir.name}", "--run.group", f"tuning/{name}", "--run.job_type", run_dir.name]


def run_trial(study_dir: Path, slot: int, log_to_trial: bool = False) -> int:
    """Run the next trial of the study in ``study_dir``; returns its number.

    Args:
        study_dir: the study's folder (:mod:`dermlab.tuning.study`), started by ``dermlab tune``.
        slot: this process's place among the trials started (seeds the sampler: see
            :meth:`~dermlab.tuning.search.SearchSpec.build_sampler`).
        log_to_trial: send this process's output to ``trial_NNNN/trial.log`` once the number is known (a trial
            started by a launcher; in-process callers keep their own output).

    Raises:
        Exception: whatever stopped the trial's run, after the trial is recorded ``FAIL`` with the error's line.
    """
    import optuna
    from optuna.trial import TrialState

    recorded = study.record(study_dir)
    spec = search.load(study_dir / "search.yaml")
    the_study = study.open_study(study_dir, spec, slot)
    trial = the_study.ask()
    teller = study.for_telling(the_study)
    run_dir = trial_dir(study_dir, trial.number)
    run_dir.mkdir(parents=True, exist_ok=True)
    if log_to_trial:
        _redirect_output(run_dir / "trial.log")
    for key, value in {**study.worker_identity(), "slot": slot, "run_dir": str(run_dir)}.items():
        trial.set_user_attr(key, value)
    values = spec.draw(trial)
    print(f"[tune] trial {trial.number} of {spec.name}: " + ", ".join(f"{k}={cli_value(v)}" for k, v in values.items()),
          flush=True)
    stopped = _on_stop_signals()
    try:
        value = fit(trial_args(recorded["base_args"], values, run_dir, spec.name), trial, spec.metric, spec.direction)
    except optuna.TrialPruned as pruned:
        teller.tell(trial.number, state=TrialState.PRUNED)
        print(f"[tune] trial {trial.number}: pruned ({pruned})", flush=True)
    except BaseException as error:
        if stopped or isinstance(error, (KeyboardInterrupt, SystemExit)):  # Ctrl-C, a kill, a time limit: not the
            print(f"[tune] trial {trial.number}: interrupted; the next `dermlab tune` runs its values again",
                  flush=True)  # trial's fault: left running, the next call finds its process ended and retries it
            raise SystemExit(INTERRUPTED) from None
        trial.set_user_attr("error", _one_line(error))
        teller.tell(trial.number, state=TrialState.FAIL)
        print(f"[tune] trial {trial.number}: failed ({_one_line(error)})", flush=True)
        raise
    else:
        teller.tell(trial.number, value)
        print(f"[tune] trial {trial.number}: {spec.metric} = {value:.6g}", flush=True)
    from dermlab.tuning import results

    with contextlib.suppress(Exception):  # the study's summary is rewritten by every trial; a failure here is not the
        results.write(study_dir, quiet=True)  # trial's (``dermlab tune`` writes it again at the end)
    return trial.number


def _on_stop_signals() -> list[int]:
    """Note SIGINT and SIGTERM (Ctrl-C, ``kill``, SLURM's time limit) in the returned list, then stop as Python
    does on Ctrl-C: whatever error the stop causes next (Lightning's shutdown, a DataLoader worker killed with the
    process group) is then known to be an interruption, not the trial's failure."""
    import signal
    import threading

    stopped: list[int] = []

    def note(number: int, frame: object) -> None:
        stopped.append(number)
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # a trial's own process (not a test's thread)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, note)
    return stopped


def fit(args: list[str], trial: optuna.trial.Trial, metric: str, direction: str) -> float:
    """Train ``args`` as ``dermlab fit`` does, reporting ``metric`` to ``trial`` after every validation (Optuna's
    ``PyTorchLightningPruningCallback``, which raises :class:`optuna.TrialPruned` when the pruner says so); returns the
    best value of ``metric`` over the epochs (max or min per ``direction``).

    Raises:
        optuna.TrialPruned: the pruner stopped the trial.
        DataError: the run never logged ``metric`` at validation.
    """
    from optuna_integration import PyTorchLightningPruningCallback

    from dermlab.commands.trainer import build_cli
    from dermlab.errors import DataError

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")  # names the _trial command line
        cli = build_cli(args, run=False)
    cli.trainer.callbacks.append(PyTorchLightningPruningCallback(trial, monitor=metric))
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    reported = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number).intermediate_values
    if not reported:
        raise DataError(f"trial {trial.number}: the run logged no {metric} at validation (was validation skipped, "
                        "or is the metric named differently?); see its csv/ metrics.")
    return (max if direction == "maximize" else min)(reported.values())


def _redirect_output(path: Path) -> None:
    sys.stdout.flush(), sys.stderr.flush()
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1), os.dup2(log, 2)
    os.close(log)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    last = traceback.extract_tb(error.__traceback__)[-1:] if error.__traceback__ else []
    where = f" ({Path(last[0].filename).name}:{last[0].lineno})" if last and not str(error) else ""
    return f"{type(error).__name__}: {text}{where}"[:500]


def main(argv: list[str]) -> None:
    """``dermlab tune _trial STUDY_DIR --slot K``: what a launcher's process runs (exit 1 when the trial failed)."""
    study_dir, slot = Path(argv[0]), int(argv[argv.index("--slot") + 1]) if "--slot" in argv else 0
    try:
        run_trial(study_dir, slot, log_to_trial=True)
    except SystemExit:
        raise
    except Exception:
        traceback.print_exc()
        raise SystemExit(1) from None
