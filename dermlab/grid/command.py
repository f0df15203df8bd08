"""``dermlab grid run|report|status|plan TABLE.yaml … | --paper NAME`` (and the internal ``_cell``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermlab.grid import cell, job_resources, runner, spec
from dermlab.grid import report as reporting


def _tables(args: argparse.Namespace) -> list[Path]:
    tables = [Path(t) for t in args.tables]
    if args.paper:
        tables += spec.paper_tables(args.paper)
    if not tables:
        raise SystemExit("dermlab grid: name grid files or --paper NAME")
    return tables


def _add_plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="projected GPU-hours and wall time of the tables at the paper's settings")
    p.add_argument("tables", nargs="*", help="grid files (experiments/<paper>/tables/<table>.yaml)")
    p.add_argument("--paper", help="every table of experiments/<paper>/tables/")
    p.add_argument("--throughput", type=float, metavar="IMAGES_PER_S", help="training images/s of ResNet-50 at "
                   "224 px on one GPU (default: the fit row make bench-gpu wrote to benchmarks/results/)")
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="GPUs the cells share, one cell per GPU (default 1)")
    p.add_argument("--data-root", metavar="DIR", help="count the images in the data sets' split files under this "
                   "data root instead of using the published split sizes")
    p.add_argument("--cells", action="store_true", help="also a row per cell")
    p.add_argument("--csv", metavar="FILE", help="also write one row per cell to FILE")


def _plan(args: argparse.Namespace) -> None:
    """``grid plan``: the projection of every table that runs cells, printed (and written to ``--csv``)."""
    from dermlab.grid import plan, plan_report

    throughput, source = ((args.throughput, "--throughput") if args.throughput is not None
                          else plan.reference_throughput())
    projections = {}
    for grid in map(spec.load, _tables(args)):
        if grid.cells_of:
            print(f"[grid] {grid.table}: renders the cells of {grid.cells_of}; nothing to plan")
            continue
        projections[f"{grid.paper}/{grid.table}"] = plan.plan_table(grid, throughput, args.gpus, args.data_root)
    print(plan_report.render(projections, source, counted=bool(args.data_root), cells=args.cells))
    if args.csv:
        print(f"[grid] one row per cell: {plan_report.write_csv(args.csv, projections)}")


def main(argv: list[str]) -> None:
    """Run ``dermlab grid``: ``run`` trains the cells (locally or as submitit jobs) and prints each table's report
    (a SLURM launch, which returns once the jobs are queued, says how to follow them instead), ``report`` renders the
    finished cells into ``report.md`` / ``report.csv``, ``status`` shows where each cell stands, ``plan`` projects
    the GPU-hours the tables will take (:mod:`dermlab.grid.plan`); ``_cell`` is the internal verb one cell's process
    runs.

    Args:
        argv: the arguments after ``grid``: the verb, grid files or ``--paper NAME``, and the verb's options.

    Raises:
        SystemExit: no grid named, job options without a submitit launcher, or cells that failed or could not
            start (named, after every table was run and reported).
        DataError: a malformed grid file, a missing data folder or weights file; for ``plan``, no throughput
            measured and none given.
    """
    if argv and argv[0] == "_cell":
        cell.run_cell_command(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="dermlab grid", description="Run experiment grids and render paper tables.")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("run", "report", "status"):
        p = sub.add_parser(verb)
        p.add_argument("tables", nargs="*", help="grid files (experiments/<paper>/tables/<table>.yaml)")
        p.add_argument("--paper", help="every table of experiments/<paper>/tables/")
        p.add_argument("--smoke", action="store_true", help="a couple of steps per cell, in runs/grids-smoke/")
        p.add_argument("--runs", default="runs", help="folder holding grids/ and grids-smoke/")
        if verb == "run":
            p.add_argument("--data-root", help="the folder holding one sub-folder per data set, as downloaded "
                           "(/data -> /data/isic2017, /data/ham10000, ...); default: synthetic sets, written if absent")
            p.add_argument("--parallel", type=int, default=1, help="cells side by side (one GPU each if there are N)")
            p.add_argument("--first", type=int, metavar="N", help="only the first N cells of each table on each data "
                           "set, and the cells they start from (the quickest wiring check, with --smoke)")
            job_resources.add_job_arguments(p, "cell", slurm_note=", dependent cells after their runs")
    _add_plan_parser(sub)
    args = parser.parse_args(argv)
    if args.verb == "plan":
        _plan(args)
        return
    if args.verb == "status":
        from dermlab.grid import status

        for table in _tables(args):
            print(status.render(spec.load(table), Path(args.runs), args.smoke))
        return
    launch = None
    if args.verb == "run" and args.launcher != "local":
        from dermlab.grid.launcher import Launcher

        launch = Launcher(args.launcher, job_resources.job_options(args, "cell"))
    elif args.verb == "run" and job_resources.job_options(args, "cell"):
        raise SystemExit("dermlab grid run: the job options (--gpus-per-cell, --time, --sbatch, ...) are for "
                         "--launcher slurm or submitit-local")
    failed = []
    grids = [spec.load(table) for table in _tables(args)]
    if args.verb == "run" and args.data_root:  # every table's data sets are there before the first one trains
        for grid in grids:
            runner.require_data_folders(grid, args.data_root)
            if not args.smoke:
                runner.require_weight_files(grid)
    if args.verb == "run" and args.first:
        runner.keep_first_cells(grids, args.first, runner.stands_in(args.data_root, args.smoke), Path(args.runs),
                                args.smoke)
    for table, grid in zip(_tables(args), grids, strict=True):
        if args.verb == "run":
            status = (launch.run if launch else runner.run)(grid, args.data_root, args.smoke, args.parallel,
                                                           Path(args.runs))
            failed += [f"{grid.table}/{c}" for c, s in status.items() if s in ("failed", "blocked")]
            if launch and not launch.waits:
                print(f"[grid] {grid.table}: follow the jobs with `dermlab grid status {table}`; "
                      f"`dermlab grid report {table}` once they have finished")
                continue
        print(reporting.report(grid, Path(args.runs), args.smoke))
    if failed:
        raise SystemExit(f"dermlab grid: {len(failed)} cell(s) failed or could not start: {', '.join(failed)} "
                         "(see their cell.log)")
