"""``dermlab demo`` (``make demo``): synthetic data → fit → test → submission → score, on a CPU.

Writes the synthetic ISIC 2017 set if it is missing, trains ``experiments/demo.yaml``, tests the
best checkpoint, writes the official submission CSV, scores it with ``dermlab score``'s code,
prints a metrics table and ends with one summary line (test AUC and wall time).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from callbacks.submission import SubmissionWriter
from datamodules.synthetic import ensure_synthetic
from dermlab.cli import build_cli
from dermlab.scoring import score


def metrics_table(title: str, rows: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in rows.items():
        table.add_row(name, f"{value:.4f}")
    return table


def main(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser(prog="dermlab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="experiments/demo.yaml")
    parser.add_argument("--data-root", default="data/synthetic/isic2017")
    parser.add_argument("--n", type=int, default=600, help="synthetic training images")
    parser.add_argument("--size", type=int, default=64, help="synthetic image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args, overrides = parser.parse_known_args(argv)  # the rest goes to LightningCLI, e.g. --trainer.max_epochs 2
    start = time.perf_counter()
    console = Console()
    if ensure_synthetic("isic2017", args.data_root, args.n, args.size, args.seed):
        console.print(f"wrote synthetic ISIC 2017 ({args.n} training images, {args.size} px) to {args.data_root}")

    cli = build_cli(["fit", "-c", args.config, "--data.init_args.root", args.data_root, *overrides])
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    tested = trainer.test(model, datamodule=data, ckpt_path="best", verbose=False)[0]
    trainer.predict(model, datamodule=data, ckpt_path="best", return_predictions=False)
    writer = next(c for c in trainer.callbacks if isinstance(c, SubmissionWriter))
    truth = Path(args.data_root) / "ISIC-2017_Test_v2_Part3_GroundTruth.csv"
    scored = score(truth, writer.written, data.modelled_categories)  # the other column is a constant
    wall = time.perf_counter() - start

    console.print(metrics_table(f"test metrics ({data.task}, best checkpoint)",
                                {k.removeprefix("test/"): v for k, v in tested.items()}))
    console.print(metrics_table("dermlab score: submission vs truth", scored["macro"]))
    root = Path(trainer.default_root_dir)
    console.print(f"plots: {', '.join(str(p) for p in sorted((root / 'plots').glob('*.png')))}")
    console.print(f"checkpoints: {root / 'checkpoints'}   metrics: {trainer.log_dir}/metrics.csv")
    print(f"demo done: test AUC {tested['test/auc']:.3f} ({data.task} vs rest, synthetic ISIC 2017, "
          f"{len(data.table('test'))} test images) in {wall:.0f} s wall time; run folder {root}")
    return {"test": tested, "score": scored, "wall_time_s": wall, "run_dir": str(root)}
