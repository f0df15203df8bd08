"""What a study leaves in its folder, rewritten after every trial (so a SLURM study has them without another
command): ``trials.csv`` (one row per trial), ``best.yaml`` (the best trial's resolved config, which
``dermlab fit -c`` takes), and, from two complete trials on, the plots ``history.png`` (Optuna's optimisation
history), ``importances.png`` (its parameter importances, by Optuna's default evaluator) and ``intermediate.png``
(the objective per epoch of every trial: what the pruner compared).
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from dermlab.tuning import search, study

if TYPE_CHECKING:
    import optuna

#: the columns of ``trials.csv`` (the searched keys go after ``value``)
COLUMNS = ("trial", "state", "value", "epochs", "duration_s", "paper", "retry_of", "error", "run_dir")


def rows(the_study: optuna.Study, spec: search.SearchSpec) -> list[dict]:
    """One row per trial: :data:`COLUMNS` with the searched keys (blank where a key was not drawn) after ``value``;
    ``state`` is Optuna's (``FAIL`` of an interrupted trial reads ``INTERRUPTED``), ``epochs`` the validations
    reported, ``paper`` marks the trial of the paper's values."""
    keys = [entry.key for entry in spec.space]
    table = []
    for trial in the_study.get_trials(deepcopy=False):
        state = "INTERRUPTED" if trial.user_attrs.get("interrupted") else trial.state.name
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        row = {"trial": trial.number, "state": state, "value": trial.value,
               **{key: trial.params.get(key, "") for key in keys},
               "epochs": len(trial.intermediate_values),
               "duration_s": None if duration is None else round(duration, 1),
               "paper": "yes" if trial.user_attrs.get("paper") else "",
               "retry_of": trial.user_attrs.get("retry_of", ""),
               "error": trial.user_attrs.get("error", ""), "run_dir": trial.user_attrs.get("run_dir", "")}
        table.append(row)
    return table


def write(study_dir: Path, quiet: bool = False) -> Path | None:
    """Write ``trials.csv``, ``best.yaml`` and the plots of the study in ``study_dir``; print the trials table unless
    ``quiet``. Returns ``best.yaml``, or None while no trial has completed."""
    spec = search.load(study_dir / "search.yaml")
    the_study = study.open_study(study_dir, spec)
    table = rows(the_study, spec)
    _atomic_text(study_dir / "trials.csv", _csv(table, spec))
    best = write_best(the_study, spec, study_dir)
    _plots(the_study, study_dir)
    if not quiet:
        print(markdown(table, spec, the_study))
    return best


def markdown(table: list[dict], spec: search.SearchSpec, the_study: optuna.Study) -> str:
    """The trials as a Markdown table, the best marked, the paper's trial named."""
    keys = [entry.key.rsplit(".", 1)[-1] if sum(e.key.rsplit(".", 1)[-1] == entry.key.rsplit(".", 1)[-1]
                                                 for e in spec.space) == 1 else entry.key for entry in spec.space]
    best = _best(the_study)
    lines = [f"Study {spec.name}: {spec.metric} ({spec.direction}), {len(table)} trial(s)", "",
             "| trial | state | " + " | ".join(keys) + f" | {spec.metric} | epochs |",
             "|---|---|" + "---|" * len(keys) + "---|---|"]
    for row in table:
        values = [_fmt(row[entry.key]) for entry in spec.space]
        mark = " (best)" if best is not None and row["trial"] == best.number else ""
        paper = " (paper)" if row["paper"] else ""
        lines.append(f"| {row['trial']}{paper} | {row['state']} | " + " | ".join(values)
                     + f" | {_fmt(row['value'])}{mark} | {row['epochs']} |")
    return "\n".join(lines)


def write_best(the_study: optuna.Study, spec: search.SearchSpec, study_dir: Path) -> Path | None:
    """``best.yaml``: the best complete trial's resolved config (its run's ``config.yaml``) with its run folder,
    loggers and checkpoint folder left for the new run to set, under a header naming the trial, its value and its
    values. ``dermlab fit -c best.yaml`` trains it again (to ``runs/<study>-best`` unless told otherwise)."""
    best = _best(the_study)
    if best is None:
        return None
    configs = sorted(Path(best.user_attrs.get("run_dir", "")).glob("csv/version_*/config.yaml"),
                     key=lambda p: int(p.parent.name.rsplit("_", 1)[-1]))
    if not configs:  # its run folder was removed: no config to write, and an older best.yaml would mislead
        (study_dir / "best.yaml").unlink(missing_ok=True)
        print(f"[tune] the best trial ({best.number}) has no config.yaml in {best.user_attrs.get('run_dir')} (its run "
              "folder was removed?): no best.yaml")
        return None
    config = yaml.safe_load(configs[-1].read_text())
    trainer = config.get("trainer") or {}
    trainer["default_root_dir"], trainer["logger"] = str(study_dir / "best"), None  # beside the study, not runs/
    for callback in trainer.get("callbacks") or []:
        if isinstance(callback, dict) and str(callback.get("class_path", "")).endswith("ModelCheckpoint"):
            callback.setdefault("init_args", {})["dirpath"] = None
    run = config.get("run") or {}
    run.update(name=f"tuning/{spec.name}/best", group=None, job_type=None)
    values = ", ".join(f"{k} = {v}" for k, v in best.params.items())
    header = (f"# Best trial ({best.number}) of study {spec.name} ({spec.path}): {spec.metric} = {best.value:.6g} "
              f"({spec.direction}) over {len(the_study.trials)} trial(s).\n# Values: {values}\n"
              f"# Train it again (into {study_dir / 'best'}): dermlab fit -c {study_dir / 'best.yaml'}\n")
    path = study_dir / "best.yaml"
    _atomic_text(path, header + yaml.safe_dump(config, sort_keys=False))
    return path


def best_number(study_dir: Path) -> int | None:
    """The number of the study's best complete trial, or None."""
    best = _best(study.open_study(study_dir, search.load(study_dir / "search.yaml")))
    return None if best is None else best.number


def _best(the_study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    from optuna.trial import TrialState

    done = [t for t in the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    pick = max if the_study.direction.name == "MAXIMIZE" else min
    return pick(done, key=lambda t: (t.value, -t.number) if pick is max else (t.value, t.number))


def _plots(the_study: optuna.Study, study_dir: Path) -> list[Path]:
    """The PNG plots (matplotlib backend of ``optuna.visualization``); a plot that needs more trials than there are
    is left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    written = []
    complete = [t for t in the_study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:  # a history of one point and no importances: wait for a second complete trial
        return written
    for name, draw in (("history", plots.plot_optimization_history), ("importances", plots.plot_param_importances),
                       ("intermediate", plots.plot_intermediate_values)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
                axes = draw(the_study)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            tmp = study_dir / f".{name}.{os.getpid()}.png"
            figure.savefig(tmp, dpi=120, bbox_inches="tight")
            plt.close(figure)
            tmp.replace(study_dir / f"{name}.png")
            written.append(study_dir / f"{name}.png")
        except (ValueError, RuntimeError, ZeroDivisionError, TypeError):  # too few trials or values for this plot
            plt.close("all")
    return written


def _csv(table: list[dict], spec: search.SearchSpec) -> str:
    columns = [*COLUMNS[:3], *(entry.key for entry in spec.space), *COLUMNS[3:]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # trials side by side write their own, then replace
    tmp.write_text(text)
    tmp.replace(path)


def _fmt(value: object) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
