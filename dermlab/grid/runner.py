"""Run the cells of a grid: one `dermlab` fit + test per cell, one run folder each, resumable.

A cell is finished when its folder holds ``result.json``; ``grid run`` skips finished cells, resumes
an interrupted one from its ``last.ckpt`` (a finished cell keeps only its best checkpoint, without the
optimiser state), and records a crash in ``failed.json`` (with the log path)
without stopping the others. ``--parallel N`` runs N cells side by side, each on its own GPU when
there are N. Before anything trains, every axis value is parsed by the CLI and the requested metrics
are checked against what the model logs. ``--launcher slurm | submitit-local`` runs the same cells, through
:func:`prepare` and :func:`run_one`, as submitit jobs (:mod:`dermlab.grid.launcher`).

A classifier cell also writes its per-image predictions with the checkpoint it tested
(:mod:`dermlab.files.predictions`): ``predictions_test.csv`` (unless its test run wrote one already) and, on a
grid with a ``fold`` axis, ``predictions_val.csv`` of its held-out fold — what the report's intervals, paired
tests, out-of-fold scores and fold ensembles are computed from.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dermlab.errors import DataError
from dermlab.grid.data_roots import (  # noqa: F401  (re-exported: the runner's data side, one import for callers)
    data_root_for,
    data_sets_read,
    referenced_data_sets,
    require_data_folders,
    resolve_data_refs,
    stands_in,
    synthetic_folder,
    write_synthetic_roots,
)
from dermlab.grid.spec import Cell, GridSpec, cli_value

# the metrics check builds the model on the CPU: it needs no GPU, so a cluster's login node can run it
CHECK_ON_CPU = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
SMOKE_ARGS = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--trainer.limit_test_batches", "1", "--trainer.num_sanity_val_steps", "0"]


WEIGHT_FILE = re.compile(r"(?<![\w/.])(weights/[\w.+-]+\.(?:safetensors|pth|pt|bin))\b")


def require_weight_files(spec: GridSpec, root: Path = Path(".")) -> list[str]:
    """The local pretrained weight files (``weights/...``) the grid's cells name with the paper's settings, in
    their arguments or their config files (comments left out), each checked to exist under ``root``.

    Raises:
        DataError: files are missing; the message names them and where the docs say to get them.
    """
    texts = [a for cell in spec.cells() for a in cell_args(spec, cell, Path("runs/x") / cell.id, "x", [])]
    for config in spec.config:
        path = root / config
        if path.is_file():
            texts += [line.split("#", 1)[0] for line in path.read_text().splitlines()]
    files = sorted({m for text in texts for m in WEIGHT_FILE.findall(text)})
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise DataError(f"grid '{spec.path}': the paper's settings start from local pretrained weights that are not "
                        f"there: {', '.join(missing)}. Put them under weights/ (the documentation's Pretrained "
                        "weights page, docs/weights.md, says where each comes from), or run the smoke form "
                        "(--smoke / make <paper>-smoke), which uses stand-in weights.")
    return files


def cell_args(spec: GridSpec, cell: Cell, run_dir: Path, root: str, extra: list[str], stand_in: bool = False,
              data_root: str | None = None) -> list[str]:
    """The `dermlab fit` arguments of one cell (W&B: group = table, job type = cell, tags = paper, data set).

    A labelled value that is a mapping sets several keys. With the CPU stand-in
    (:func:`~dermlab.grid.data_roots.stands_in`), ``synthetic.replace`` swaps whole arguments (e.g. an ImageNet
    weights file for a stand-in trained on synthetic data) and ``synthetic.settings`` adds settings per axis value
    after everything else (e.g. a CPU stand-in for the model a cell's config names). ``{data:NAME}`` becomes data
    set NAME's folder under ``data_root`` (or its synthetic twin without one), ``{synthetic:NAME}`` always the
    synthetic twin (:func:`~dermlab.grid.data_roots.resolve_data_refs`)."""
    args = [a for config in spec.config for a in ("-c", config)]
    if "dataset" in spec.axes:
        args += ["--data", f"experiments/base/data/{cell.values['dataset']}.yaml"]
    args += spec.args + extra
    args += ["--data.init_args.root", root, "--trainer.default_root_dir", str(run_dir),
             "--run.name", f"{spec.table}/{cell.id}", "--run.group", spec.table, "--run.job_type", cell.id,
             "--run.tags", cli_value([spec.paper, spec.dataset_of(cell)])]
    for key, value in cell.settings.items():
        if key == "dataset":
            continue
        several = value if isinstance(spec.axes[key], dict) and isinstance(value, dict) else {key: value}
        for name, setting in several.items():
            args += [f"--{name}", cli_value(setting)]
    for axis, labels in (spec.synthetic.get("settings") or {}).items() if stand_in else ():
        for name, setting in (labels.get(cell.values[axis]) or {}).items():  # last: CPU stand-ins per axis value
            args += [f"--{name}", cli_value(setting)]
    grids = str(run_dir.parents[2]) if len(run_dir.parents) > 2 else "runs/grids"  # runs/grids or grids-smoke
    replace = {str(k): str(v).replace("{grids}", grids)
               for k, v in (spec.synthetic.get("replace") or {}).items()} if stand_in else {}
    args = [resolve_data_refs(spec, replace.get(a, a), data_root) for a in args]

    def folder(ref: Cell) -> Path:  # a cell of this table, or of another (``@cell(table: ...)``) beside it
        return (run_dir.parent.parent / ref.table if ref.table else run_dir.parent) / ref.id

    return [spec.substitute(cell, a, folder) for a in args]


def depends_on(spec: GridSpec, cell: Cell, args: list[str], run_dir: Path) -> set[str]:
    """Ids of the other cells whose run folders this cell's arguments name (``@cell(...)``)."""
    folders = {str(run_dir.parent / other.id): other.id for other in spec.cells() if other.id != cell.id}
    return {folders[token] for a in args for token in re.split(r"[\[\],\s]+", a) if token in folders}


def referenced_runs(args: list[str], run_dir: Path) -> set[Path]:
    """The run folders of other cells, of this table or of a table beside it (``@cell(table: ...)``), that a cell's
    arguments name: every token ``<runs>/grids/<paper>/<table>/<cell>`` of the same paper folder."""
    paper = run_dir.parent.parent
    tokens = {Path(token) for a in args for token in re.split(r"[\[\],\s]+", a) if token}
    return {t for t in tokens if t.parent.parent == paper and t != run_dir}


def _parse_only(args: list[str]) -> str | None:
    """Parse ``args`` with the CLI without instantiating anything; the error text, or None if valid."""
    from dermlab.commands.trainer import config_parser

    return config_parser().check(args)


def validate(spec: GridSpec, data: dict[str, tuple[str, list[str]]], stand_in: bool = False,
             base: Path = Path("runs/grids"), defer_unfinished: bool = False, data_root: str | None = None) -> None:
    """Every axis value parses, and the model logs every requested metric — before anything trains.

    The metrics are checked on the first cell of each data set; with ``defer_unfinished`` (a launcher that queues
    the cells a cell starts from, :mod:`dermlab.grid.launcher`) on the first one that names no unfinished run
    folder, since a model that starts from a run still to come cannot be built yet. When every cell of a data set
    does, the check is left to the runs, and a line says so."""
    from dermlab.commands.trainer import build_cli

    cells = spec.cells()
    checked: set[tuple[str, str]] = set()
    for cell in cells:
        fresh = [(k, cli_value(v)) for k, v in cell.settings.items() if (k, cli_value(v)) not in checked]
        if not fresh:
            continue
        checked.update(fresh)
        error = _parse_only(cell_args(spec, cell, base / "_validate", *data[spec.dataset_of(cell)], stand_in,
                                      data_root))
        if error:
            raise DataError(f"grid '{spec.path}' cell {cell.id}: the CLI rejects it ({error}); check that every "
                            f"axis ({', '.join(spec.axes)}) names an existing config key and a valid value.")
    logged: set[str] = set()
    built = False
    for dataset in dict.fromkeys(spec.dataset_of(c) for c in cells):  # a metric must be logged on some data set
        first = next((c for c in cells if spec.dataset_of(c) == dataset and not (defer_unfinished and any(
            not (folder / "result.json").is_file() for folder in referenced_runs(
                cell_args(spec, c, base / "_validate", *data[dataset], stand_in, data_root),
                base / "_validate")))), None)
        if first is None:
            print(f"[grid] {spec.table}: every cell on {dataset} starts from a run still to come; the metrics they "
                  "log are checked when they run")
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            cli = build_cli([*cell_args(spec, first, base / "_validate", *data[dataset], stand_in, data_root),
                             "--run.wandb", "disabled", "--trainer.logger", "false", *CHECK_ON_CPU], run=False)
        logged |= set(cli.model.logged_metric_names())
        built = True
        # scores computed after `test` (per skin-type group, callbacks.SubgroupMetrics)
        logged |= {n for c in cli.trainer.callbacks for n in getattr(c, "test_metric_names", lambda m: [])(cli.model)}
        if spec.predict:  # scores computed after `predict` (e.g. full-size segmentation masks, callbacks.MaskWriter)
            logged |= {n for c in cli.trainer.callbacks for n in getattr(c, "metric_names", lambda m: [])(cli.model)}
    missing = [m for m in spec.metrics if m not in logged]
    if built and missing:
        raise DataError(f"grid '{spec.path}': the runs do not log {missing}; they log {sorted(logged)}.")


def run_one(args: list[str], run_dir: Path, devices: queue.Queue | None = None, predict: bool = False,
            val_predictions: bool = False, rank: int = 0) -> str:
    """Run one cell — ``dermlab grid _cell`` in a subprocess, resuming from its ``last.ckpt`` — logging to
    ``<run_dir>/cell.log``; returns ``done``, or ``failed`` after writing ``failed.json`` (return code, log path).

    Every launcher runs a cell through this function: the local runner in a thread, a submitit job
    (:mod:`dermlab.grid.launcher`) in each of its tasks. ``rank`` is the task's global rank when a job runs one
    process per GPU (DDP under SLURM): the others log to ``cell.rank<N>.log``, and only rank 0 touches
    ``failed.json`` (a rank other than 0 reports ``failed`` only on a non-zero return code).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (run_dir / "failed.json").unlink(missing_ok=True)
    log_path = run_dir / ("cell.log" if rank == 0 else f"cell.rank{rank}.log")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    device = devices.get() if devices else None
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device)
    try:
        with log_path.open("a") as log:
            code = subprocess.run([sys.executable, "-m", "dermlab", "grid", "_cell", str(run_dir / "result.json"),
                                   *(["--predict"] if predict else []),
                                   *(["--val-predictions"] if val_predictions else []), "--", *args],
                                  stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    finally:
        if device is not None:
            devices.put(device)
    if rank != 0:
        return "failed" if code != 0 else "done"
    if code != 0 or not (run_dir / "result.json").is_file():
        (run_dir / "failed.json").write_text(json.dumps({"returncode": code, "log": str(log_path)}))
        return "failed"
    return "done"


def runnable_cells(spec: GridSpec, stand_in: bool) -> list[Cell]:
    """The grid's cells in file order, less those the CPU stand-in leaves out (``synthetic.axes``)."""
    subset = (spec.synthetic.get("axes") or {}) if stand_in else {}
    return [c for c in spec.cells() if all(c.values[axis] in values for axis, values in subset.items())]


def keep_first_cells(grids: list[GridSpec], n: int, stand_in: bool, runs: Path = Path("runs"), smoke: bool = True
                     ) -> dict[str, set[str]]:
    """Restrict each grid to its first ``n`` cells on each data set and every cell those start from (``@cell``,
    also in another of ``grids``, which must then come first, as ``--paper`` orders them): ``grid run --first N``,
    the quick form of a smoke run. Sets each grid's ``only``; returns it by table."""
    by_table = {g.table: g for g in grids if not g.cells_of}
    keep: dict[str, set[str]] = {table: set() for table in by_table}
    todo: list[tuple[GridSpec, Cell]] = []
    for grid in by_table.values():
        taken: dict[str, int] = {}
        for cell in runnable_cells(grid, stand_in):
            dataset = grid.dataset_of(cell)
            if taken.get(dataset, 0) < n:
                taken[dataset] = taken.get(dataset, 0) + 1
                todo.append((grid, cell))
    while todo:
        grid, cell = todo.pop()
        if cell.id in keep[grid.table]:
            continue
        keep[grid.table].add(cell.id)
        run_dir = grid.run_root(runs, smoke) / cell.id
        for folder in referenced_runs(cell_args(grid, cell, run_dir, "x", [], stand_in), run_dir):
            other = by_table.get(folder.parent.name)
            ref = next((c for c in other.cells() if c.id == folder.name), None) if other else None
            if ref is not None:
                todo.append((other, ref))
    for table, grid in by_table.items():
        grid.only = keep[table]
    return keep


def prepare(spec: GridSpec, data_root: str | None = None, smoke: bool = False, runs: Path = Path("runs"),
            defer_unfinished: bool = False) -> tuple[dict[str, str], list[tuple[Cell, list[str], Path]]]:
    """Check the grid (:func:`validate`) and list what is left to run: ``({cell id: "skipped"}`` for the cells
    that finished earlier``, [(cell, its arguments, its run folder)]`` for the others, in file order)."""
    data = {}
    stand_in = stands_in(data_root, smoke)
    if data_root:  # every folder the grid reads, before anything trains
        require_data_folders(spec, data_root)
    write_synthetic_roots(spec, data_root)  # the twins its cells name ({synthetic:NAME}; {data:NAME} without a root)
    for cell in spec.cells():
        dataset = spec.dataset_of(cell)
        if dataset not in data:  # every data set's folder is checked (or written) before anything trains
            root, extra = data_root_for(spec, data_root, dataset, stand_in)
            data[dataset] = (root, extra + (SMOKE_ARGS if smoke else []))
    base = spec.run_root(runs, smoke)
    validate(spec, data, stand_in=stand_in, base=base, defer_unfinished=defer_unfinished, data_root=data_root)
    status, todo = {}, []
    for cell in runnable_cells(spec, stand_in):
        if spec.only is not None and cell.id not in spec.only:
            continue
        run_dir = base / cell.id
        if (run_dir / "result.json").is_file():
            status[cell.id] = "skipped"
            print(f"[grid] {cell.id}: finished earlier, skipped")
            continue
        todo.append((cell, cell_args(spec, cell, run_dir, *data[spec.dataset_of(cell)], stand_in, data_root),
                     run_dir))
    return status, todo


def run(spec: GridSpec, data_root: str | None = None, smoke: bool = False, parallel: int = 1,
        runs: Path = Path("runs")) -> dict[str, str]:
    """Run every unfinished cell; returns {cell id: done | skipped | failed}.

    Cells that name another cell's folder (``@cell(...)``) run in a second wave, after the first.
    """
    if spec.cells_of:
        print(f"[grid] {spec.table}: renders the cells of {spec.cells_of}; nothing to run")
        return {}
    status, todo = prepare(spec, data_root, smoke, runs)
    waves = ([], [])
    for cell, args, run_dir in todo:
        waves[bool(depends_on(spec, cell, args, run_dir))].append((cell, args, run_dir))
    devices = None
    if parallel > 1:
        import torch

        if torch.cuda.device_count() >= parallel:
            devices = queue.Queue()
            for index in range(parallel):
                devices.put(index)
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        for wave in waves:
            futures = {pool.submit(run_one, args, run_dir, devices, spec.predict,
                                   spec.fold_axis() is not None): (cell, run_dir)
                       for cell, args, run_dir in wave}
            for future, (cell, run_dir) in futures.items():
                status[cell.id] = future.result()
                note = f" (log: {run_dir / 'cell.log'})" if status[cell.id] == "failed" else ""
                print(f"[grid] {cell.id}: {status[cell.id]}{note}")
    return status
