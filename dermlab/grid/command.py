"""``dermlab grid run|report TABLE.yaml ... | --paper NAME`` (and the internal ``_cell``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dermlab.grid import report as reporting
from dermlab.grid import runner, spec


def _tables(args) -> list[Path]:
    tables = [Path(t) for t in args.tables]
    if args.paper:
        tables += spec.paper_tables(args.paper)
    if not tables:
        raise SystemExit("dermlab grid: name grid files or --paper NAME")
    return tables


def main(argv: list[str]) -> None:
    if argv and argv[0] == "_cell":
        runner.run_cell_command(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="dermlab grid", description="Run experiment grids and render paper tables.")
    sub = parser.add_subparsers(dest="verb", required=True)
    for verb in ("run", "report"):
        p = sub.add_parser(verb)
        p.add_argument("tables", nargs="*", help="grid files (experiments/<paper>/tables/<table>.yaml)")
        p.add_argument("--paper", help="every table of experiments/<paper>/tables/")
        p.add_argument("--smoke", action="store_true", help="a couple of steps per cell, in runs/grids-smoke/")
        p.add_argument("--runs", default="runs", help="folder holding grids/ and grids-smoke/")
        if verb == "run":
            p.add_argument("--data-root", help="the real data set (default: the synthetic set, written if missing)")
            p.add_argument("--parallel", type=int, default=1, help="cells side by side (one GPU each if there are N)")
    args = parser.parse_args(argv)
    failed = []
    for table in _tables(args):
        grid = spec.load(table)
        if args.verb == "run":
            status = runner.run(grid, args.data_root, args.smoke, args.parallel, Path(args.runs))
            failed += [f"{grid.table}/{c}" for c, s in status.items() if s == "failed"]
        print(reporting.report(grid, Path(args.runs), args.smoke))
    if failed:
        raise SystemExit(f"dermlab grid: {len(failed)} cell(s) failed: {', '.join(failed)} (see their cell.log)")
