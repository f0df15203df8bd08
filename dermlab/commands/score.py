"""``dermlab score``: score an official submission (CSV or mask folder) against the official ground truth
(:mod:`dermlab.challenge.scoring`), optionally with bootstrap intervals."""

from __future__ import annotations

import argparse
import json
from typing import Any

from dermlab.challenge.scoring import score as score_files
from dermlab.challenge.scoring import score_segmentation


def main(argv: list[str]) -> None:
    """Run ``dermlab score``: print the metrics of a submission CSV (or of a mask folder, ``--seg``) as strict JSON.

    Args:
        argv: the arguments after ``score``: ``--truth`` and ``--pred`` (``--categories``, ``--bootstrap``,
            ``--seed``, ``--level``), or ``--seg TRUTH_DIR PRED_DIR``.

    Raises:
        SystemExit: status 2 for arguments that do not go together.
        DataError: a malformed truth, submission or mask folder.
    """
    parser = argparse.ArgumentParser(prog="dermlab score",
                                     description="Score an official submission (CSV or mask folder) against the "
                                                 "official ground truth.")
    parser.add_argument("--truth",
                        help="ground-truth CSV (ISIC 2016, 2017, 2018 task 3, 2019, 2020, 2024 or HAM10000 layout)")
    parser.add_argument("--pred", help="submission CSV in the matching layout (checked by the official rules)")
    parser.add_argument("--categories", nargs="+", metavar="NAME",
                        help="score only these columns (e.g. melanoma for an ISIC 2017 melanoma-only run); the "
                             "submission must still hold them all")
    parser.add_argument("--seg", nargs=2, metavar=("TRUTH_DIR", "PRED_DIR"),
                        help="score ISIC 2018 task 1 or 2 masks instead: ground-truth folder, predicted-mask folder")
    parser.add_argument("--bootstrap", type=int, default=0, metavar="N",
                        help="add a stratified bootstrap percentile interval (N resamples within each true class) "
                             "beside every metric, e.g. auc_ci95: [low, high]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    parser.add_argument("--level", type=float, default=0.95, help="coverage of the intervals (default 0.95)")
    args = parser.parse_args(argv)
    if args.bootstrap < 0 or not 0 < args.level < 1:
        parser.error("--bootstrap must be ≥ 0 (0: no intervals) and --level in (0, 1)")
    if args.seg:
        if args.bootstrap:
            parser.error("--bootstrap applies to submission CSVs, not to --seg masks")
        print(json.dumps(strict_json(score_segmentation(*args.seg)), indent=2, allow_nan=False))
    elif args.truth and args.pred:
        scored = score_files(args.truth, args.pred, args.categories, args.bootstrap, args.seed, args.level)
        print(json.dumps(strict_json(scored), indent=2, allow_nan=False))
    else:
        parser.error("give --truth and --pred (a submission CSV) or --seg TRUTH_DIR PRED_DIR (masks)")


def strict_json(value: Any) -> Any:
    """``value`` with every NaN (an undefined metric, listed under ``undefined``) as None, so the printed JSON is
    strict (``null``), which every JSON reader accepts; bare ``NaN`` is not JSON."""
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, float) and value != value:
        return None
    return value
