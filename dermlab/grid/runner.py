"""Run the cells of a grid: one `dermlab` fit + test per cell, one run folder each, resumable.

A cell is finished when its folder holds ``result.json``; ``grid run`` skips finished cells, resumes
an interrupted one from its ``last.ckpt``, and records a crash in ``failed.json`` (with the log path)
without stopping the others. ``--parallel N`` runs N cells side by side, each on its own GPU when
there are N. Before anything trains, every axis value is parsed by the CLI and the requested metrics
are checked against what the model logs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dermlab.errors import DataError
from dermlab.grid.spec import Cell, GridSpec, cli_value

SMOKE_ARGS = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
              "--trainer.limit_test_batches", "1", "--trainer.num_sanity_val_steps", "0"]


def data_root_for(spec: GridSpec, data_root: str | None) -> tuple[str, list[str]]:
    """The data folder and extra arguments: the given root with the full settings, or the synthetic default."""
    if data_root:
        return data_root, []
    from datamodules.synthetic import ensure_synthetic

    root = f"data/synthetic/{spec.dataset}"
    ensure_synthetic(spec.dataset, root, n=spec.synthetic.get("n", 200), size=spec.synthetic.get("size", 64))
    return root, [str(a) for a in spec.synthetic.get("args", [])]


def cell_args(spec: GridSpec, cell: Cell, run_dir: Path, root: str, extra: list[str]) -> list[str]:
    """The `dermlab fit` arguments of one cell (W&B: group = table, job type = cell, tags = paper, data set)."""
    args = [a for config in spec.config for a in ("-c", config)] + spec.args + extra
    args += ["--data.init_args.root", root, "--trainer.default_root_dir", str(run_dir),
             "--run.name", f"{spec.table}/{cell.id}", "--run.group", spec.table, "--run.job_type", cell.id,
             "--run.tags", cli_value([spec.paper, spec.dataset])]
    for key, value in cell.values.items():
        args += [f"--{key}", cli_value(value)]
    return args


def _parse_only(args: list[str]) -> str | None:
    """Parse ``args`` with the CLI without instantiating anything; the error text, or None if valid."""
    from dermlab.cli import build_cli

    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            build_cli([*args, "--print_config"], run=False)
        except SystemExit as exit_info:
            if exit_info.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else "invalid arguments"
    return None


def validate(spec: GridSpec, root: str, extra: list[str]) -> None:
    """Every axis value parses, and the model logs every requested metric — before anything trains."""
    from dermlab.cli import build_cli

    cells = spec.cells()
    checked: set[tuple[str, str]] = set()
    for cell in cells:
        fresh = [(k, cli_value(v)) for k, v in cell.values.items() if (k, cli_value(v)) not in checked]
        if not fresh:
            continue
        checked.update(fresh)
        error = _parse_only(cell_args(spec, cell, Path("runs/_validate"), root, extra))
        if error:
            raise DataError(f"grid '{spec.path}' cell {cell.id}: the CLI rejects it ({error}); check that every "
                            f"axis ({', '.join(spec.axes)}) names an existing config key and a valid value.")
    with contextlib.redirect_stdout(io.StringIO()):
        cli = build_cli([*cell_args(spec, cells[0], Path("runs/_validate"), root, extra), "--run.wandb", "disabled",
                         "--trainer.logger", "false"], run=False)
    logged = set(cli.model.logged_metric_names())
    missing = [m for m in spec.metrics if m not in logged]
    if missing:
        raise DataError(f"grid '{spec.path}': the runs do not log {missing}; they log {sorted(logged)}.")


def run_cell_command(argv: list[str]) -> None:
    """``dermlab grid _cell RESULT -- ARGS``: fit (resuming from last.ckpt), test the best checkpoint, write RESULT."""
    from dermlab.cli import build_cli

    result_path, args = Path(argv[0]), argv[2:]
    start = time.perf_counter()
    last = result_path.parent / "checkpoints" / "last.ckpt"
    cli = build_cli(["fit", *args, *(["--ckpt_path", str(last)] if last.is_file() else [])])
    trainer = cli.trainer
    best = trainer.checkpoint_callback.best_model_path or None
    tested = trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=best or "last", verbose=False)[0]
    score = trainer.checkpoint_callback.best_model_score
    result = {"metrics": {k: float(v) for k, v in tested.items()}, "checkpoint": best,
              "best_monitor": None if score is None else float(score), "wall_time_s": time.perf_counter() - start,
              "resumed": last.is_file()}
    result_path.write_text(json.dumps(result, indent=2))


def _run_one(cell: Cell, args: list[str], run_dir: Path, devices: queue.Queue | None) -> str:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "failed.json").unlink(missing_ok=True)
    log_path = run_dir / "cell.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    device = devices.get() if devices else None
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(device)
    try:
        with log_path.open("a") as log:
            code = subprocess.run([sys.executable, "-m", "dermlab", "grid", "_cell", str(run_dir / "result.json"),
                                   "--", *args], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    finally:
        if device is not None:
            devices.put(device)
    if code != 0 or not (run_dir / "result.json").is_file():
        (run_dir / "failed.json").write_text(json.dumps({"returncode": code, "log": str(log_path)}))
        return "failed"
    return "done"


def run(spec: GridSpec, data_root: str | None = None, smoke: bool = False, parallel: int = 1,
        runs: Path = Path("runs")) -> dict[str, str]:
    """Run every unfinished cell; returns {cell id: done | skipped | failed}."""
    root, extra = data_root_for(spec, data_root)
    extra = extra + (SMOKE_ARGS if smoke else [])
    validate(spec, root, extra)
    base = spec.run_root(runs, smoke)
    status, todo = {}, []
    for cell in spec.cells():
        run_dir = base / cell.id
        if (run_dir / "result.json").is_file():
            status[cell.id] = "skipped"
            print(f"[grid] {cell.id}: finished earlier, skipped")
        else:
            todo.append((cell, cell_args(spec, cell, run_dir, root, extra), run_dir))
    devices = None
    if parallel > 1:
        import torch

        if torch.cuda.device_count() >= parallel:
            devices = queue.Queue()
            for index in range(parallel):
                devices.put(index)
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        futures = {pool.submit(_run_one, cell, args, run_dir, devices): (cell, run_dir) for cell, args, run_dir in todo}
        for future, (cell, run_dir) in futures.items():
            status[cell.id] = future.result()
            note = f" (log: {run_dir / 'cell.log'})" if status[cell.id] == "failed" else ""
            print(f"[grid] {cell.id}: {status[cell.id]}{note}")
    return status
