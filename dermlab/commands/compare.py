"""``dermlab compare --truth T --pred A.csv --pred B.csv``: paired tests of two submissions on the same test images.

Both submissions are read and checked exactly as ``dermlab score`` reads them
(:func:`dermlab.challenge.scoring.read_scored`:
official layouts and rules, weight-0 images left out). Printed as JSON: the layout, the image count and

* ``delong``: per category the two AUCs, z and the two-sided p of DeLong's test
  (:func:`dermlab.stats.paired_tests.delong`);
* ``mcnemar``: per category McNemar's test on the images each thresholded submission (``p > threshold``, the
  official scorer's rule) classifies right (:func:`dermlab.stats.paired_tests.mcnemar`); for one-hot truths (ISIC 2018)
  also ``argmax``, on whether the row's argmax is the true class (a tie for the top is wrong, as the official
  balanced accuracy counts it);
* ``holm``: with more than one category, the Holm-adjusted p-values of each family (Holm 1979).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dermlab.challenge.scoring import argmax_correct, read_scored
from dermlab.stats.paired_tests import delong, holm, mcnemar


def compare(truth_path: str | Path, pred_a: str | Path, pred_b: str | Path, threshold: float = 0.5,
            categories: list[str] | None = None) -> dict[str, Any]:
    """DeLong and McNemar tests of submission A against B on the scored images of ``truth_path``.

    Raises:
        DataError: a malformed truth or submission (naming the file and rows), or an unknown category.
    """
    truth, labels, predictions_a, names = read_scored(truth_path, pred_a, categories)
    _, _, predictions_b, _ = read_scored(truth_path, pred_b, categories)
    result = {"layout": truth.layout, "images": len(labels), "pred_a": str(pred_a), "pred_b": str(pred_b),
              "threshold": threshold, "delong": {}, "mcnemar": {}}
    for category in names:
        y = labels[category].to_numpy().astype(int)
        a, b = predictions_a[category].to_numpy(), predictions_b[category].to_numpy()
        result["delong"][category] = asdict(delong(y, a, b))
        result["mcnemar"][category] = asdict(mcnemar(y, (a > threshold).astype(int), (b > threshold).astype(int)))
    if truth.one_hot:
        columns = list(truth.submission.categories)
        _, right_a = argmax_correct(labels[columns].to_numpy(), predictions_a[columns].to_numpy())
        _, right_b = argmax_correct(labels[columns].to_numpy(), predictions_b[columns].to_numpy())
        result["mcnemar"]["argmax"] = asdict(mcnemar(np.ones(len(labels), bool), right_a, right_b))
    if len(names) > 1:
        result["holm"] = {family: dict(zip(tests, holm([t["p"] for t in tests.values()]), strict=True))
                          for family, tests in (("delong", result["delong"]), ("mcnemar", result["mcnemar"]))}
    return result


def main(argv: list[str]) -> None:
    """Run ``dermlab compare``: print :func:`compare` of the two ``--pred`` submissions as JSON.

    Args:
        argv: the arguments after ``compare``: ``--truth``, ``--pred`` twice (A, then B), ``--threshold``,
            ``--categories``.

    Raises:
        SystemExit: status 2 for ``--pred`` not given twice or a threshold outside [0, 1].
        DataError: a malformed truth or submission.
    """
    parser = argparse.ArgumentParser(prog="dermlab compare",
                                     description="Paired tests (DeLong's AUC test, McNemar's test) of two "
                                                 "submissions scored against the same ground truth.")
    parser.add_argument("--truth", required=True, help="ground-truth CSV (ISIC 2016, 2017, 2018 task 3 or HAM10000)")
    parser.add_argument("--pred", required=True, action="append", metavar="CSV",
                        help="a submission in the matching layout; give exactly two (A, then B)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="McNemar's tests count p > threshold as positive (default 0.5, the official scorer's)")
    parser.add_argument("--categories", nargs="+", metavar="NAME", help="test only these columns")
    args = parser.parse_args(argv)
    if len(args.pred) != 2:
        parser.error(f"give --pred exactly twice (submission A and submission B), got {len(args.pred)}")
    if not 0 <= args.threshold <= 1:
        parser.error(f"--threshold must lie in [0, 1], got {args.threshold}")
    print(json.dumps(compare(args.truth, *args.pred, threshold=args.threshold, categories=args.categories),
                     indent=2))
