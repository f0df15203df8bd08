"""``dermlab tune SEARCH.yaml [--trials N] [--runs DIR] [--data-root DIR] [--parallel N]
[--launcher local|slurm|submitit-local] [--final-test] [--plan]``: an Optuna study over any config key.

The study lives in ``<runs>/tuning/<name>/`` (:mod:`dermlab.tuning.study`); calling the command again on the same
folder continues it — with a larger ``--trials``, more trials; a trial whose process was killed runs again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dermlab.errors import DataError
from dermlab.grid import job_resources, runner
from dermlab.grid.spec import cli_value
from dermlab.tuning import launch, results, search, study, trial


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(prog="dermlab tune", description="Search hyper-parameters with Optuna: every trial "
                                "is a `dermlab fit` run, scored on the validation split only.")
    p.add_argument("search", help="a search file (experiments/tuning/<name>.yaml)")
    p.add_argument("--trials", type=int, help="the study's number of trials (default: the file's trials); "
                   "a larger number on an existing study adds trials")
    p.add_argument("--runs", default="runs", help="folder holding the study: <runs>/tuning/<name> (default runs)")
    p.add_argument("--data-root", help="the folder holding one sub-folder per data set, as downloaded "
                   "(/data -> /data/isic2017, ...); default: the synthetic twin, written if absent")
    p.add_argument("--smoke", action="store_true", help="a couple of steps per trial, in <runs>/tuning-smoke/")
    p.add_argument("--parallel", type=int, default=1, help="trials side by side (one GPU each if there are N)")
    job_resources.add_job_arguments(p, "trial", gpus=False)
    p.add_argument("--final-test", action="store_true", help="after the study: train best.yaml again and test it, "
                   "once (in <study>/final/; a second call prints the same result)")
    p.add_argument("--plan", action="store_true", help="print the study's projected compute and stop (with "
                   "--throughput IMAGES_PER_S, or the one make bench-gpu measured)")
    p.add_argument("--throughput", type=float, help="--plan: training images/s of ResNet-50 at 224 px on your GPU")
    p.add_argument("--gpus", type=int, default=1, help="--plan: GPUs the trials share (default 1)")
    return p


def base_args(spec: search.SearchSpec, data_root: str | None, smoke: bool) -> list[str]:
    """Every trial's ``dermlab fit`` arguments before its drawn values: the search's configs and arguments, its data
    set's folder under ``data_root`` (or the synthetic twin, written if absent, and the CPU stand-in arguments), and
    with ``smoke`` a couple of steps."""
    grid = spec.grid()
    stand_in = runner.stands_in(data_root, smoke)
    root, extra = runner.data_root_for(grid, data_root, spec.dataset, stand_in)
    cell = grid.cells()[0]
    args = runner.cell_args(grid, cell, Path("runs/tuning") / spec.name / "trial", root, extra, stand_in, data_root)
    return args + (runner.SMOKE_ARGS if smoke else [])


def check(spec: search.SearchSpec, args: list[str]) -> None:
    """Before any trial: every range's ends (or choices) parse as values of their keys, and the model logs the
    objective (built once on the CPU, as ``grid run`` checks a grid).

    Raises:
        DataError: naming the key and value the CLI rejects, or the metrics the model logs.
    """
    from dermlab.commands.trainer import build_cli, config_parser

    values = [word for entry in spec.space for value in entry.values for word in (f"--{entry.key}", cli_value(value))]
    error = config_parser().check([*args, *values])  # one parse: the parser checks every value as it reads it
    if error:
        raise DataError(f"search '{spec.path}': the CLI rejects a value of the space ({error}); check that every key "
                        f"({', '.join(e.key for e in spec.space)}) is a config key and its range holds valid values.")
    import contextlib
    import io
    import warnings

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
        cli = build_cli([*args, "--run.wandb", "disabled", "--trainer.logger", "false", *runner.CHECK_ON_CPU],
                        run=False)
    logged = getattr(cli.model, "logged_metric_names", None)
    if logged is not None and spec.metric not in logged():
        raise DataError(f"search '{spec.path}': the runs do not log {spec.metric}; they log {sorted(logged())}.")
    table = getattr(cli.datamodule, "table", None)
    if table is not None and not len(table("val")):
        raise DataError(f"search '{spec.path}': the data has no validation images, and a study scores its trials on "
                        "them (never on the test split). Hold some out: e.g. --data.init_args.val_fraction 0.1 in the "
                        "search's args (data sets with an official validation split have one already).")


def paper_trial(spec: search.SearchSpec, args: list[str]) -> dict:
    """The values of the study's first trial: the paper's where the search marks them, the config's value of every
    other key (where it lies in the key's range), so that the trial runs the paper's setting, not a random draw."""
    from dermlab.commands.trainer import config_parser

    config = config_parser().parse(args)
    values = {}
    for entry in spec.space:
        value = config.get(entry.key)
        inside = (cli_value(value) in {cli_value(c) for c in entry.values} if entry.kind == "categorical" else
                  search._number(value) and entry.values[0] <= value <= entry.values[1])
        if inside and entry.applies({**values, **spec.paper_values()}):
            values[entry.key] = value
    return {**values, **spec.paper_values()}


def main(argv: list[str]) -> None:
    """Run ``dermlab tune``.

    Raises:
        SystemExit: trials failed (named, after the study's results are written) or a bad option.
        DataError: a malformed search file, a changed search on an existing study, a missing data folder.
    """
    if argv and argv[0] == "_trial":
        trial.main(argv[1:])
        return
    args = parser().parse_args(argv)
    spec = search.load(args.search)
    n_trials = spec.trials if args.trials is None else args.trials
    if n_trials < 1 or args.parallel < 1:
        raise SystemExit("dermlab tune: --trials and --parallel must be at least 1")
    options = job_resources.job_options(args, "trial")
    if args.launcher == "local" and options:
        raise SystemExit("dermlab tune: the job options (--time, --mem, --sbatch, ...) are for --launcher slurm or "
                         "submitit-local")
    job_resources.from_mapping(options, "dermlab tune")  # a bad option stops before anything is built
    if args.launcher == "slurm" and args.final_test:
        raise SystemExit("dermlab tune: --final-test trains and tests here; with --launcher slurm, run it without "
                         "--launcher once the study's jobs have finished (or submit it as a job of your own)")
    if args.plan:
        return _plan(spec, args, n_trials)
    study_dir = Path(args.runs) / ("tuning-smoke" if args.smoke else "tuning") / spec.name
    fresh = not (study_dir / study.RECORD).is_file()
    first_args = base_args(spec, args.data_root, args.smoke)
    if fresh:
        check(spec, first_args)
    study.start(study_dir, spec, args.data_root, args.smoke, first_args)
    the_study = study.open_study(study_dir, spec)
    if fresh and spec.paper_values():
        the_study.enqueue_trial(paper_trial(spec, first_args), user_attrs={"paper": True})
    for number in study.mark_interrupted(the_study, study_dir):
        print(f"[tune] trial {number} was interrupted (its process ended without a result); its values run again")
    done, live = study.finished(the_study), study.running(the_study)
    queued = launch.queued_slots(study_dir, the_study)
    todo = max(0, n_trials - len(done) - len(live) - len(queued))
    print(f"[tune] study {spec.name} in {study_dir}: {len(done)} of {n_trials} trial(s) finished, "
          f"{len(live) + len(queued)} running or queued, {todo} to start")
    first = len(the_study.get_trials(deepcopy=False)) + len(queued)
    slots = list(range(first, first + todo))
    if args.launcher == "local":
        launch.run_here(study_dir, the_study, slots, args.parallel)
    elif slots:
        launch.submit(study_dir, the_study, slots, args.launcher, options, args.parallel, spec.slurm, spec.name)
    if args.launcher == "slurm" and (slots or live or queued):
        print(f"[tune] the trials run as SLURM jobs; `dermlab tune {args.search} --runs {args.runs}"
              f"{' --trials ' + str(n_trials) if args.trials else ''}` shows the study and writes best.yaml "
              "once they have finished")
    best = results.write(study_dir)
    print(f"[tune] trials table {study_dir / 'trials.csv'}; plots history.png, importances.png, intermediate.png"
          + (f"; best config {best} (dermlab fit -c {best} trains it again in {study_dir / 'best'})" if best else
             "; no best config (no complete trial with its run folder)"))
    if args.final_test:
        final_test(study_dir, best)
    failed = [t.number for t in study.finished(the_study) if t.state.name == "FAIL"]
    if failed and args.launcher != "slurm":
        raise SystemExit(f"dermlab tune: {len(failed)} trial(s) failed: {failed} (trials.csv gives each error; "
                         "their trial.log the whole story)")


def final_test(study_dir: Path, best: Path | None) -> dict:
    """Train ``best.yaml`` again in ``<study>/final`` and test its best checkpoint, once: a second call prints the
    result it wrote (``final/result.json``, as a grid cell's). Returns the test metrics.

    Raises:
        SystemExit: no trial has completed yet, or the final run failed (its log named).
    """
    final = study_dir / "final"
    now = results.best_number(study_dir)
    if not (final / "result.json").is_file():
        if best is None or now is None:
            raise SystemExit("dermlab tune --final-test: no complete trial with its run folder; nothing to test")
        args = ["-c", str(best), "--trainer.default_root_dir", str(final), "--run.name",
                f"{study_dir.parent.name}/{study_dir.name}/final", *trial.ONE_DEVICE]
        if runner.run_one(args, final) != "done":
            raise SystemExit(f"dermlab tune --final-test: the final run failed; see {final / 'cell.log'}")
        (final / "tested_trial.json").write_text(json.dumps({"trial": now}))
    else:
        tested = json.loads((final / "tested_trial.json").read_text())["trial"] if (
            final / "tested_trial.json").is_file() else None
        print(f"[tune] the best config (trial {tested}) was tested once already ({final / 'result.json'}); not again")
        if now != tested:
            print(f"[tune] WARNING: the study has continued since, and its best is now trial {now}. Testing it too "
                  "would read the test split a second time and pick among tested configs: report the result below "
                  f"as trial {tested}'s, or, knowing that, remove {final} to test the new best.")
    metrics = json.loads((final / "result.json").read_text())["metrics"]
    print("[tune] final test of best.yaml: " + ", ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())
                                                         if k.startswith("test/")))
    return metrics


def _plan(spec: search.SearchSpec, args: argparse.Namespace, n_trials: int) -> None:
    """``tune --plan``: the study's trials projected as ``dermlab grid plan`` projects a table's cells — at the paper's
    settings (not the CPU stand-in), each trial at the search's paper values (the other keys at their config values)
    and running every epoch: an upper bound where the pruner stops trials early."""
    import dataclasses

    from dermlab.files.data_folders import data_set_folder
    from dermlab.grid import plan, plan_report

    throughput, source = ((args.throughput, "--throughput") if args.throughput is not None
                          else plan.reference_throughput())
    grid = spec.grid()
    root = str(data_set_folder(args.data_root, spec.dataset)) if args.data_root else f"/data/{spec.dataset}"
    fit_args = runner.cell_args(grid, grid.cells()[0], Path("runs/tuning") / spec.name / "trial", root, [], False,
                                args.data_root)
    fit_args += [word for key, value in spec.paper_values().items() for word in (f"--{key}", cli_value(value))]
    one = plan.run_cost(fit_args, "trial 0", count=bool(args.data_root))
    runs = [dataclasses.replace(one, name=f"trial {i}", test_images=0) for i in range(n_trials)]  # a study never tests
    projection = plan.project(runs, throughput, args.gpus)
    print(plan_report.render({f"tuning/{spec.name}": projection}, source, counted=bool(args.data_root)))
    print(f"[tune] {n_trials} trial(s), each running all its epochs (a pruned trial stops earlier) at the search's "
          "paper values; trials run one per GPU")
