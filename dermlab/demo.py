"""``dermlab demo`` (``make demo``): real sample → fine-tune → test → submission → score, on a CPU.

By default it fine-tunes ``experiments/demo.yaml`` (ImageNet EfficientNet-Lite0 on the shipped CC0 ISIC-archive
sample, melanoma vs rest), tests the best checkpoint, writes the official submission CSV, scores it with
``dermlab score``'s code against the test split's truth, prints a metrics table and ends with one summary line:
the test AUC with its 95 % stratified bootstrap interval (:mod:`dermlab.intervals`) and the wall time.
``--synthetic`` (``make demo-synthetic``) runs ``experiments/demo_synthetic.yaml`` on a synthetic ISIC 2017 set
it writes first if missing (ResNet-18 from scratch, 64 px): the wiring check the tests use.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from callbacks.submission import SubmissionWriter
from datamodules.synthetic import ensure_synthetic
from dermlab.cli import build_cli
from dermlab.intervals import auc_interval
from dermlab.scoring import score


def metrics_table(title: str, rows: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows.items():
        table.add_row(name, f"{value:.4f}")
    return table


def test_truth(data, run_dir: Path, data_root: str | None) -> Path:
    """The test split's ground truth in the official layout: the data set's own file, or (the shipped sample,
    whose split is fixed by the reader) the split written as ``<run>/test_ground_truth.csv``."""
    if hasattr(data, "ground_truth"):
        path = run_dir / "test_ground_truth.csv"
        data.ground_truth("test").to_csv(path, index=False)
        return path
    return Path(data_root or data.root) / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"


def main(argv: list[str]) -> dict:
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
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the AUC interval")
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
    scored = score(truth_path, writer.written, data.modelled_categories)  # the other column is a constant
    category = data.modelled_categories[0]
    truth = pd.read_csv(truth_path).set_index("image_id")[category]
    predicted = pd.read_csv(writer.written).set_index("image_id")[category].reindex(truth.index)
    interval = auc_interval(truth.to_numpy(), predicted.to_numpy(), n_boot=args.n_boot, seed=args.seed)
    wall = time.perf_counter() - start

    console.print(metrics_table(f"test metrics ({data.task}, best checkpoint)",
                                {k.removeprefix("test/"): v for k, v in tested.items()}))
    console.print(metrics_table("dermlab score: submission vs truth", scored["macro"]))
    console.print(f"plots: {', '.join(str(p) for p in sorted((run_dir / 'plots').glob('*.png')))}")
    console.print(f"checkpoints: {run_dir / 'checkpoints'}   metrics: {trainer.log_dir}/metrics.csv")
    what = "synthetic ISIC 2017" if args.synthetic else type(data).__name__
    positives = int(truth.sum())
    print(f"demo done: test AUC {interval.estimate:.3f}, 95% CI [{interval.low:.3f}, {interval.high:.3f}] "
          f"(stratified bootstrap, {args.n_boot} resamples; {data.task} vs rest, {what}, {len(truth)} test images, "
          f"{positives} positive) in {wall:.0f} s wall time; run folder {run_dir}")
    return {"test": tested, "score": scored, "auc_interval": interval, "wall_time_s": wall, "run_dir": str(run_dir)}
