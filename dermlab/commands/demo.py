"""``dermlab demo`` (``make demo``): real sample → fine-tune → test → submission → score, on a CPU.

By default it fine-tunes ``experiments/demo.yaml`` (ImageNet EfficientNet-Lite0 on the shipped CC0 ISIC-archive
sample, melanoma vs rest), tests the best checkpoint, writes the official submission CSV, scores it with
``dermlab score``'s code against the test split's truth (``--bootstrap``: every metric with its 95 % stratified
bootstrap interval), prints the metrics tables and ends with one summary line: the test AUC with its interval
(:mod:`dermlab.stats.intervals`) and the wall time.
``--synthetic`` (``make demo-synthetic``) runs ``experiments/demo_synthetic.yaml`` on a synthetic ISIC 2017 set
it writes first if missing (ResNet-18 from scratch, 64 px): the wiring check the tests use.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from callbacks.submission import SubmissionWriter
from datamodules.synthetic import ensure_synthetic
from dermlab.challenge.scoring import score
from dermlab.challenge.truth import read_truth
from dermlab.commands.trainer import build_cli
from dermlab.stats.intervals import Interval

if TYPE_CHECKING:
    from datamodules.base import SkinDataModule


def metrics_table(title: str, rows: dict, interval_suffix: str = "_ci95") -> Table:
    """A rich table of ``rows`` (metric → value); where ``<metric><interval_suffix>`` holds ``[low, high]`` (as
    :func:`dermlab.challenge.scoring.score` with ``n_boot`` writes) a column shows that interval beside the value."""
    intervals = {name.removesuffix(interval_suffix): value for name, value in rows.items()
                 if name.endswith(interval_suffix)}
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if intervals:
        table.add_column("95 % CI", justify="right")
    for name, value in rows.items():
        if name.endswith(interval_suffix):
            continue
        cells = [name, f"{value:.4f}"]
        if intervals:
            low_high = intervals.get(name)
            cells.append(f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else "")
        table.add_row(*cells)
    return table


def test_truth(data: SkinDataModule, run_dir: Path, data_root: str | None) -> Path:
    """The test split's ground truth in the official layout: the data set's own file, or (the shipped sample,
    whose split is fixed by the reader) the split written as ``<run>/test_ground_truth.csv``."""
    if hasattr(data, "ground_truth"):
        path = run_dir / "test_ground_truth.csv"
        data.ground_truth("test").to_csv(path, index=False)
        return path
    return Path(data_root or data.root) / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"


def main(argv: list[str]) -> dict[str, Any]:
    """Run ``dermlab demo``: fine-tune, test, write and score the submission, print the tables and the summary line.

    Args:
        argv: the arguments after ``demo`` (``--synthetic``, ``--config``, ``--data-root``, ``--n``, ``--size``,
            ``--seed``, ``--n-boot``); the rest go to LightningCLI (``--trainer.max_epochs 2``).

    Returns:
        ``test`` (the test metrics), ``score`` (:func:`dermlab.challenge.scoring.score` of the submission),
        ``auc_interval`` (:class:`~dermlab.stats.intervals.Interval`), ``wall_time_s`` and ``run_dir``.
    """
    parser = argparse.ArgumentParser(prog="dermlab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", action="store_true",
                        help="the synthetic wiring demo (experiments/demo_synthetic.yaml, data written if missing)")
    parser.add_argument("--config", default=None, help="default: experiments/demo.yaml (--synthetic: "
                                                       "experiments/demo_synthetic.yaml)")
    parser.add_argument("--data-root", default=None, help="the data set's folder (--synthetic: where the "
                                                          "synthetic set is written, default data/synthetic/isic2017)")
    parser.add_argument("--n", type=int, default=600, help="synthetic training images")
    parser.add_argument("--size", type=int, default=64, help="synthetic image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the metrics' intervals")
    args, overrides = parser.parse_known_args(argv)  # the rest goes to LightningCLI, e.g. --trainer.max_epochs 2
    start = time.perf_counter()
    console = Console()
    config = args.config or ("experiments/demo_synthetic.yaml" if args.synthetic else "experiments/demo.yaml")
    data_root = args.data_root or ("data/synthetic/isic2017" if args.synthetic else None)
    if args.synthetic and ensure_synthetic("isic2017", data_root, args.n, args.size, args.seed):
        console.print(f"wrote synthetic ISIC 2017 ({args.n} training images, {args.size} px) to {data_root}")

    root_args = ["--data.init_args.root", data_root] if data_root else []
    cli = build_cli(["fit", "-c", config, *root_args, *overrides])
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    tested = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0]
    trainer.predict(model, datamodule=data, ckpt_path="best", return_predictions=False)
    writer = next(c for c in trainer.callbacks if isinstance(c, SubmissionWriter))
    run_dir = Path(trainer.default_root_dir)
    truth_path = test_truth(data, run_dir, data_root)
    # the other column is a constant; the AUC interval uses dermlab.stats.intervals' draws, as
    # `dermlab score --bootstrap` does
    scored = score(truth_path, writer.written, data.modelled_categories, n_boot=args.n_boot, seed=args.seed)
    category = data.modelled_categories[0]
    auc = scored["per_category"][category]
    interval = Interval(auc["auc"], *auc["auc_ci95"], level=0.95, n_boot=args.n_boot)
    positives = int(read_truth(truth_path).scored[category].sum())  # the truth as the scorer read it
    wall = time.perf_counter() - start

    console.print(metrics_table(f"test metrics ({data.task}, best checkpoint)",
                                {k.removeprefix("test/"): v for k, v in tested.items()}))
    console.print(metrics_table(f"dermlab score: submission vs truth ({args.n_boot} bootstrap resamples)",
                                scored["macro"]))
    console.print(f"plots: {', '.join(str(p) for p in sorted((run_dir / 'plots').glob('*.png')))}")
    console.print(f"checkpoints: {run_dir / 'checkpoints'}   metrics: {trainer.log_dir}/metrics.csv")
    what = "synthetic ISIC 2017" if args.synthetic else type(data).__name__
    print(f"demo done: test AUC {interval.estimate:.3f}, 95% CI [{interval.low:.3f}, {interval.high:.3f}] "
          f"(stratified bootstrap, {args.n_boot} resamples; {data.task} vs rest, {what}, {scored['images']} test "
          f"images, {positives} positive) in {wall:.0f} s wall time; run folder {run_dir}")
    return {"test": tested, "score": scored, "auc_interval": interval, "wall_time_s": wall, "run_dir": str(run_dir)}
